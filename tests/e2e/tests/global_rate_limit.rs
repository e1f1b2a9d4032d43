//! Global rate limiting through two real Envoys, each asking its own ratelimit replica, both
//! counting in the one Redis: a client's limit holds across the whole fleet. Also: requests
//! without the counted header are not counted, a route that switches the filter off, a route
//! with its own limits, and what happens when the ratelimit service is gone (fail open by
//! default, 500 with `failureModeDeny`). Bad limits are a 400 at their field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use flowplane_e2e::{
    Envoy, Stack, Tenant, Upstream, away_from_a_day_boundary, eventually, free_port,
};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_limit_holds_across_envoys_and_ratelimit_replicas() {
    flowplane_e2e::run_scenario("global-rate-limit", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &mut Stack) -> anyhow::Result<()> {
    // Limits here are per day, so the scenario must not straddle a UTC midnight.
    away_from_a_day_boundary().await;
    let tenant = Tenant::create(stack, "limits").await?;
    let api = &tenant.api;
    let upstream = Upstream::start("app").await?;
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&tenant.cluster("app", upstream.port)),
        201,
    )
    .await?;
    let routes = json!({"team": tenant.team, "name": "limited-routes",
        "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"path": {"type": "exact", "value": "/health"}},
             "action": {"type": "forward", "cluster": "app"},
             "filterOverrides": {"envoy.filters.http.ratelimit": {"disabled": true}}},
            {"match": {"path": {"type": "prefix", "value": "/search"}},
             "action": {"type": "forward", "cluster": "app"},
             "filterOverrides": {"envoy.filters.http.ratelimit": {"globalRateLimit": {
                "limits": [{"name": "search", "requestsPerUnit": 1, "unit": "day"}]}}}},
            {"match": {"path": {"type": "prefix", "value": "/"}},
             "action": {"type": "forward", "cluster": "app"}}]}]});
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;

    // Two dataplanes of the team; the second Envoy asks a second ratelimit replica.
    let (gw_a, bootstrap_a) = tenant.dataplane("gw-a").await?;
    let (gw_b, mut bootstrap_b) = tenant.dataplane("gw-b").await?;
    let replica_b = stack.add_ratelimit("ratelimit-b").await?;
    let admin_b = free_port();
    point_ratelimit_at(&mut bootstrap_b, replica_b);
    bootstrap_b["admin"]["address"]["socket_address"]["port_value"] = json!(admin_b);
    let dir_a = stack.dir.join("envoy-a");
    let dir_b = stack.dir.join("envoy-b");
    std::fs::create_dir_all(&dir_a)?;
    std::fs::create_dir_all(&dir_b)?;
    let envoy_a = Envoy::start(&dir_a, &bootstrap_a.to_string(), stack.envoy_admin_port).await?;
    let envoy_b = Envoy::start(&dir_b, &bootstrap_b.to_string(), admin_b).await?;

    let (port_a, port_b) = (free_port(), free_port());
    let listener = |name: &str, port: u16, dataplane: &str, filter: Value| {
        let mut body = tenant.listener(name, port, dataplane, "limited-routes");
        body["filterChains"][0]["filters"][0]["httpFilters"] =
            json!([{"filter": filter}, {"filter": {"type": "router"}}]);
        body
    };
    let per_client = json!({"type": "globalRateLimit", "rateLimitHeaders": true,
        "limits": [{"name": "per-client", "requestsPerUnit": 3, "unit": "day",
                    "per": [{"type": "requestHeader", "header": "x-client"}]}]});

    // Bad limits: a 400 at the field, and no listener.
    let mut bad = per_client.clone();
    bad["limits"][0]["requestsPerUnit"] = json!(0);
    let refused = api
        .post("/api/v1/listeners", &listener("edge-a", port_a, &gw_a, bad))
        .await?;
    anyhow::ensure!(
        refused.status.as_u16() == 400
            && refused.body["errors"][0]["field"]
                == "/filterChains/0/filters/0/httpFilters/0/filter/limits/0/requestsPerUnit",
        "zero requests per unit: {refused:?}"
    );
    let missing = api.get("/api/v1/listeners/edge-a").await?;
    anyhow::ensure!(missing.status == 404, "nothing was created: {missing:?}");

    for (name, port, dataplane) in [("edge-a", port_a, &gw_a), ("edge-b", port_b, &gw_b)] {
        api.expect(
            Method::POST,
            "/api/v1/listeners",
            Some(&listener(name, port, dataplane, per_client.clone())),
            201,
        )
        .await?;
    }
    let client = reqwest::Client::new();
    let get = |port: u16, path: &str, who: Option<&str>| {
        let mut request = client.get(format!("http://127.0.0.1:{port}{path}"));
        if let Some(who) = who {
            request = request.header("x-client", who);
        }
        request.send()
    };
    for port in [port_a, port_b] {
        // Requests without the header are not counted, so probing readiness costs nothing.
        eventually(
            "both Envoys to serve the limited listener",
            Duration::from_secs(20),
            || async move {
                let r = get(port, "/", None).await.map_err(|e| e.to_string())?;
                (r.status() == 200)
                    .then_some(())
                    .ok_or(format!("status {}", r.status()))
            },
        )
        .await?;
    }

    // Alice's three requests are spread over both Envoys (and both ratelimit replicas).
    let mut remaining = Vec::new();
    for port in [port_a, port_b, port_a] {
        let r = get(port, "/orders", Some("alice")).await?;
        anyhow::ensure!(r.status() == 200, "alice within her limit: {}", r.status());
        remaining.push(flowplane_e2e::header(&r, "x-ratelimit-remaining"));
    }
    anyhow::ensure!(
        remaining == ["2", "1", "0"],
        "x-ratelimit-remaining counts down across Envoys: {remaining:?}"
    );
    for port in [port_b, port_a] {
        let r = get(port, "/orders", Some("alice")).await?;
        anyhow::ensure!(
            r.status() == 429 && flowplane_e2e::header(&r, "x-envoy-ratelimited") == "true",
            "alice over her limit on {port}: {} {:?}",
            r.status(),
            r.headers()
        );
    }
    // Other clients have their own counters; uncounted and exempt requests pass.
    let bob = get(port_b, "/orders", Some("bob")).await?;
    anyhow::ensure!(bob.status() == 200, "bob: {}", bob.status());
    for _ in 0..5 {
        let anonymous = get(port_a, "/orders", None).await?;
        anyhow::ensure!(
            anonymous.status() == 200,
            "no x-client: {}",
            anonymous.status()
        );
    }
    let health = get(port_a, "/health", Some("alice")).await?;
    anyhow::ensure!(
        health.status() == 200,
        "disabled route: {}",
        health.status()
    );

    // A route's own limits replace the listener's: one search a day for everyone, even alice.
    let first = get(port_a, "/search?q=1", Some("alice")).await?;
    anyhow::ensure!(first.status() == 200, "first search: {}", first.status());
    let second = get(port_b, "/search?q=2", Some("carol")).await?;
    anyhow::ensure!(second.status() == 429, "second search: {}", second.status());

    // Without its ratelimit replica, Envoy B lets requests through (failure mode allow)...
    stack.kill("ratelimit-b").await?;
    let open = get(port_b, "/orders", Some("alice")).await?;
    anyhow::ensure!(
        open.status() == 200,
        "fail open without the service: {}",
        open.status()
    );
    // ...and refuses them once the filter says `failureModeDeny`.
    let mut deny = per_client.clone();
    deny["failureModeDeny"] = json!(true);
    api.expect(
        Method::PUT,
        "/api/v1/listeners/edge-b",
        Some(&listener("edge-b", port_b, &gw_b, deny)),
        200,
    )
    .await?;
    eventually(
        "Envoy B to refuse requests it cannot check",
        Duration::from_secs(20),
        || async {
            let r = get(port_b, "/orders", Some("dave"))
                .await
                .map_err(|e| e.to_string())?;
            (r.status() == 500)
                .then_some(())
                .ok_or(format!("status {}", r.status()))
        },
    )
    .await?;
    // Envoy A's replica is still up: its verdicts are unchanged.
    let still = get(port_a, "/orders", Some("alice")).await?;
    anyhow::ensure!(still.status() == 429, "alice on A: {}", still.status());

    envoy_a.stop().await;
    envoy_b.stop().await;
    Ok(())
}

/// Points a bootstrap's ratelimit cluster at another replica.
fn point_ratelimit_at(bootstrap: &mut Value, port: u16) {
    let clusters = bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .expect("static clusters");
    let ratelimit = clusters
        .iter_mut()
        .find(|c| c["name"] == "flowplane_ratelimit")
        .expect("the bootstrap defines the ratelimit cluster");
    ratelimit["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        ["port_value"] = json!(port);
}
