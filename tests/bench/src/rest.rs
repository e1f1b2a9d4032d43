//! Authenticated REST throughput: `GET /api/v1/clusters` with a PAT from N concurrent
//! connections for a fixed time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::setup::World;

pub async fn run(world: &World, connections: usize, seconds: u64) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..connections {
        let api = world.api.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = crate::histogram()?;
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                match api.get("/api/v1/clusters").await {
                    Ok(reply) if reply.status.is_success() => {
                        latency.record(start.elapsed().as_micros() as u64)?
                    }
                    _ => errors += 1,
                }
            }
            Ok::<_, anyhow::Error>((latency, errors))
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = crate::histogram()?;
    let mut errors = 0;
    for task in tasks {
        let (latency, failed) = task.await??;
        all.add(&latency)?;
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "\n## REST: authenticated GET /api/v1/clusters, {connections} connections, {seconds} s"
    );
    println!(
        "- {:.0} requests/s, {errors} errors; latency {}",
        all.len() as f64 / elapsed,
        crate::summary(&all)
    );
    Ok(())
}
