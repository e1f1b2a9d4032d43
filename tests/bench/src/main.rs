//! `flowplane-bench`: reproducible figures for docs/performance.md. It starts the services as
//! separate processes (release builds when run with `--release`), drives them like users and
//! Envoys do, and prints what it measured. It asserts nothing: numbers are reported, not judged.
//!
//!     cargo run --release -p flowplane-bench -- --streams 1000 --changes 20

mod cold;
mod diagnose;
mod envoy_latency;
mod import;
mod lean_envoy;
mod learning_overhead;
mod reconnect;
mod rest;
mod setup;
mod store;
mod streams;

use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser)]
struct Args {
    /// Simulated Envoy ADS streams connected to one xds-server replica.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// The ADS variant the simulated Envoys speak.
    #[arg(long, value_enum, default_value_t = streams::Protocol::Sotw)]
    protocol: streams::Protocol,
    /// Routes in the in-process snapshot rebuild benchmark (repeatable).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
    routes: Vec<usize>,
    /// Resources a cold replica loads in the in-process load benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    cold_resources: usize,
    /// REST changes whose propagation to every stream is timed.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Concurrent connections for the REST list benchmark.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds the REST list benchmark runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Route changes timed until a real Envoy serves them.
    #[arg(long, default_value_t = 50)]
    envoy_changes: usize,
    /// Operations in the generated OpenAPI document of the import benchmark.
    #[arg(long, default_value_t = 1000)]
    import_operations: usize,
    /// Resources in PostgreSQL when a cold xds-server replica starts, in the cold benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    cold_replica_resources: usize,
    /// Clusters a delta client holds when it reconnects, in the reconnect benchmark.
    #[arg(long, default_value_t = 1000)]
    reconnect_clusters: usize,
    /// Requests timed with and without a learning session, in the learning benchmark.
    #[arg(long, default_value_t = 2000)]
    learning_requests: usize,
    /// The OpenAPI document the diagnosis benchmark imports (GitHub's, as the e2e corpus has it).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/corpus/api.github.com.json"))]
    diagnose_document: std::path::PathBuf,
    /// Times each report is asked in the diagnosis benchmark.
    #[arg(long, default_value_t = 20)]
    diagnose_rounds: usize,
    /// Skip parts: any of store, streams, rest, envoy, learning, import, diagnose, reconnect,
    /// cold.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "# Flowplane benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    if !args.skip.iter().any(|s| s == "store") {
        store::run(&args.routes, args.cold_resources)?;
    }
    let mut stack = flowplane_e2e::Stack::start("bench").await?;
    let result = run(&args, &mut stack).await;
    if result.is_err() {
        eprintln!("{}", stack.logs());
    }
    stack.stop().await;
    result
}

async fn run(args: &Args, stack: &mut flowplane_e2e::Stack) -> anyhow::Result<()> {
    let world = setup::World::create(stack).await?;
    if !args.skip.iter().any(|s| s == "streams") {
        streams::run(stack, &world, args.streams, args.changes, args.protocol).await?;
    }
    if !args.skip.iter().any(|s| s == "rest") {
        rest::run(&world, args.connections, args.seconds).await?;
    }
    if !args.skip.iter().any(|s| s == "envoy") {
        envoy_latency::run(stack, &world, args.envoy_changes).await?;
    }
    if !args.skip.iter().any(|s| s == "learning") {
        learning_overhead::run(stack, &world, args.learning_requests).await?;
    }
    if !args.skip.iter().any(|s| s == "import") {
        import::run(stack, &world, args.import_operations).await?;
    }
    if !args.skip.iter().any(|s| s == "diagnose") {
        diagnose::run(stack, &world, &args.diagnose_document, args.diagnose_rounds).await?;
    }
    // Last: their clusters would otherwise be part of every other section's pushes.
    if !args.skip.iter().any(|s| s == "reconnect") {
        reconnect::run(stack, &world, args.reconnect_clusters).await?;
    }
    if !args.skip.iter().any(|s| s == "cold") {
        cold::run(stack, &world, args.cold_replica_resources).await?;
    }
    Ok(())
}

/// Microsecond histogram.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// `p50 / p99 / max` in milliseconds.
pub fn summary(h: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    )
}
