//! The xds-server's settings, from `FLOWPLANE_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use flowplane_runtime::bus::NatsSettings;
use flowplane_runtime::env;
use flowplane_runtime::tls::TlsFiles;

#[derive(Clone)]
pub struct XdsServerConfig {
    /// `FLOWPLANE_XDS_ADDR`: where Envoys connect (ADS).
    pub xds_addr: SocketAddr,
    /// `FLOWPLANE_XDS_HTTP_ADDR`: `/healthz`, `/readyz`, `/metrics`.
    pub http_addr: SocketAddr,
    /// `FLOWPLANE_CONFIG_URL`: the config service's internal gRPC.
    pub config_url: String,
    /// `FLOWPLANE_CONFIG_CA_FILE`: the CA that signed config\'s certificate, for an `https://`
    /// config URL.
    pub config_ca_file: Option<PathBuf>,
    /// `FLOWPLANE_SERVICE_CREDENTIAL`: the replica's own credential on calls to config
    /// (`flowplane service-credential xds-server`).
    pub service_credential: String,
    /// `FLOWPLANE_NATS_URL`, `FLOWPLANE_NATS_CA_FILE`, `FLOWPLANE_NATS_TLS_{CERT,KEY}_FILE`
    pub nats: NatsSettings,
    /// `FLOWPLANE_NATS_PREFIX`: subject and stream prefix, so deployments can share a NATS.
    pub nats_prefix: String,
    /// `FLOWPLANE_XDS_RESYNC_SECONDS`: how often to compare revisions with config, so a
    /// replica that missed events (bus down) catches up.
    pub resync_interval: Duration,
    /// `FLOWPLANE_XDS_THREADS`: threads serving ADS, each owning its share of the Envoy
    /// connections; defaults to the number of cores.
    pub ads_threads: usize,
    /// `FLOWPLANE_XDS_TLS_CERT_FILE` and `FLOWPLANE_XDS_TLS_KEY_FILE` (PEM): serve ADS over
    /// TLS with this certificate (chain) and key. Both or neither.
    pub tls: Option<TlsFiles>,
    /// `FLOWPLANE_XDS_REPLICA_ID`: how the delivery report names this replica; by default the
    /// host name and the ADS port.
    pub replica_id: String,
}

impl XdsServerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let xds_addr = env::parsed(
            "FLOWPLANE_XDS_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 18000)),
        )?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "xds".into());
        Ok(Self {
            replica_id: env::string(
                "FLOWPLANE_XDS_REPLICA_ID",
                &format!("{host}:{}", xds_addr.port()),
            ),
            xds_addr,
            http_addr: env::parsed(
                "FLOWPLANE_XDS_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 18001)),
            )?,
            config_url: env::string("FLOWPLANE_CONFIG_URL", "http://127.0.0.1:18090"),
            config_ca_file: env::optional("FLOWPLANE_CONFIG_CA_FILE").map(PathBuf::from),
            // Checked when the service starts (ServiceCredential::new), so `flowplane up` can
            // supply one of its own.
            service_credential: env::string("FLOWPLANE_SERVICE_CREDENTIAL", ""),
            nats: NatsSettings::from_env()?,
            nats_prefix: env::string(
                "FLOWPLANE_NATS_PREFIX",
                flowplane_runtime::bus::DEFAULT_PREFIX,
            ),
            resync_interval: Duration::from_secs(env::parsed(
                "FLOWPLANE_XDS_RESYNC_SECONDS",
                5u64,
            )?),
            ads_threads: env::parsed(
                "FLOWPLANE_XDS_THREADS",
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )?,
            tls: TlsFiles::from_env("FLOWPLANE_XDS")?,
        })
    }
}

impl std::fmt::Debug for XdsServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServerConfig")
            .field("xds_addr", &self.xds_addr)
            .field("http_addr", &self.http_addr)
            .field("config_url", &self.config_url)
            .field("config_ca_file", &self.config_ca_file)
            .field("service_credential", &"<redacted>")
            .field("nats", &self.nats)
            .field("nats_prefix", &self.nats_prefix)
            .field("resync_interval", &self.resync_interval)
            .field("ads_threads", &self.ads_threads)
            .field("tls", &self.tls)
            .field("replica_id", &self.replica_id)
            .finish()
    }
}
