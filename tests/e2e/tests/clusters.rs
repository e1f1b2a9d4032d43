//! Clusters and the routes in front of them, proven by what a real Envoy does with traffic: a
//! retry policy hides a flaky upstream, a weighted split lands near its ratio, active health
//! checks take a failing endpoint out of rotation, outlier detection ejects an endpoint that
//! keeps answering 5xx, and circuit breakers shed load with `x-envoy-overloaded`. Bad cluster
//! bodies are refused with their field paths and change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use flowplane_e2e::upstream::{Behaviour, HEALTH_PATH};
use flowplane_e2e::{Api, Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::{Value, json};

const TEAM: &str = "my-org-default";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_weights_health_checks_and_circuit_breakers_shape_traffic() {
    flowplane_e2e::run_scenario("clusters", |stack| Box::pin(traffic_scenario(stack))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cluster_bodies_are_400s_with_field_paths_and_change_nothing() {
    flowplane_e2e::run_scenario("clusters-bad", |stack| Box::pin(bad_input_scenario(stack))).await;
}

/// The upstreams of the traffic scenario, each misbehaving in its own way.
struct Upstreams {
    flaky: Upstream,
    heavy: Upstream,
    light: Upstream,
    healthy: Upstream,
    sick: Upstream,
    broken: Upstream,
    slow: Upstream,
}

impl Upstreams {
    async fn start() -> anyhow::Result<Self> {
        let plain = Behaviour::default();
        Ok(Self {
            flaky: Upstream::start_with(
                "flaky",
                Behaviour {
                    fail_every_other: true,
                    ..plain
                },
            )
            .await?,
            heavy: Upstream::start("heavy").await?,
            light: Upstream::start("light").await?,
            healthy: Upstream::start_with(
                "healthy",
                Behaviour {
                    health_status: Some(200),
                    ..plain
                },
            )
            .await?,
            sick: Upstream::start_with(
                "sick",
                Behaviour {
                    health_status: Some(503),
                    ..plain
                },
            )
            .await?,
            broken: Upstream::start_with(
                "broken",
                Behaviour {
                    status: Some(500),
                    ..plain
                },
            )
            .await?,
            slow: Upstream::start_with(
                "slow",
                Behaviour {
                    delay: Some(Duration::from_millis(1500)),
                    ..plain
                },
            )
            .await?,
        })
    }
}

async fn traffic_scenario(stack: &Stack) -> anyhow::Result<()> {
    let (api, dataplane_id) = team_api(stack).await?;
    let bootstrap = api
        .get(&format!(
            "/api/v1/teams/{TEAM}/dataplanes/edge/envoy-config"
        ))
        .await?;
    anyhow::ensure!(bootstrap.status.is_success(), "envoy-config: {bootstrap:?}");
    let envoy = Envoy::start(&stack.dir, &bootstrap.text, stack.envoy_admin_port).await?;
    let upstreams = Upstreams::start().await?;
    for cluster in clusters(&upstreams) {
        api.expect(Method::POST, "/api/v1/clusters", Some(&cluster), 201)
            .await?;
    }
    api.expect(
        Method::POST,
        "/api/v1/route-configs",
        Some(&route_config()),
        201,
    )
    .await?;
    let port = free_port();
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&listener(&dataplane_id, port)),
        201,
    )
    .await?;
    let base = format!("http://127.0.0.1:{port}");
    // One client, so requests reuse a keep-alive connection and stay on one Envoy worker.
    let client = reqwest::Client::new();
    eventually(
        "Envoy to serve the split route",
        Duration::from_secs(15),
        || async { get(&client, &format!("{base}/split")).await.map(|_| ()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- envoy ---\n{}", envoy.log_tail()))?;

    let steps = async {
        retries_hide_a_flaky_upstream(&client, &base).await?;
        a_weighted_split_lands_near_its_ratio(&client, &base).await?;
        health_checks_take_a_failing_endpoint_out(&api, &client, &base, &envoy, &upstreams).await?;
        outlier_detection_ejects_an_endpoint_that_keeps_failing(&client, &base).await?;
        circuit_breakers_shed_load(&base).await
    };
    let result = steps.await;
    if result.is_err() {
        eprintln!("--- envoy ---\n{}", envoy.log_tail());
    }
    envoy.stop().await;
    result
}

/// The flaky upstream fails every other request. Without a retry exactly half of sequential
/// requests fail; with one retry on 5xx every failed attempt is followed by a good one.
async fn retries_hide_a_flaky_upstream(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let mut without = Vec::new();
    for _ in 0..10 {
        without.push(status(client, &format!("{base}/flaky/no-retry")).await?);
    }
    let failed = without.iter().filter(|s| **s == 503).count();
    anyhow::ensure!(
        failed == 5 && without.iter().all(|s| *s == 200 || *s == 503),
        "without retries half must fail: {without:?}"
    );
    let mut with = Vec::new();
    for _ in 0..10 {
        with.push(status(client, &format!("{base}/flaky/retry")).await?);
    }
    anyhow::ensure!(
        with.iter().all(|s| *s == 200),
        "with a retry every request must succeed: {with:?}"
    );
    println!("without retries: {without:?}; with one retry: {with:?}");
    Ok(())
}

/// 80/20 over 200 requests: the heavy share is Binomial(200, 0.8), mean 160 and standard
/// deviation √(200·0.8·0.2) ≈ 5.66. ±34 is six standard deviations, so a correct split fails
/// this check with probability below 10⁻⁸, while a 50/50 or ignored split (mean 100 or
/// 200/0 counts outside the band) cannot pass.
async fn a_weighted_split_lands_near_its_ratio(
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<()> {
    const REQUESTS: usize = 200;
    let mut heavy = 0;
    for _ in 0..REQUESTS {
        match get(client, &format!("{base}/split"))
            .await
            .map_err(anyhow::Error::msg)?
            .as_str()
        {
            "heavy" => heavy += 1,
            "light" => {}
            other => anyhow::bail!("the split reached an unexpected upstream: {other}"),
        }
    }
    anyhow::ensure!(
        (126..=194).contains(&heavy),
        "80/20 split over {REQUESTS} requests sent {heavy} to the heavy cluster"
    );
    println!("80/20 split: {heavy} of {REQUESTS} to the heavy cluster");
    Ok(())
}

/// Without health checks round robin reaches both endpoints; once the cluster probes
/// `/healthz` (which the sick endpoint answers with 503), every request goes to the healthy one.
async fn health_checks_take_a_failing_endpoint_out(
    api: &Api,
    client: &reqwest::Client,
    base: &str,
    envoy: &Envoy,
    upstreams: &Upstreams,
) -> anyhow::Result<()> {
    let pool = format!("{base}/pool");
    eventually(
        "round robin to reach both endpoints",
        Duration::from_secs(10),
        || async {
            let seen = served_by_many(client, &pool, 10).await?;
            if seen.iter().any(|s| s == "healthy") && seen.iter().any(|s| s == "sick") {
                Ok(())
            } else {
                Err(format!("served by {seen:?}"))
            }
        },
    )
    .await?;

    let mut checked = pool_cluster(upstreams);
    checked["healthChecks"] = json!([{
        "http": {"path": HEALTH_PATH, "expectedStatuses": [200]},
        "intervalMs": 200, "timeoutMs": 1000, "noTrafficIntervalMs": 200,
        "unhealthyThreshold": 1, "healthyThreshold": 1
    }]);
    api.expect(
        Method::PUT,
        "/api/v1/clusters/pool-cluster",
        Some(&checked),
        200,
    )
    .await?;
    let sick_host = format!("127.0.0.1:{}", upstreams.sick.port);
    let (_, took) = eventually(
        "Envoy to mark the sick endpoint failed by active health checks",
        Duration::from_secs(15),
        || async {
            let text = admin_clusters(envoy).await?;
            let flags = text
                .lines()
                .find(|l| l.starts_with(&format!("pool-cluster::{sick_host}::health_flags::")))
                .unwrap_or("no health_flags line");
            if flags.contains("failed_active_hc") {
                Ok(())
            } else {
                Err(flags.to_string())
            }
        },
    )
    .await?;
    // Envoy's workers pick up the checked cluster a moment after the admin view shows it.
    eventually(
        "every worker to use the health-checked cluster",
        Duration::from_secs(5),
        || async {
            let seen = served_by_many(client, &pool, 20).await?;
            if seen.iter().all(|s| s == "healthy") {
                Ok(())
            } else {
                Err(format!("served by {seen:?}"))
            }
        },
    )
    .await?;
    let seen = served_by_many(client, &pool, 50)
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        seen.iter().all(|s| s == "healthy"),
        "after the health checks only the healthy endpoint may serve: {seen:?}"
    );
    println!("active health checks marked the sick endpoint failed {took:?} after the PUT");
    Ok(())
}

/// The broken endpoint answers every request with 500. After two in a row it is ejected (for
/// far longer than the test runs), and the healthy endpoint serves everything.
async fn outlier_detection_ejects_an_endpoint_that_keeps_failing(
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<()> {
    let url = format!("{base}/outliers");
    let (_, took) = eventually(
        "outlier detection to eject the broken endpoint",
        Duration::from_secs(15),
        || async {
            let statuses = statuses_many(client, &url, 20).await?;
            if statuses.iter().all(|s| *s == 200) {
                Ok(())
            } else {
                Err(format!("statuses {statuses:?}"))
            }
        },
    )
    .await?;
    let statuses = statuses_many(client, &url, 50)
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        statuses.iter().all(|s| *s == 200),
        "the ejected endpoint must stay out: {statuses:?}"
    );
    println!("outlier detection ejected the broken endpoint within {took:?}");
    Ok(())
}

/// The slow cluster allows one connection, one request and one pending request; six
/// simultaneous 1.5 s requests overflow, and Envoy answers the overflow itself.
async fn circuit_breakers_shed_load(base: &str) -> anyhow::Result<()> {
    let url = format!("{base}/slow");
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            // A client each: separate connections, so the requests are truly concurrent.
            tokio::spawn(async move {
                let response = reqwest::get(&url).await?;
                let overloaded = response
                    .headers()
                    .get("x-envoy-overloaded")
                    .is_some_and(|v| v == "true");
                anyhow::Ok((response.status().as_u16(), overloaded))
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for request in requests {
        outcomes.push(request.await??);
    }
    let served = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let shed = outcomes
        .iter()
        .filter(|(s, overloaded)| *s == 503 && *overloaded)
        .count();
    anyhow::ensure!(
        served >= 1 && shed >= 1 && served + shed == outcomes.len(),
        "expected some served and the rest shed with x-envoy-overloaded: {outcomes:?}"
    );
    println!("circuit breakers: {served} served, {shed} shed with x-envoy-overloaded");
    Ok(())
}

async fn bad_input_scenario(stack: &Stack) -> anyhow::Result<()> {
    let (api, _) = team_api(stack).await?;
    let base = || {
        json!({"team": TEAM, "name": "bad-cluster",
            "endpoints": [{"host": "127.0.0.1", "port": 8080}]})
    };
    let with = |field: &str, value: Value| {
        let mut body = base();
        body[field] = value;
        body
    };
    let cases = [
        (
            with("healthChecks", json!([{"http": {"path": "healthz"}}])),
            "/healthChecks/0/http/path",
        ),
        (
            with("healthChecks", json!([{"http": {"path": "/h"}, "tcp": {}}])),
            "/healthChecks/0",
        ),
        (
            with("healthChecks", json!([{"grpc": {}}])),
            "/healthChecks/0/grpc",
        ),
        (
            with("healthChecks", json!([{"tcp": {"send": "xyz"}}])),
            "/healthChecks/0/tcp/send",
        ),
        (
            with("healthChecks", json!([{"tcp": {}, "intervalMs": 0}])),
            "/healthChecks/0/intervalMs",
        ),
        (
            with("healthChecks", json!([{"tcp": {}}, {"tcp": {}}])),
            "/healthChecks/1",
        ),
        (
            with("circuitBreakers", json!({"default": {"maxRequests": 0}})),
            "/circuitBreakers/default/maxRequests",
        ),
        (
            with("outlierDetection", json!({"maxEjectionPercent": 150})),
            "/outlierDetection/maxEjectionPercent",
        ),
        (
            with("idleTimeoutSeconds", json!(10_000_000)),
            "/idleTimeoutSeconds",
        ),
        (
            with(
                "endpoints",
                json!([{"host": "127.0.0.1", "port": 80},
                       {"host": "127.0.0.2", "port": 80, "priority": 2}]),
            ),
            "/endpoints/1/priority",
        ),
    ];
    for (body, field) in &cases {
        let reply = api.post("/api/v1/clusters", body).await?;
        anyhow::ensure!(
            reply.status.as_u16() == 400 && error_fields(&reply.body) == [*field],
            "{field}: expected a 400 at that field, got {reply:?}"
        );
    }
    let after = api.get("/api/v1/clusters/bad-cluster").await?;
    anyhow::ensure!(
        after.status.as_u16() == 404,
        "a refused cluster must not exist: {after:?}"
    );

    // An update with a bad field leaves the stored cluster as it was.
    let created = api
        .expect(Method::POST, "/api/v1/clusters", Some(&base()), 201)
        .await?;
    for (body, field) in &cases {
        let reply = api.put("/api/v1/clusters/bad-cluster", body).await?;
        anyhow::ensure!(
            reply.status.as_u16() == 400 && error_fields(&reply.body) == [*field],
            "update {field}: expected a 400 at that field, got {reply:?}"
        );
    }
    let stored = api
        .expect(Method::GET, "/api/v1/clusters/bad-cluster", None, 200)
        .await?;
    anyhow::ensure!(
        stored["revision"] == created["revision"] && stored["healthChecks"].is_null(),
        "a refused update must change nothing: before {created}, after {stored}"
    );
    Ok(())
}

fn clusters(upstreams: &Upstreams) -> Vec<Value> {
    let local = |name: &str, port: u16| {
        json!({"team": TEAM, "name": name, "connectTimeoutSeconds": 2,
            "endpoints": [{"host": "127.0.0.1", "port": port}]})
    };
    let mut slow = local("slow-cluster", upstreams.slow.port);
    slow["circuitBreakers"] =
        json!({"default": {"maxConnections": 1, "maxPendingRequests": 1, "maxRequests": 1}});
    vec![
        local("flaky-cluster", upstreams.flaky.port),
        local("heavy-cluster", upstreams.heavy.port),
        local("light-cluster", upstreams.light.port),
        pool_cluster(upstreams),
        json!({"team": TEAM, "name": "outlier-cluster", "connectTimeoutSeconds": 2,
            "endpoints": [{"host": "127.0.0.1", "port": upstreams.healthy.port},
                          {"host": "127.0.0.1", "port": upstreams.broken.port}],
            // Two endpoints: ejecting one is 50% of the cluster.
            "outlierDetection": {"consecutive5xx": 2, "intervalMs": 100,
                "baseEjectionTimeMs": 600_000, "maxEjectionPercent": 50}}),
        slow,
    ]
}

/// Two endpoints, no health checks yet: the scenario adds them with a PUT.
fn pool_cluster(upstreams: &Upstreams) -> Value {
    json!({"team": TEAM, "name": "pool-cluster", "connectTimeoutSeconds": 2,
        "endpoints": [{"host": "127.0.0.1", "port": upstreams.healthy.port},
                      {"host": "127.0.0.1", "port": upstreams.sick.port}]})
}

fn route_config() -> Value {
    let prefix = |value: &str| json!({"path": {"type": "prefix", "value": value}});
    let forward = |cluster: &str| json!({"type": "forward", "cluster": cluster});
    let mut retry = forward("flaky-cluster");
    retry["retryPolicy"] = json!({"retryOn": ["5xx"], "numRetries": 1});
    json!({"team": TEAM, "name": "clusters-route", "virtualHosts": [{
    "name": "all", "domains": ["*"],
    "routes": [
        {"name": "no-retry", "match": prefix("/flaky/no-retry"), "action": forward("flaky-cluster")},
        {"name": "retry", "match": prefix("/flaky/retry"), "action": retry},
        {"name": "split", "match": prefix("/split"), "action": {"type": "weighted",
            "clusters": [{"name": "heavy-cluster", "weight": 80},
                         {"name": "light-cluster", "weight": 20}]}},
        {"name": "pool", "match": prefix("/pool"), "action": forward("pool-cluster")},
        {"name": "outliers", "match": prefix("/outliers"), "action": forward("outlier-cluster")},
        {"name": "slow", "match": prefix("/slow"), "action": forward("slow-cluster")}
    ]}]})
}

fn listener(dataplane_id: &str, port: u16) -> Value {
    json!({"team": TEAM, "name": "clusters-listener", "address": "127.0.0.1", "port": port,
        "dataplaneId": dataplane_id,
        "filterChains": [{"filters": [{"type": "httpConnectionManager",
            "routeConfigName": "clusters-route",
            "httpFilters": [{"filter": {"type": "router"}}]}]}]})
}

/// initialize → organization (`my-org`, team [`TEAM`]) → team-scoped token → dataplane.
async fn team_api(stack: &Stack) -> anyhow::Result<(Api, String)> {
    let tenant = Tenant::create(stack, "my-org").await?;
    let (dataplane_id, _) = tenant.dataplane("edge").await?;
    Ok((tenant.api, dataplane_id))
}

/// The name of the upstream that answered a 200, else the status and body as the error.
async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {text}"));
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok(body["upstream"].as_str().unwrap_or_default().to_string())
}

async fn status(client: &reqwest::Client, url: &str) -> anyhow::Result<u16> {
    Ok(client.get(url).send().await?.status().as_u16())
}

async fn served_by_many(
    client: &reqwest::Client,
    url: &str,
    count: usize,
) -> Result<Vec<String>, String> {
    let mut seen = Vec::with_capacity(count);
    for _ in 0..count {
        seen.push(get(client, url).await?);
    }
    Ok(seen)
}

async fn statuses_many(
    client: &reqwest::Client,
    url: &str,
    count: usize,
) -> Result<Vec<u16>, String> {
    let mut statuses = Vec::with_capacity(count);
    for _ in 0..count {
        statuses.push(status(client, url).await.map_err(|e| e.to_string())?);
    }
    Ok(statuses)
}

/// Envoy's `/clusters` admin text: one `cluster::host::field::value` line per host field.
async fn admin_clusters(envoy: &Envoy) -> Result<String, String> {
    let url = format!("http://127.0.0.1:{}/clusters", envoy.admin_port);
    let response = reqwest::get(url).await.map_err(|e| e.to_string())?;
    response.text().await.map_err(|e| e.to_string())
}

fn error_fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}
