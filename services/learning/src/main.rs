use flowplane_learning::LearningConfig;
use flowplane_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("learning");
    let config = LearningConfig::from_env()?;
    let result = flowplane_learning::run(config, shutdown::on_signals()).await;
    // Spans still buffered are exported before the process ends.
    telemetry::shutdown();
    result
}
