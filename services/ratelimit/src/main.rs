use flowplane_ratelimit::RateLimitConfig;
use flowplane_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("ratelimit");
    let config = RateLimitConfig::from_env()?;
    let result = flowplane_ratelimit::run(config, shutdown::on_signals()).await;
    // Spans still buffered are exported before the process ends.
    telemetry::shutdown();
    result
}
