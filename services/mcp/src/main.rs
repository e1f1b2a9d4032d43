use flowplane_mcp::McpConfig;
use flowplane_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("mcp");
    let config = McpConfig::from_env()?;
    let result = flowplane_mcp::run(config, shutdown::on_signals()).await;
    // Spans still buffered are exported before the process ends.
    telemetry::shutdown();
    result
}
