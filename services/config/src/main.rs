use flowplane_config::ConfigServiceConfig;
use flowplane_runtime::{bus::Bus, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("config");
    let config = ConfigServiceConfig::from_env()?;
    let bus = Bus::nats(&config.nats, &config.nats_prefix).await?;
    tracing::info!(bus = %bus.describe(), "change events go to the bus");
    let result = flowplane_config::run(config, bus, shutdown::on_signals()).await;
    // Spans still buffered are exported before the process ends.
    telemetry::shutdown();
    result
}
