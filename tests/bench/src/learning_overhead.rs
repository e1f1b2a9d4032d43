//! What a learning session costs the traffic it learns from: the same requests (a JSON POST
//! and its JSON answer) through a real Envoy, timed without a session and then with one
//! capturing them. Envoy copies the exchange in observability mode and never waits for the
//! learning service, so the difference is Envoy's own work of copying.

use std::time::{Duration, Instant};

use flowplane_e2e::{Stack, Upstream, free_port};
use reqwest::Method;
use serde_json::json;

use crate::setup::{TEAM, World, cluster};

pub async fn run(stack: &Stack, world: &World, requests: usize) -> anyhow::Result<()> {
    let api = &world.api;
    let envoy = crate::setup::start_envoy(stack, world).await?;
    let upstream = Upstream::start("learned").await?;
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&cluster("learned", upstream.port)),
        201,
    )
    .await?;
    api.expect(
        Method::POST,
        "/api/v1/route-configs",
        Some(&json!({"team": TEAM,
        "name": "learned-route", "virtualHosts": [{"name": "all", "domains": ["*"],
        "routes": [{"match": {"path": {"type": "prefix", "value": "/"}},
            "action": {"type": "forward", "cluster": "learned"}}]}]})),
        201,
    )
    .await?;
    let port = free_port();
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&json!({"team": TEAM,
        "name": "learned-listener", "address": "127.0.0.1", "port": port,
        "dataplaneId": world.dataplane_id,
        "filterChains": [{"filters": [{"type": "httpConnectionManager",
            "routeConfigName": "learned-route"}]}]})),
        201,
    )
    .await?;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/orders/17");
    let body = json!({"customer": {"id": 42, "email": "a@example.com"},
        "items": [{"sku": "A-1", "quantity": 2, "price": 9.5}], "note": null});
    let send = || client.post(&url).json(&body).send();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !send().await.is_ok_and(|r| r.status().is_success()) {
        anyhow::ensure!(Instant::now() < deadline, "Envoy never served the listener");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let without = time(&send, requests).await?;
    api.expect(
        Method::POST,
        "/api/v1/learning-sessions",
        Some(&json!({"team": TEAM,
        "name": "bench-session", "listener": "learned-listener", "state": "active"})),
        201,
    )
    .await?;
    // Capturing once something has been learned.
    let learned = format!("/api/v1/teams/{TEAM}/learning-sessions/bench-session/endpoints");
    loop {
        send().await?;
        let items = api.get(&learned).await?.body["items"].clone();
        if items.as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline + Duration::from_secs(20),
            "nothing was learned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let with = time(&send, requests).await?;
    // Let the last flush land, then see that every request was learned from.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let items = api.get(&learned).await?.body["items"].clone();
    let samples: u64 = items
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["samples"].as_u64())
        .sum();
    println!(
        "\n## A learning session's cost to the traffic it learns from ({requests} JSON POSTs through Envoy, one at a time)"
    );
    println!("- without a session: {}", crate::summary(&without));
    println!("- with a session capturing: {}", crate::summary(&with));
    println!(
        "- learned: {} endpoint(s) from {samples} exchanges",
        items.as_array().map_or(0, Vec::len)
    );
    envoy.stop().await;
    Ok(())
}

async fn time<F, Fut>(send: &F, requests: usize) -> anyhow::Result<hdrhistogram::Histogram<u64>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let mut latency = crate::histogram()?;
    for _ in 0..requests {
        let start = Instant::now();
        let response = send().await?;
        anyhow::ensure!(response.status().is_success(), "{}", response.status());
        response.bytes().await?;
        latency.record(start.elapsed().as_micros() as u64)?;
    }
    Ok(latency)
}
