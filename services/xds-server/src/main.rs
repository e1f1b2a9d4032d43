use flowplane_runtime::{bus::Bus, shutdown, telemetry};
use flowplane_xds_server::XdsServerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("xds-server");
    let config = XdsServerConfig::from_env()?;
    // Never waits for NATS: a replica loads its state from config and serves without it.
    let bus = Bus::nats_subscriber(&config.nats, &config.nats_prefix).await?;
    tracing::info!(bus = %bus.describe(), "change events come from the bus");
    let result = flowplane_xds_server::run(config, bus, shutdown::on_signals()).await;
    // Spans still buffered are exported before the process ends.
    telemetry::shutdown();
    result
}
