//! The config service's settings, from `FLOWPLANE_*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use flowplane_runtime::bus::NatsSettings;
use flowplane_runtime::env;
use flowplane_runtime::tls::TlsFiles;

#[derive(Debug, Clone)]
pub struct ConfigServiceConfig {
    /// `FLOWPLANE_DATABASE_URL`
    pub database_url: String,
    /// `FLOWPLANE_CONFIG_GRPC_ADDR`: internal gRPC (resources, identity, state).
    pub grpc_addr: SocketAddr,
    /// `FLOWPLANE_CONFIG_GRPC_TLS_CERT_FILE` + `FLOWPLANE_CONFIG_GRPC_TLS_KEY_FILE`: serve
    /// internal gRPC over TLS (clients then use `https://` and `FLOWPLANE_CONFIG_CA_FILE`).
    pub grpc_tls: Option<TlsFiles>,
    /// `FLOWPLANE_CONFIG_HTTP_ADDR`: `/healthz`, `/readyz`, `/metrics`.
    pub http_addr: SocketAddr,
    /// `FLOWPLANE_NATS_URL`, `FLOWPLANE_NATS_CA_FILE`, `FLOWPLANE_NATS_TLS_{CERT,KEY}_FILE`
    pub nats: NatsSettings,
    /// `FLOWPLANE_NATS_PREFIX`: subject and stream prefix, so deployments can share a NATS.
    pub nats_prefix: String,
    /// `FLOWPLANE_SERVICE_SECRET`: the root of every internal key; only config holds it
    /// (services get their own credentials, `flowplane service-credential`).
    pub service_secret: String,
    /// `FLOWPLANE_SETUP_TOKEN`: preset the first-run setup token (otherwise one is generated
    /// and logged once).
    pub setup_token: Option<String>,
    /// `FLOWPLANE_CREATE_DATABASE`: create the database when it does not exist.
    pub create_database: bool,
    /// `FLOWPLANE_TOKEN_SWEEP_SECONDS`: how often tokens past their expiry are marked `expired`.
    pub token_sweep_interval: Duration,
    /// `FLOWPLANE_SESSION_TTL_SECONDS` and `FLOWPLANE_INVITE_TTL_SECONDS`.
    pub identity: IdentitySettings,
    /// `FLOWPLANE_SHARED_GATEWAY_PORT`: the port of each team's shared API gateway listener
    /// (`default-gateway-listener`, default 10000).
    pub shared_gateway_port: u32,
    /// `FLOWPLANE_SECRETS_KEY`: base64 of the 32-byte AES-256-GCM key that seals secret
    /// material at rest. Required (config refuses to start without it); `flowplane up`
    /// supplies a development key when it is unset.
    pub secrets_key: Option<String>,
    /// `FLOWPLANE_ACCESS_LOG_DIR`: the directory on Envoy hosts that listeners' access logs
    /// may be written under (besides `/dev/stdout` and `/dev/stderr`); default `/var/log/envoy`.
    pub access_log_dir: String,
    /// `FLOWPLANE_SECRETS_KEY_PREVIOUS`: comma-separated keys `FLOWPLANE_SECRETS_KEY`
    /// replaced; they only open material, which config re-seals under the current key at start.
    pub secrets_key_previous: Option<String>,
}

/// Lifetimes of the identity credentials config issues.
#[derive(Debug, Clone, Copy)]
pub struct IdentitySettings {
    /// How long a login session lasts (`FLOWPLANE_SESSION_TTL_SECONDS`, default 8 hours).
    pub session_ttl: Duration,
    /// How long an invitation can be accepted (`FLOWPLANE_INVITE_TTL_SECONDS`, default 7 days).
    pub invite_ttl: Duration,
    /// How long the first-run setup token can be used (`FLOWPLANE_SETUP_TOKEN_TTL_SECONDS`,
    /// default 24 hours); a restart issues a new one.
    pub setup_token_ttl: Duration,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(8 * 3600),
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            setup_token_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/flowplane";
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:18090";

impl ConfigServiceConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            database_url: env::string("FLOWPLANE_DATABASE_URL", DEFAULT_DATABASE_URL),
            grpc_addr: env::parsed("FLOWPLANE_CONFIG_GRPC_ADDR", parse_addr(DEFAULT_GRPC_ADDR))?,
            http_addr: env::parsed("FLOWPLANE_CONFIG_HTTP_ADDR", parse_addr("127.0.0.1:18091"))?,
            grpc_tls: TlsFiles::from_env("FLOWPLANE_CONFIG_GRPC")?,
            nats: NatsSettings::from_env()?,
            nats_prefix: env::string(
                "FLOWPLANE_NATS_PREFIX",
                flowplane_runtime::bus::DEFAULT_PREFIX,
            ),
            // Checked when the service starts (ServiceSecret::new), so `flowplane up` can
            // supply one of its own.
            service_secret: env::string("FLOWPLANE_SERVICE_SECRET", ""),
            setup_token: env::optional("FLOWPLANE_SETUP_TOKEN"),
            secrets_key: env::optional("FLOWPLANE_SECRETS_KEY"),
            secrets_key_previous: env::optional("FLOWPLANE_SECRETS_KEY_PREVIOUS"),
            access_log_dir: env::string(
                "FLOWPLANE_ACCESS_LOG_DIR",
                flowplane_domain::listener::DEFAULT_ACCESS_LOG_DIR,
            ),
            create_database: env::parsed("FLOWPLANE_CREATE_DATABASE", false)?,
            token_sweep_interval: Duration::from_secs(
                env::parsed::<u64>("FLOWPLANE_TOKEN_SWEEP_SECONDS", 60)?.max(1),
            ),
            shared_gateway_port: env::parsed(
                "FLOWPLANE_SHARED_GATEWAY_PORT",
                flowplane_domain::api_definition::generate::DEFAULT_SHARED_PORT,
            )?,
            identity: IdentitySettings {
                session_ttl: Duration::from_secs(
                    env::parsed::<u64>("FLOWPLANE_SESSION_TTL_SECONDS", 8 * 3600)?.max(1),
                ),
                invite_ttl: Duration::from_secs(
                    env::parsed::<u64>("FLOWPLANE_INVITE_TTL_SECONDS", 7 * 24 * 3600)?.max(1),
                ),
                setup_token_ttl: Duration::from_secs(
                    env::parsed::<u64>("FLOWPLANE_SETUP_TOKEN_TTL_SECONDS", 24 * 3600)?.max(1),
                ),
            },
        })
    }
}

fn parse_addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}
