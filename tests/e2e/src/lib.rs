//! The harness for cross-service scenarios: the Flowplane services as separate processes on a
//! fresh database, a real Envoy, and small local upstreams. Scenarios in `tests/` read like the
//! user's story and use only the REST API.

pub mod api;
pub mod envoy;
pub mod jwt;
pub mod outage;
pub mod pki;
pub mod ports;
pub mod stack;
pub mod tenant;
pub mod upstream;

pub use api::Api;
pub use envoy::Envoy;
pub use outage::Outage;
pub use ports::free_port;
pub use stack::{Dependencies, ServiceTls, Stack};
pub use tenant::Tenant;
pub use upstream::Upstream;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The workspace root (two levels above this crate). Cargo sets `CARGO_MANIFEST_DIR` when it
/// runs a test, and that is preferred over the compile-time value: a build shared by several
/// checkouts (one target directory) may have been compiled in another, since removed, one.
pub fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
}

/// A scratch directory for one scenario's logs and files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "flowplane-e2e-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| unreachable!("cannot create {}: {e}", dir.display()));
    dir
}

/// A response header's value as text (empty when absent or not text).
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A scenario's body: borrows the stack it runs against.
pub type Scenario<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

/// Runs `scenario` against a fresh stack named `name`, then stops the stack. A failing
/// scenario prints the tail of every service's log before failing the test. The scenario may
/// change the stack (add replicas, kill a service).
pub async fn run_scenario(
    name: &str,
    scenario: impl for<'a> FnOnce(&'a mut Stack) -> Scenario<'a>,
) {
    let mut stack = Stack::start(name)
        .await
        .unwrap_or_else(|e| panic!("stack: {e:#}"));
    let result = scenario(&mut stack).await;
    if let Err(e) = &result {
        eprintln!("{}", stack.logs());
        stack.stop().await;
        panic!("{e:#}");
    }
    stack.stop().await;
}

/// Waits out the last minute of a UTC day, if a scenario starts there: scenarios that count
/// against per-day rate limits must not straddle the window's reset.
pub async fn away_from_a_day_boundary() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let left = 86_400 - now % 86_400;
    if left < 60 {
        tokio::time::sleep(Duration::from_secs(left + 1)).await;
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with `what` and the last
/// observation.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let mut last = String::from("never checked");
    while start.elapsed() < timeout {
        match check().await {
            Ok(value) => return Ok((value, start.elapsed())),
            Err(observed) => last = observed,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("timed out after {timeout:?} waiting for {what}; last observation: {last}")
}

/// The sum of a Prometheus metric's samples (all label sets) on a service's `/metrics` at
/// `base`; 0 when it has none yet.
pub async fn metric(base: &str, name: &str) -> Result<f64, String> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
