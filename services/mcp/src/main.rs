use flowplane_mcp::McpConfig;
use flowplane_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("mcp");
    let config = McpConfig::from_env()?;
    flowplane_mcp::run(config, shutdown::on_signals()).await
}
