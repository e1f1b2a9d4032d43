//! The gateway's settings, from `FLOWPLANE_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use flowplane_runtime::bus::NatsSettings;
use flowplane_runtime::env;

#[derive(Clone)]
pub struct ApiGatewayConfig {
    /// `FLOWPLANE_API_ADDR`: where the public REST API listens.
    pub api_addr: SocketAddr,
    /// `FLOWPLANE_CONFIG_URL`: the config service's internal gRPC endpoint.
    pub config_url: String,
    /// `FLOWPLANE_CONFIG_CA_FILE`: the CA that signed config\'s certificate, for an `https://`
    /// config URL.
    pub config_ca_file: Option<PathBuf>,
    /// `FLOWPLANE_SERVICE_CREDENTIAL`: the gateway's own credential on calls to config
    /// (`flowplane service-credential api-gateway`). Required, but checked when the gateway
    /// starts rather than here, so `flowplane up` can supply one of its own.
    pub service_credential: String,
    /// `FLOWPLANE_XDS_PUBLIC_HOST`: the xds-server address Envoy bootstraps point at.
    pub xds_public_host: String,
    /// `FLOWPLANE_XDS_PUBLIC_PORT`
    pub xds_public_port: u16,
    /// `FLOWPLANE_XDS_PUBLIC_CA_FILE`: PEM of the CA that signed the xds-server's TLS
    /// certificate; bootstraps then reach ADS over TLS and trust only it. Unset: plaintext.
    pub xds_public_ca_file: Option<String>,
    /// `FLOWPLANE_RATELIMIT_PUBLIC_HOST`: the ratelimit service address Envoy bootstraps point
    /// at (global rate limits).
    pub ratelimit_public_host: String,
    /// `FLOWPLANE_RATELIMIT_PUBLIC_PORT`
    pub ratelimit_public_port: u16,
    /// `FLOWPLANE_RATELIMIT_PUBLIC_CA_FILE`: as `xds_public_ca_file`, for the ratelimit service.
    pub ratelimit_public_ca_file: Option<String>,
    /// `FLOWPLANE_LEARNING_PUBLIC_HOST`: the learning service address Envoy bootstraps point
    /// at (learning sessions copy traffic there).
    pub learning_public_host: String,
    /// `FLOWPLANE_LEARNING_PUBLIC_PORT`
    pub learning_public_port: u16,
    /// `FLOWPLANE_LEARNING_PUBLIC_CA_FILE`: as `xds_public_ca_file`, for the learning service.
    pub learning_public_ca_file: Option<String>,
    /// `FLOWPLANE_ENVOY_ADMIN_PORT`: the loopback admin port written into Envoy bootstraps.
    pub envoy_admin_port: u16,
    /// `FLOWPLANE_NATS_URL`: where to hear token-invalidated notices from config, so a token
    /// revoked through any gateway stops working on this one at once. Unset: revocations
    /// through other gateways take effect when the cached entry expires (at most 60 s).
    pub nats: Option<NatsSettings>,
    /// `FLOWPLANE_NATS_PREFIX`: the same prefix config publishes under.
    pub nats_prefix: String,
    /// `FLOWPLANE_REDIS_URL`: where failed logins are counted, so the throttle holds across
    /// every replica. Unset: each gateway counts on its own (fine for one process).
    pub redis_url: Option<String>,
    /// `FLOWPLANE_REDIS_PREFIX`: key prefix, so installations can share one Redis.
    pub redis_prefix: String,
    /// Failed-login limits.
    pub login_throttle: LoginLimits,
    /// Failed bearer authentications: `FLOWPLANE_BEARER_MAX_FAILURES` per credential id
    /// (default 10), `FLOWPLANE_BEARER_MAX_FAILURES_PER_ADDRESS` (default 100) and
    /// `FLOWPLANE_BEARER_WINDOW_SECONDS` (default 900).
    pub bearer_throttle: LoginLimits,
    /// `FLOWPLANE_SESSION_COOKIE_SECURE`: `auto` (Secure when the request arrived over HTTPS,
    /// as `X-Forwarded-Proto` says), `true` or `false`.
    pub cookie_secure: CookieSecure,
    /// `FLOWPLANE_TRUSTED_PROXIES`: comma-separated addresses and CIDR ranges of the load
    /// balancers in front of the gateway; only their `X-Forwarded-For` names the client that
    /// throttles and the audit log see. Empty (the default): the TCP peer, always.
    pub trusted_proxies: Vec<crate::client_address::Cidr>,
}

/// How many failed logins are allowed within a window before login answers 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// `FLOWPLANE_LOGIN_MAX_FAILURES`: per account (email), default 5.
    pub per_account: u32,
    /// `FLOWPLANE_LOGIN_MAX_FAILURES_PER_ADDRESS`: per client address, default 20 (several
    /// people can share an address).
    pub per_address: u32,
    /// `FLOWPLANE_LOGIN_WINDOW_SECONDS`: default 900 (15 minutes).
    pub window_seconds: u64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_address: 20,
            window_seconds: 900,
        }
    }
}

/// When the session cookie is marked `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSecure {
    Auto,
    Always,
    Never,
}

impl std::str::FromStr for CookieSecure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "true" => Ok(Self::Always),
            "false" => Ok(Self::Never),
            other => Err(format!("'{other}' is not one of auto, true, false")),
        }
    }
}

pub const DEFAULT_API_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
pub const DEFAULT_CONFIG_URL: &str = "http://127.0.0.1:18090";
pub const DEFAULT_XDS_PUBLIC_HOST: &str = "127.0.0.1";
pub const DEFAULT_XDS_PUBLIC_PORT: u16 = 18000;
pub const DEFAULT_RATELIMIT_PUBLIC_HOST: &str = "127.0.0.1";
pub const DEFAULT_RATELIMIT_PUBLIC_PORT: u16 = 18081;
pub const DEFAULT_LEARNING_PUBLIC_HOST: &str = "127.0.0.1";
pub const DEFAULT_LEARNING_PUBLIC_PORT: u16 = 18083;
pub const DEFAULT_ENVOY_ADMIN_PORT: u16 = 9901;

impl ApiGatewayConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            api_addr: env::parsed("FLOWPLANE_API_ADDR", DEFAULT_API_ADDR)?,
            config_url: env::string("FLOWPLANE_CONFIG_URL", DEFAULT_CONFIG_URL),
            config_ca_file: env::optional("FLOWPLANE_CONFIG_CA_FILE").map(PathBuf::from),
            service_credential: env::string("FLOWPLANE_SERVICE_CREDENTIAL", ""),
            xds_public_host: env::string("FLOWPLANE_XDS_PUBLIC_HOST", DEFAULT_XDS_PUBLIC_HOST),
            xds_public_port: env::parsed("FLOWPLANE_XDS_PUBLIC_PORT", DEFAULT_XDS_PUBLIC_PORT)?,
            xds_public_ca_file: env::optional("FLOWPLANE_XDS_PUBLIC_CA_FILE"),
            ratelimit_public_host: env::string(
                "FLOWPLANE_RATELIMIT_PUBLIC_HOST",
                DEFAULT_RATELIMIT_PUBLIC_HOST,
            ),
            ratelimit_public_port: env::parsed(
                "FLOWPLANE_RATELIMIT_PUBLIC_PORT",
                DEFAULT_RATELIMIT_PUBLIC_PORT,
            )?,
            ratelimit_public_ca_file: env::optional("FLOWPLANE_RATELIMIT_PUBLIC_CA_FILE"),
            learning_public_host: env::string(
                "FLOWPLANE_LEARNING_PUBLIC_HOST",
                DEFAULT_LEARNING_PUBLIC_HOST,
            ),
            learning_public_port: env::parsed(
                "FLOWPLANE_LEARNING_PUBLIC_PORT",
                DEFAULT_LEARNING_PUBLIC_PORT,
            )?,
            learning_public_ca_file: env::optional("FLOWPLANE_LEARNING_PUBLIC_CA_FILE"),
            envoy_admin_port: env::parsed("FLOWPLANE_ENVOY_ADMIN_PORT", DEFAULT_ENVOY_ADMIN_PORT)?,
            nats: match env::optional("FLOWPLANE_NATS_URL") {
                Some(_) => Some(NatsSettings::from_env()?),
                None => None,
            },
            nats_prefix: env::string(
                "FLOWPLANE_NATS_PREFIX",
                flowplane_runtime::bus::DEFAULT_PREFIX,
            ),
            redis_url: env::optional("FLOWPLANE_REDIS_URL"),
            redis_prefix: env::string("FLOWPLANE_REDIS_PREFIX", "flowplane"),
            login_throttle: LoginLimits {
                per_account: env::parsed("FLOWPLANE_LOGIN_MAX_FAILURES", 5u32)?.max(1),
                per_address: env::parsed("FLOWPLANE_LOGIN_MAX_FAILURES_PER_ADDRESS", 20u32)?.max(1),
                window_seconds: env::parsed("FLOWPLANE_LOGIN_WINDOW_SECONDS", 900u64)?.max(1),
            },
            bearer_throttle: LoginLimits {
                per_account: env::parsed("FLOWPLANE_BEARER_MAX_FAILURES", 10u32)?.max(1),
                per_address: env::parsed("FLOWPLANE_BEARER_MAX_FAILURES_PER_ADDRESS", 100u32)?
                    .max(1),
                window_seconds: env::parsed("FLOWPLANE_BEARER_WINDOW_SECONDS", 900u64)?.max(1),
            },
            cookie_secure: env::parsed("FLOWPLANE_SESSION_COOKIE_SECURE", CookieSecure::Auto)?,
            trusted_proxies: crate::client_address::parse_list(&env::string(
                "FLOWPLANE_TRUSTED_PROXIES",
                "",
            ))
            .map_err(|e| anyhow::anyhow!("FLOWPLANE_TRUSTED_PROXIES: {e}"))?,
        })
    }
}

impl std::fmt::Debug for ApiGatewayConfig {
    // Hand-written so the service token can never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiGatewayConfig")
            .field("api_addr", &self.api_addr)
            .field("config_url", &self.config_url)
            .field("config_ca_file", &self.config_ca_file)
            .field("service_credential", &"<redacted>")
            .field("xds_public_host", &self.xds_public_host)
            .field("xds_public_port", &self.xds_public_port)
            .field("xds_public_ca_file", &self.xds_public_ca_file)
            .field("ratelimit_public_host", &self.ratelimit_public_host)
            .field("ratelimit_public_port", &self.ratelimit_public_port)
            .field("learning_public_host", &self.learning_public_host)
            .field("learning_public_port", &self.learning_public_port)
            .field("ratelimit_public_ca_file", &self.ratelimit_public_ca_file)
            .field("learning_public_ca_file", &self.learning_public_ca_file)
            .field("envoy_admin_port", &self.envoy_admin_port)
            .field("nats", &self.nats)
            .field("nats_prefix", &self.nats_prefix)
            // A Redis URL can carry a password.
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("redis_prefix", &self.redis_prefix)
            .field("login_throttle", &self.login_throttle)
            .field("bearer_throttle", &self.bearer_throttle)
            .field("cookie_secure", &self.cookie_secure)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_service_credential() {
        let config = ApiGatewayConfig {
            api_addr: DEFAULT_API_ADDR,
            config_url: DEFAULT_CONFIG_URL.into(),
            config_ca_file: None,
            service_credential: "super-secret-service-credential".into(),
            xds_public_host: DEFAULT_XDS_PUBLIC_HOST.into(),
            xds_public_port: DEFAULT_XDS_PUBLIC_PORT,
            xds_public_ca_file: None,
            ratelimit_public_host: DEFAULT_RATELIMIT_PUBLIC_HOST.into(),
            ratelimit_public_port: DEFAULT_RATELIMIT_PUBLIC_PORT,
            learning_public_host: DEFAULT_LEARNING_PUBLIC_HOST.into(),
            learning_public_port: DEFAULT_LEARNING_PUBLIC_PORT,
            ratelimit_public_ca_file: None,
            learning_public_ca_file: None,
            envoy_admin_port: DEFAULT_ENVOY_ADMIN_PORT,
            nats: None,
            nats_prefix: "flowplane".into(),
            redis_url: Some("redis://:hunter2@127.0.0.1:6379".into()),
            redis_prefix: "flowplane".into(),
            login_throttle: LoginLimits::default(),
            bearer_throttle: LoginLimits::default(),
            cookie_secure: CookieSecure::Auto,
            trusted_proxies: Vec::new(),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1:8080"));
    }
}
