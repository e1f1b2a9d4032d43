//! The learning service's settings, from `FLOWPLANE_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use flowplane_runtime::env;
use flowplane_runtime::tls::TlsFiles;

#[derive(Clone)]
pub struct LearningConfig {
    /// `FLOWPLANE_LEARNING_ADDR`: where Envoys send traffic (External Processor, gRPC).
    pub grpc_addr: SocketAddr,
    /// `FLOWPLANE_LEARNING_HTTP_ADDR`: `/healthz`, `/readyz`, `/metrics`.
    pub http_addr: SocketAddr,
    /// `FLOWPLANE_CONFIG_URL`: the config service, which stores what was learned.
    pub config_url: String,
    /// `FLOWPLANE_CONFIG_CA_FILE`: the CA that signed config\'s certificate, for an `https://`
    /// config URL.
    pub config_ca_file: Option<PathBuf>,
    /// `FLOWPLANE_SERVICE_CREDENTIAL`: learning's own credential on calls to config
    /// (`flowplane service-credential learning`).
    pub service_credential: String,
    /// `FLOWPLANE_LEARNING_FLUSH_MS`: how often aggregates go to config (default 1000).
    pub flush_interval: Duration,
    /// `FLOWPLANE_LEARNING_TLS_CERT_FILE` and `…_KEY_FILE`: serve TLS (optional).
    pub tls: Option<TlsFiles>,
}

pub const DEFAULT_GRPC_PORT: u16 = 18083;

impl LearningConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            grpc_addr: env::parsed(
                "FLOWPLANE_LEARNING_ADDR",
                SocketAddr::from(([0, 0, 0, 0], DEFAULT_GRPC_PORT)),
            )?,
            http_addr: env::parsed(
                "FLOWPLANE_LEARNING_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 18084)),
            )?,
            config_url: env::string("FLOWPLANE_CONFIG_URL", "http://127.0.0.1:18090"),
            config_ca_file: env::optional("FLOWPLANE_CONFIG_CA_FILE").map(PathBuf::from),
            // Checked when the service starts, so `flowplane up` can supply one of its own.
            service_credential: env::string("FLOWPLANE_SERVICE_CREDENTIAL", ""),
            flush_interval: Duration::from_millis(env::parsed(
                "FLOWPLANE_LEARNING_FLUSH_MS",
                1000,
            )?),
            tls: TlsFiles::from_env("FLOWPLANE_LEARNING")?,
        })
    }
}

impl std::fmt::Debug for LearningConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LearningConfig")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("config_url", &self.config_url)
            .field("config_ca_file", &self.config_ca_file)
            .field("service_credential", &"<redacted>")
            .field("flush_interval", &self.flush_interval)
            .field("tls", &self.tls)
            .finish()
    }
}
