//! The api-gateway binary: settings from `FLOWPLANE_*`, serve until SIGINT/SIGTERM.

use flowplane_api_gateway::{ApiGatewayConfig, run};
use flowplane_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("api-gateway");
    let config = ApiGatewayConfig::from_env()?;
    let result = run(config, shutdown::on_signals()).await;
    // Spans still buffered are exported before the process ends.
    telemetry::shutdown();
    result
}
