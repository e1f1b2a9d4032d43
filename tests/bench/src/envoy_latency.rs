//! REST change → a real Envoy serves it: alternate a route between two upstreams and time how
//! long after the PUT started the first request lands on the new one.

use std::time::{Duration, Instant};

use flowplane_e2e::{Stack, Upstream, free_port};
use reqwest::Method;
use serde_json::{Value, json};

use crate::setup::{TEAM, World, cluster};

pub async fn run(stack: &Stack, world: &World, changes: usize) -> anyhow::Result<()> {
    let api = &world.api;
    let envoy = crate::setup::start_envoy(stack, world).await?;
    let (a, b) = (Upstream::start("a").await?, Upstream::start("b").await?);
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&cluster("up-a", a.port)),
        201,
    )
    .await?;
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&cluster("up-b", b.port)),
        201,
    )
    .await?;
    api.expect(
        Method::POST,
        "/api/v1/route-configs",
        Some(&route("up-a")),
        201,
    )
    .await?;
    let port = free_port();
    api.expect(Method::POST, "/api/v1/listeners", Some(&json!({"team": TEAM, "name": "bench-listener",
        "address": "127.0.0.1", "port": port, "dataplaneId": world.dataplane_id,
        "filterChains": [{"filters": [{"type": "httpConnectionManager", "routeConfigName": "bench-route"}]}]})), 201).await?;
    let url = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::new();
    wait_for(&client, &url, "a", Instant::now()).await?;

    let mut latency = crate::histogram()?;
    for i in 0..changes {
        let (cluster, upstream) = if i % 2 == 0 {
            ("up-b", "b")
        } else {
            ("up-a", "a")
        };
        let start = Instant::now();
        api.expect(
            Method::PUT,
            &format!("/api/v1/teams/{TEAM}/route-configs/bench-route"),
            Some(&route(cluster)),
            200,
        )
        .await?;
        let took = wait_for(&client, &url, upstream, start).await?;
        latency.record(took.as_micros() as u64)?;
    }
    println!("\n## REST change → real Envoy serves it ({changes} route swaps)");
    println!("- {}", crate::summary(&latency));
    envoy.stop().await;
    Ok(())
}

fn route(cluster: &str) -> Value {
    json!({"team": TEAM, "name": "bench-route", "virtualHosts": [{"name": "all", "domains": ["*"],
        "routes": [{"match": {"path": {"type": "prefix", "value": "/"}}, "action": {"type": "forward", "cluster": cluster}}]}]})
}

/// Polls until a response comes from `upstream`; returns the time since `start`.
async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    upstream: &str,
    start: Instant,
) -> anyhow::Result<Duration> {
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(response) = client.get(url).send().await
            && let Ok(body) = response.json::<Value>().await
            && body["upstream"] == upstream
        {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    anyhow::bail!("Envoy never served upstream {upstream}")
}
