//! What every handler shares: the clients to config, the credential cache, the settings that
//! go into Envoy bootstraps, and readiness.

use std::sync::Arc;

use flowplane_runtime::bus::AuthNotices;
use flowplane_runtime::health::Readiness;

use crate::auth::Authenticator;
use crate::config::{ApiGatewayConfig, CookieSecure};
use crate::config_service::ConfigService;
use crate::login_throttle::LoginThrottle;

#[derive(Clone)]
pub struct AppState {
    pub(crate) config: ConfigService,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) envoy: EnvoyBootstrapSettings,
    pub(crate) readiness: Readiness,
    /// Failed-login counters (Redis when configured).
    pub(crate) login_throttle: Arc<LoginThrottle>,
    pub(crate) cookie_secure: CookieSecure,
    /// `FLOWPLANE_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` names the client.
    pub(crate) trusted_proxies: Arc<Vec<crate::client_address::Cidr>>,
    /// Token-invalidated notices from config; [`crate::serve`] evicts each from the cache.
    pub(crate) notices: Option<AuthNotices>,
}

/// Where the Envoy bootstraps this gateway hands out point.
#[derive(Debug, Clone)]
pub(crate) struct EnvoyBootstrapSettings {
    pub xds_host: String,
    pub xds_port: u16,
    /// PEM of the CA behind the xds-server's TLS certificate, when ADS is served over TLS.
    pub xds_ca: Option<String>,
    pub ratelimit_host: String,
    pub ratelimit_port: u16,
    pub learning_host: String,
    pub learning_port: u16,
    pub ratelimit_ca: Option<String>,
    pub learning_ca: Option<String>,
    pub admin_port: u16,
}

/// The PEM of a CA file named by setting `name`, read once at start.
fn read_ca(name: &str, path: &Option<String>) -> anyhow::Result<Option<String>> {
    path.as_ref()
        .map(|path| {
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{name} {path}: {e}"))
        })
        .transpose()
}

impl AppState {
    /// Builds the state without touching the network: the channel to config connects on first
    /// use.
    pub fn new(config: &ApiGatewayConfig) -> anyhow::Result<Self> {
        let service = ConfigService::connect_lazy(
            &config.config_url,
            config.config_ca_file.as_deref(),
            &config.service_credential,
        )?;
        let throttle = |limits| match &config.redis_url {
            Some(url) => LoginThrottle::redis(url, &config.redis_prefix, limits),
            None => Ok(LoginThrottle::local(limits)),
        };
        let login_throttle = throttle(config.login_throttle)?;
        let bearer_throttle = throttle(config.bearer_throttle)?.for_bearer();
        if config.redis_url.is_none() {
            tracing::info!(
                "FLOWPLANE_REDIS_URL is not set: failed logins are counted in this process only (set it when running several api-gateways)"
            );
        }
        tracing::info!(counters = login_throttle.describe(), "login throttle");
        Ok(Self {
            login_throttle: Arc::new(login_throttle),
            cookie_secure: config.cookie_secure,
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            auth: Arc::new(Authenticator::new(
                service.identity.clone(),
                Arc::new(bearer_throttle),
            )),
            config: service,
            envoy: EnvoyBootstrapSettings {
                xds_host: config.xds_public_host.clone(),
                xds_port: config.xds_public_port,
                xds_ca: read_ca("FLOWPLANE_XDS_PUBLIC_CA_FILE", &config.xds_public_ca_file)?,
                ratelimit_ca: read_ca(
                    "FLOWPLANE_RATELIMIT_PUBLIC_CA_FILE",
                    &config.ratelimit_public_ca_file,
                )?,
                learning_ca: read_ca(
                    "FLOWPLANE_LEARNING_PUBLIC_CA_FILE",
                    &config.learning_public_ca_file,
                )?,
                ratelimit_host: config.ratelimit_public_host.clone(),
                ratelimit_port: config.ratelimit_public_port,
                learning_host: config.learning_public_host.clone(),
                learning_port: config.learning_public_port,
                admin_port: config.envoy_admin_port,
            },
            readiness: Readiness::new(),
            notices: None,
        })
    }

    /// Listens to config's token-invalidated notices while serving, so a token revoked,
    /// rotated or re-scoped through any gateway stops working on this one at once.
    pub fn with_notices(mut self, notices: AuthNotices) -> Self {
        self.notices = Some(notices);
        self
    }

    /// `/readyz` reports this; [`crate::run`] keeps it in step with config's reachability.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }
}
