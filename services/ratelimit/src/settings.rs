//! The ratelimit service's settings, from `FLOWPLANE_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use flowplane_runtime::env;
use flowplane_runtime::tls::TlsFiles;

#[derive(Clone)]
pub struct RateLimitConfig {
    /// `FLOWPLANE_RATELIMIT_ADDR`: where Envoys ask (Envoy's Rate Limit Service, gRPC).
    pub grpc_addr: SocketAddr,
    /// `FLOWPLANE_RATELIMIT_HTTP_ADDR`: `/healthz`, `/readyz`, `/metrics`.
    pub http_addr: SocketAddr,
    /// `FLOWPLANE_REDIS_URL`: where counters live. Unset, this process counts alone, which
    /// is right only for a single replica (`flowplane up`).
    pub redis_url: Option<String>,
    /// `FLOWPLANE_REDIS_PREFIX`: key prefix, so deployments can share a Redis.
    pub redis_prefix: String,
    /// `FLOWPLANE_CONFIG_URL`: the config service, which says whether an Envoy's token is a
    /// live dataplane's.
    pub config_url: String,
    /// `FLOWPLANE_CONFIG_CA_FILE`: the CA that signed config\'s certificate, for an `https://`
    /// config URL.
    pub config_ca_file: Option<PathBuf>,
    /// `FLOWPLANE_SERVICE_CREDENTIAL`: ratelimit's own credential on calls to config
    /// (`flowplane service-credential ratelimit`).
    pub service_credential: String,
    /// `FLOWPLANE_RATELIMIT_TLS_CERT_FILE` and `…_KEY_FILE`: serve TLS (optional).
    pub tls: Option<TlsFiles>,
}

pub const DEFAULT_GRPC_PORT: u16 = 18081;

impl RateLimitConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            grpc_addr: env::parsed(
                "FLOWPLANE_RATELIMIT_ADDR",
                SocketAddr::from(([0, 0, 0, 0], DEFAULT_GRPC_PORT)),
            )?,
            http_addr: env::parsed(
                "FLOWPLANE_RATELIMIT_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 18082)),
            )?,
            redis_url: env::optional("FLOWPLANE_REDIS_URL"),
            redis_prefix: env::string("FLOWPLANE_REDIS_PREFIX", "flowplane"),
            // Checked when the service starts, so `flowplane up` can supply one of its own.
            config_url: env::string("FLOWPLANE_CONFIG_URL", "http://127.0.0.1:18090"),
            config_ca_file: env::optional("FLOWPLANE_CONFIG_CA_FILE").map(PathBuf::from),
            service_credential: env::string("FLOWPLANE_SERVICE_CREDENTIAL", ""),
            tls: TlsFiles::from_env("FLOWPLANE_RATELIMIT")?,
        })
    }
}

impl std::fmt::Debug for RateLimitConfig {
    // Hand-written: a Redis URL can carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitConfig")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("redis_prefix", &self.redis_prefix)
            .field("config_url", &self.config_url)
            .field("config_ca_file", &self.config_ca_file)
            .field("service_credential", &"<redacted>")
            .field("tls", &self.tls)
            .finish()
    }
}
