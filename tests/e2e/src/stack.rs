//! The Flowplane services as separate processes (`flowplane-config`, `flowplane-xds-server`,
//! `flowplane-ratelimit`, `flowplane-api-gateway`) on a fresh database, their own NATS stream
//! and their own Redis key prefix.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::envoy::tail;
use crate::{eventually, free_port, scratch_dir};

pub struct Stack {
    pub dir: PathBuf,
    pub api_url: String,
    pub xds_port: u16,
    /// The admin port the generated bootstrap gives Envoy.
    pub envoy_admin_port: u16,
    pub config_http: String,
    /// Config's internal gRPC port (TLS when the stack's [`Dependencies::tls`] is set).
    pub config_grpc_port: u16,
    pub xds_http: String,
    /// The ratelimit service's gRPC port (what bootstraps point Envoy at).
    pub ratelimit_port: u16,
    /// The learning service's gRPC port (what bootstraps point Envoy at).
    pub learning_port: u16,
    /// The port of each team's shared API gateway listener (`FLOWPLANE_SHARED_GATEWAY_PORT`),
    /// free per stack so scenarios can run side by side.
    pub shared_gateway_port: u16,
    database: String,
    nats_prefix: String,
    children: Vec<(String, Child)>,
    /// The settings every service shares, for services added after start.
    common: Vec<(String, String)>,
    /// Config's own settings, to start it again ([`Stack::start_config`]).
    config: Vec<(String, String)>,
    tls: Option<ServiceTls>,
}

/// Where cargo put the service binaries: beside this executable (a binary such as the
/// benchmark) or one level up (a test, which cargo puts in `deps/`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("unexpected executable location {}", exe.display()))?;
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|path| path.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{name} is missing beside {}: build the services first (`cargo build --workspace --bins`)",
                exe.display()
            )
        })
}

/// Where the services find PostgreSQL and NATS, when a scenario puts something (such as an
/// [`crate::Outage`]) in between, and how ADS is served. Defaults are the shared local
/// servers and plaintext ADS.
#[derive(Debug, Default, Clone)]
pub struct Dependencies {
    /// `host:port` of PostgreSQL.
    pub database_addr: Option<String>,
    pub nats_url: Option<String>,
    /// Share another stack's NATS subjects and stream (two installations on one NATS with the
    /// same settings) instead of a prefix of this stack's own.
    pub nats_prefix: Option<String>,
    /// Serve ADS, the ratelimit service, the learning service and config's internal gRPC
    /// over TLS with these PEM files; bootstraps and services then reach them at `localhost`
    /// (the name the certificate carries) and trust the CA.
    pub tls: Option<ServiceTls>,
    /// More settings every service gets (e.g. `FLOWPLANE_NATS_CA_FILE`).
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ServiceTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

impl Stack {
    /// The NATS prefix this stack's services use (see [`Dependencies::nats_prefix`]).
    pub fn nats_prefix(&self) -> &str {
        &self.nats_prefix
    }

    pub async fn start(name: &str) -> anyhow::Result<Self> {
        Self::start_with(name, Dependencies::default()).await
    }

    pub async fn start_with(name: &str, dependencies: Dependencies) -> anyhow::Result<Self> {
        let dir = scratch_dir(name);
        let unique = dir
            .file_name()
            .map(|n| n.to_string_lossy().replace(['-', '.'], "_"))
            .unwrap_or_default();
        let database = format!("fp_{}", &unique[unique.len().saturating_sub(40)..]);
        let nats_prefix = dependencies
            .nats_prefix
            .clone()
            .unwrap_or_else(|| format!("fpe2e{}", &unique[unique.len().saturating_sub(12)..]));
        let db_base = match dependencies.database_addr {
            Some(addr) => format!("postgres://postgres@{addr}"),
            None => std::env::var("FLOWPLANE_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
        };
        let tls = dependencies.tls.clone();
        let nats = dependencies.nats_url.unwrap_or_else(|| {
            std::env::var("FLOWPLANE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
        });
        let (config_grpc, config_http, xds, xds_http, api, envoy_admin) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let (ratelimit, learning) = (free_port(), free_port());
        let config_url = match &tls {
            Some(_) => format!("https://localhost:{config_grpc}"),
            None => format!("http://127.0.0.1:{config_grpc}"),
        };
        let mut common = vec![
            // Config's secret; every other service gets only its own credential derived from
            // it (`spawn_named`).
            (
                "FLOWPLANE_SERVICE_SECRET".to_string(),
                format!("e2e-service-secret-{unique}"),
            ),
            ("FLOWPLANE_NATS_URL".to_string(), nats),
            ("FLOWPLANE_NATS_PREFIX".to_string(), nats_prefix.clone()),
            // Every api-gateway counts failed logins in the one Redis, under this stack's own
            // prefix (keys expire with the throttle window, so nothing needs cleaning up).
            (
                "FLOWPLANE_REDIS_URL".to_string(),
                std::env::var("FLOWPLANE_REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            ),
            ("FLOWPLANE_REDIS_PREFIX".to_string(), nats_prefix.clone()),
            ("FLOWPLANE_CONFIG_URL".to_string(), config_url),
            ("FLOWPLANE_LOG".to_string(), "info".to_string()),
            // Scenarios' Envoys write their access logs into the scenario's directory.
            (
                "FLOWPLANE_ACCESS_LOG_DIR".to_string(),
                dir.display().to_string(),
            ),
            // Config refuses to start without a key that seals secrets at rest; any 32 bytes do.
            (
                "FLOWPLANE_SECRETS_KEY".to_string(),
                "ZTJlLXNlY3JldHMta2V5LTMyLWJ5dGVzLWxvbmchISE=".to_string(),
            ),
        ];
        if let Some(tls) = &tls {
            common.push((
                "FLOWPLANE_CONFIG_CA_FILE".to_string(),
                tls.ca_file.display().to_string(),
            ));
        }
        common.extend(dependencies.env.iter().cloned());
        let mut config = vec![
            (
                "FLOWPLANE_DATABASE_URL".to_string(),
                format!("{db_base}/{database}"),
            ),
            ("FLOWPLANE_CREATE_DATABASE".into(), "true".into()),
            (
                "FLOWPLANE_CONFIG_GRPC_ADDR".into(),
                format!("127.0.0.1:{config_grpc}"),
            ),
            (
                "FLOWPLANE_CONFIG_HTTP_ADDR".into(),
                format!("127.0.0.1:{config_http}"),
            ),
        ];
        if let Some(tls) = &tls {
            config.push((
                "FLOWPLANE_CONFIG_GRPC_TLS_CERT_FILE".into(),
                tls.cert_file.display().to_string(),
            ));
            config.push((
                "FLOWPLANE_CONFIG_GRPC_TLS_KEY_FILE".into(),
                tls.key_file.display().to_string(),
            ));
        }
        let mut stack = Self {
            dir: dir.clone(),
            api_url: format!("http://127.0.0.1:{api}"),
            xds_port: xds,
            envoy_admin_port: envoy_admin,
            config_http: format!("http://127.0.0.1:{config_http}"),
            config_grpc_port: config_grpc,
            xds_http: format!("http://127.0.0.1:{xds_http}"),
            ratelimit_port: ratelimit,
            learning_port: learning,
            shared_gateway_port: free_port(),
            database: database.clone(),
            nats_prefix,
            children: Vec::new(),
            common: common.clone(),
            config,
            tls: tls.clone(),
        };
        stack.config.push((
            "FLOWPLANE_SHARED_GATEWAY_PORT".into(),
            stack.shared_gateway_port.to_string(),
        ));
        stack.start_config().await?;
        stack.spawn(
            "flowplane-xds-server",
            &common,
            &envoy_facing("XDS", xds, xds_http, tls.as_ref()),
        )?;
        stack
            .wait_ready(
                "flowplane-xds-server",
                &format!("{}/readyz", stack.xds_http),
            )
            .await?;
        stack
            .spawn_ratelimit("flowplane-ratelimit", ratelimit)
            .await?;
        stack.spawn_learning(learning).await?;
        let gateway = stack.gateway_settings(api);
        stack.spawn("flowplane-api-gateway", &common, &gateway)?;
        stack
            .wait_ready(
                "flowplane-api-gateway",
                &format!("{}/readyz", stack.api_url),
            )
            .await?;
        Ok(stack)
    }

    /// Starts another api-gateway replica on the same config and NATS (as a load balancer
    /// would put several behind one address). Its log is `<name>.log`; returns its base URL.
    pub async fn add_api_gateway(&mut self, name: &str) -> anyhow::Result<String> {
        let port = free_port();
        let common = self.common.clone();
        let gateway = self.gateway_settings(port);
        self.spawn_named(name, "flowplane-api-gateway", &common, &gateway)?;
        let url = format!("http://127.0.0.1:{port}");
        self.wait_ready(name, &format!("{url}/readyz")).await?;
        Ok(url)
    }

    /// Starts another xds-server replica on the same config and NATS; returns its xDS port
    /// and the base URL of its health and metrics endpoint. Its log is `<name>.log`.
    pub async fn add_xds_server(&mut self, name: &str) -> anyhow::Result<(u16, String)> {
        self.add_xds_server_with(name, &[]).await
    }

    /// [`Stack::add_xds_server`] with settings of its own (overriding the stack's).
    pub async fn add_xds_server_with(
        &mut self,
        name: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<(u16, String)> {
        let (xds, http) = (free_port(), free_port());
        let common = self.common.clone();
        let mut settings = envoy_facing("XDS", xds, http, self.tls.as_ref());
        settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self.spawn_named(name, "flowplane-xds-server", &common, &settings)?;
        let http_url = format!("http://127.0.0.1:{http}");
        self.wait_ready(name, &format!("{http_url}/readyz")).await?;
        Ok((xds, http_url))
    }

    /// Starts another ratelimit replica on the same Redis prefix; returns its gRPC port. Its
    /// log is `<name>.log`.
    pub async fn add_ratelimit(&mut self, name: &str) -> anyhow::Result<u16> {
        let port = free_port();
        self.spawn_ratelimit(name, port).await?;
        Ok(port)
    }

    /// An api-gateway's own settings: its port, and where the bootstraps it hands out point.
    fn gateway_settings(&self, port: u16) -> Vec<(&'static str, String)> {
        // The certificate's name, when the services speak TLS.
        let host = if self.tls.is_some() {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let mut settings = vec![
            ("FLOWPLANE_API_ADDR", format!("127.0.0.1:{port}")),
            ("FLOWPLANE_XDS_PUBLIC_HOST", host.into()),
            ("FLOWPLANE_XDS_PUBLIC_PORT", self.xds_port.to_string()),
            ("FLOWPLANE_RATELIMIT_PUBLIC_HOST", host.into()),
            (
                "FLOWPLANE_RATELIMIT_PUBLIC_PORT",
                self.ratelimit_port.to_string(),
            ),
            ("FLOWPLANE_LEARNING_PUBLIC_HOST", host.into()),
            (
                "FLOWPLANE_LEARNING_PUBLIC_PORT",
                self.learning_port.to_string(),
            ),
            (
                "FLOWPLANE_ENVOY_ADMIN_PORT",
                self.envoy_admin_port.to_string(),
            ),
        ];
        if let Some(tls) = &self.tls {
            let ca = tls.ca_file.display().to_string();
            for name in [
                "FLOWPLANE_XDS_PUBLIC_CA_FILE",
                "FLOWPLANE_RATELIMIT_PUBLIC_CA_FILE",
                "FLOWPLANE_LEARNING_PUBLIC_CA_FILE",
            ] {
                settings.push((name, ca.clone()));
            }
        }
        settings
    }

    /// Starts the learning service on `port`, flushing to config every 200 ms so scenarios
    /// see what was learned quickly. Its log is `flowplane-learning.log`.
    async fn spawn_learning(&mut self, port: u16) -> anyhow::Result<()> {
        let http = free_port();
        let common = self.common.clone();
        let mut settings = envoy_facing("LEARNING", port, http, self.tls.as_ref());
        settings.push(("FLOWPLANE_LEARNING_FLUSH_MS".into(), "200".into()));
        self.spawn("flowplane-learning", &common, &settings)?;
        self.wait_ready(
            "flowplane-learning",
            &format!("http://127.0.0.1:{http}/readyz"),
        )
        .await
    }

    async fn spawn_ratelimit(&mut self, name: &str, port: u16) -> anyhow::Result<()> {
        let http = free_port();
        let common = self.common.clone();
        let settings = envoy_facing("RATELIMIT", port, http, self.tls.as_ref());
        self.spawn_named(name, "flowplane-ratelimit", &common, &settings)?;
        self.wait_ready(name, &format!("http://127.0.0.1:{http}/readyz"))
            .await
    }

    /// Starts the mcp service against this stack's api-gateway; returns its base URL (MCP is
    /// at `/api/v1/mcp/cp` under it). Its log is `flowplane-mcp.log`.
    pub async fn add_mcp(&mut self) -> anyhow::Result<String> {
        let port = free_port();
        let common = self.common.clone();
        let api_url = self.api_url.clone();
        self.spawn_named(
            "flowplane-mcp",
            "flowplane-mcp",
            &common,
            &[
                ("FLOWPLANE_MCP_ADDR", format!("127.0.0.1:{port}")),
                ("FLOWPLANE_API_URL", api_url),
                // The scenarios' Envoys listen on loopback, as on a laptop.
                ("FLOWPLANE_MCP_TOOL_ALLOW_LOOPBACK", "true".to_string()),
            ],
        )?;
        let url = format!("http://127.0.0.1:{port}");
        self.wait_ready("flowplane-mcp", &format!("{url}/readyz"))
            .await?;
        Ok(url)
    }

    /// Starts config (again, after [`Stack::stop_config`]) and waits until it is ready.
    pub async fn start_config(&mut self) -> anyhow::Result<()> {
        let (common, config) = (self.common.clone(), self.config.clone());
        self.spawn("flowplane-config", &common, &config)?;
        self.wait_ready("flowplane-config", &format!("{}/readyz", self.config_http))
            .await
    }

    /// Stops config at once, closing its connections to the database (as for a restore).
    pub async fn stop_config(&mut self) -> anyhow::Result<()> {
        let at = self
            .children
            .iter()
            .position(|(name, _)| name == "flowplane-config")
            .ok_or_else(|| anyhow::anyhow!("config is not running"))?;
        let (_, mut child) = self.children.remove(at);
        child.kill().await?;
        Ok(())
    }

    /// Runs one SQL statement as the database superuser, connected to `postgres` (to copy,
    /// drop or create this stack's database while config is stopped).
    pub async fn admin_sql(&self, statement: &str) -> anyhow::Result<()> {
        let output = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
            ])
            .arg(statement)
            .output()
            .await?;
        anyhow::ensure!(
            output.status.success(),
            "{statement}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// Kills one service process at once (no graceful shutdown), as a crash would.
    pub async fn kill(&mut self, service: &str) -> anyhow::Result<()> {
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(name, _)| name == service)
            .ok_or_else(|| anyhow::anyhow!("no service {service}"))?;
        child.kill().await?;
        Ok(())
    }

    /// Every service's full log, keyed by service name (for scanning a whole run).
    pub fn full_logs(&self) -> Vec<(String, String)> {
        self.children
            .iter()
            .map(|(name, _)| {
                let log = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
                (name.clone(), log)
            })
            .collect()
    }

    fn spawn(
        &mut self,
        binary_name: &str,
        common: &[(String, String)],
        own: &[(impl AsRef<str>, String)],
    ) -> anyhow::Result<()> {
        self.spawn_named(binary_name, binary_name, common, own)
    }

    fn spawn_named(
        &mut self,
        name: &str,
        binary_name: &str,
        common: &[(String, String)],
        own: &[(impl AsRef<str>, String)],
    ) -> anyhow::Result<()> {
        let log_path = self.log_path(name);
        // Appended: a service started again keeps its earlier log.
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut command = Command::new(binary(binary_name)?);
        command.envs(common.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // As in a split deployment: the secret stays with config, each other service holds
        // only its own credential.
        let service = binary_name
            .strip_prefix("flowplane-")
            .and_then(flowplane_runtime::credential::Service::parse);
        if binary_name != "flowplane-config" {
            command.env_remove("FLOWPLANE_SERVICE_SECRET");
        }
        if let Some(service) = service {
            command.env(
                "FLOWPLANE_SERVICE_CREDENTIAL",
                self.service_secret()?.credential(service),
            );
        }
        command
            .envs(own.iter().map(|(k, v)| (k.as_ref(), v.as_str())))
            // A service's fatal error is one readable line in its log, not a backtrace.
            .env("RUST_LIB_BACKTRACE", "0")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn()?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// Config's service secret, from which every service's credential derives.
    pub fn service_secret(&self) -> anyhow::Result<flowplane_runtime::credential::ServiceSecret> {
        let secret = self
            .common
            .iter()
            .find(|(k, _)| k == "FLOWPLANE_SERVICE_SECRET")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        flowplane_runtime::credential::ServiceSecret::new(secret)
    }

    /// Waits until `service` answers `url` with success. A service that exits first fails at
    /// once (a port taken, a bad setting), with the end of its log.
    async fn wait_ready(&mut self, service: &str, url: &str) -> anyhow::Result<()> {
        let timeout = Duration::from_secs(30);
        let start = std::time::Instant::now();
        let mut last = String::from("never checked");
        while start.elapsed() < timeout {
            match reqwest::get(url).await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("status {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            if let Some(status) = self.exit_status(service) {
                anyhow::bail!(
                    "{service} exited ({status}) before it was ready\n--- {service} log ---\n{}",
                    self.log_tail(service)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!(
            "timed out after {timeout:?} waiting for {service} to be ready; last observation: {last}\n--- {service} log ---\n{}",
            self.log_tail(service)
        )
    }

    /// How `service` ended, if its process has.
    fn exit_status(&mut self, service: &str) -> Option<std::process::ExitStatus> {
        self.children
            .iter_mut()
            .find(|(name, _)| name == service)
            .and_then(|(_, child)| child.try_wait().ok().flatten())
    }

    /// The name of this stack's PostgreSQL database (for loading data in bulk).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The process id of a running service (for resource measurements).
    pub fn pid(&self, service: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(name, _)| name == service)
            .and_then(|(_, child)| child.id())
    }

    pub fn log_path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.log"))
    }

    pub fn log_tail(&self, service: &str) -> String {
        tail(&self.log_path(service), 40)
    }

    /// Every service's log, for failure messages.
    pub fn logs(&self) -> String {
        self.children
            .iter()
            .map(|(name, _)| format!("--- {name} ---\n{}", self.log_tail(name)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The one-time setup token, read from config's log as an operator would.
    pub async fn setup_token(&self) -> anyhow::Result<String> {
        let path = self.log_path("flowplane-config");
        let (token, _) = eventually(
            "the setup token in config's log",
            Duration::from_secs(10),
            || {
                let path = path.clone();
                async move {
                    let log = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                    let start = log.find("fp_setup_").ok_or("not logged yet")?;
                    let token: String = log[start..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    Ok(token)
                }
            },
        )
        .await?;
        Ok(token)
    }

    /// Stops the services and removes the database and the NATS stream.
    pub async fn stop(mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill().await;
        }
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Ok(client) = async_nats::connect(
            std::env::var("FLOWPLANE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        )
        .await
        {
            let js = async_nats::jetstream::new(client);
            let _ = js
                .delete_stream(flowplane_runtime::bus::stream_name(&self.nats_prefix))
                .await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The settings of a service Envoys call (`service`: `XDS`, `RATELIMIT`, `LEARNING`): its
/// gRPC and HTTP ports, and its certificate when the stack speaks TLS.
fn envoy_facing(
    service: &str,
    grpc: u16,
    http: u16,
    tls: Option<&ServiceTls>,
) -> Vec<(String, String)> {
    let mut settings = vec![
        (
            format!("FLOWPLANE_{service}_ADDR"),
            format!("127.0.0.1:{grpc}"),
        ),
        (
            format!("FLOWPLANE_{service}_HTTP_ADDR"),
            format!("127.0.0.1:{http}"),
        ),
    ];
    if let Some(tls) = tls {
        settings.push((
            format!("FLOWPLANE_{service}_TLS_CERT_FILE"),
            tls.cert_file.display().to_string(),
        ));
        settings.push((
            format!("FLOWPLANE_{service}_TLS_KEY_FILE"),
            tls.key_file.display().to_string(),
        ));
    }
    settings
}
