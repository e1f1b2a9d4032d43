//! Tracing setup: human-readable logs by default, JSON with `FLOWPLANE_LOG_FORMAT=json`,
//! levels from `FLOWPLANE_LOG` (or `RUST_LOG`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops), so
/// `flowplane up` can start every service in one process.
pub fn init(service: &str) {
    let filter = crate::env::optional("FLOWPLANE_LOG")
        .or_else(|| crate::env::optional("RUST_LOG"))
        .unwrap_or_else(|| "info,sqlx=warn,h2=warn,tower=warn,hyper=warn,async_nats=warn".into());
    // Colours only on a terminal: a log file or collector gets plain `key=value` text that
    // `grep setup_token=` and log pipelines can read.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false);
    let installed = if crate::env::string("FLOWPLANE_LOG_FORMAT", "text") == "json" {
        builder.json().try_init().is_ok()
    } else {
        builder.try_init().is_ok()
    };
    if installed {
        tracing::debug!(service, "tracing initialized");
    }
}
