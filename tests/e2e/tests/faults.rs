//! Faults, with every service as its own process and a real Envoy carrying traffic: route
//! swaps under load, an xds-server replica killed, PostgreSQL and NATS taken away and brought
//! back. In each, Envoy must keep serving and nothing acknowledged may be lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flowplane_e2e::{
    Dependencies, Envoy, Outage, Stack, Tenant, Upstream, eventually, free_port, metric,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_swaps_between_new_clusters_under_traffic_fail_no_request() {
    let stack = Stack::start("swaps").await.expect("stack");
    let result = route_swaps(&stack).await;
    finish(stack, result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_xds_replica_leaves_envoy_serving_through_another() {
    let mut stack = Stack::start("replica-kill").await.expect("stack");
    let result = replica_killed(&mut stack).await;
    finish(stack, result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_without_nats_serves_and_follows_changes() {
    let mut stack = Stack::start("no-nats-replica").await.expect("stack");
    let result = replica_without_nats(&mut stack).await;
    finish(stack, result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_postgres_the_api_answers_503_and_envoy_keeps_serving() {
    let postgres = Outage::forward("127.0.0.1:5432").await.expect("proxy");
    let dependencies = Dependencies {
        database_addr: Some(format!("127.0.0.1:{}", postgres.port)),
        ..Dependencies::default()
    };
    let stack = Stack::start_with("pg-outage", dependencies)
        .await
        .expect("stack");
    let result = postgres_outage(&stack, &postgres).await;
    finish(stack, result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_envoy_keeps_serving_and_catches_up_when_it_returns() {
    let nats = Outage::forward("127.0.0.1:4222").await.expect("proxy");
    let dependencies = Dependencies {
        nats_url: Some(format!("nats://127.0.0.1:{}", nats.port)),
        ..Dependencies::default()
    };
    let stack = Stack::start_with("nats-outage", dependencies)
        .await
        .expect("stack");
    let result = nats_outage(&stack, &nats).await;
    finish(stack, result).await;
}

async fn finish(stack: Stack, result: anyhow::Result<()>) {
    if let Err(e) = &result {
        eprintln!("{}", stack.logs());
        stack.stop().await;
        panic!("{e:#}");
    }
    stack.stop().await;
}

/// Each swap creates a cluster, moves the route onto it and deletes the previous cluster:
/// make-before-break must hold at every step, so no request may fail.
async fn route_swaps(stack: &Stack) -> anyhow::Result<()> {
    let (tenant, envoy, url, upstreams) = serving(stack, "swaps", "swap-0").await?;
    let traffic = Traffic::start(&url);
    for i in 1..=10 {
        let upstream = &upstreams[i % 2];
        let cluster = format!("swap-{i}");
        tenant
            .api
            .expect(
                Method::POST,
                "/api/v1/clusters",
                Some(&tenant.cluster(&cluster, upstream.port)),
                201,
            )
            .await?;
        tenant
            .api
            .expect(
                Method::PUT,
                "/api/v1/route-configs/routes",
                Some(&tenant.route_config("routes", &cluster)),
                200,
            )
            .await?;
        eventually("Envoy to follow the swap", Duration::from_secs(10), || {
            served_by(&url, &upstream.name)
        })
        .await?;
        let previous = format!("swap-{}", i - 1);
        tenant
            .api
            .expect(
                Method::DELETE,
                &format!("/api/v1/clusters/{previous}"),
                None,
                204,
            )
            .await?;
    }
    eventually(
        "Envoy to drop the last deleted cluster",
        Duration::from_secs(10),
        || async {
            let dump = envoy.config_dump().await.map_err(|e| e.to_string())?;
            if dump.to_string().contains("\"swap-9\"") {
                Err("swap-9 still present".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await?;
    let report = traffic.stop().await;
    anyhow::ensure!(
        report.failures.is_empty(),
        "requests failed during swaps: {:?}",
        report.failures
    );
    anyhow::ensure!(
        report.ok >= 100,
        "too little traffic to prove anything: {}",
        report.ok
    );
    envoy.stop().await;
    Ok(())
}

/// A replica whose NATS is unreachable from its first moment: it loads its state from config,
/// serves Envoy, and polls config's revision at its resync interval, so a change still
/// reaches Envoy. (Before, it subscribed first and never started.)
async fn replica_without_nats(stack: &mut Stack) -> anyhow::Result<()> {
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let (port, http) = stack
        .add_xds_server_with(
            "xds-without-nats",
            &[
                ("FLOWPLANE_NATS_URL", nowhere),
                ("FLOWPLANE_XDS_RESYNC_SECONDS", "1".to_string()),
            ],
        )
        .await?;
    let tenant = Tenant::create(stack, "isolated").await?;
    let (dataplane, mut bootstrap) = tenant.dataplane("edge").await?;
    // This Envoy knows only the replica without NATS.
    *bootstrap
        .pointer_mut("/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints")
        .ok_or_else(|| anyhow::anyhow!("the bootstrap has no xDS endpoints"))? = json!([
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
    ]);
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let (url, upstreams) = route_all_traffic(&tenant, &dataplane, "before").await?;
    tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster("after", upstreams[1].port)),
            201,
        )
        .await?;
    tenant
        .api
        .expect(
            Method::PUT,
            "/api/v1/route-configs/routes",
            Some(&tenant.route_config("routes", "after")),
            200,
        )
        .await?;
    let (_, took) = eventually(
        "Envoy to follow a change through the replica without NATS",
        Duration::from_secs(10),
        || served_by(&url, &upstreams[1].name),
    )
    .await?;
    let polled = metric(&http, "xds_polled_loads_total").await.unwrap_or(0.0);
    anyhow::ensure!(
        polled >= 1.0,
        "the change came some other way than polling ({polled} polled loads)"
    );
    eprintln!("a change reached Envoy through the replica without NATS in {took:?}");
    envoy.stop().await;
    Ok(())
}

/// Envoy's bootstrap lists two replicas; the one it is connected to dies. Envoy keeps its
/// configuration, reconnects to the other, is not re-sent what it already has (the replicas
/// agree on versions), and follows the next change.
async fn replica_killed(stack: &mut Stack) -> anyhow::Result<()> {
    let (second_port, second_http) = stack.add_xds_server("xds-replica-2").await?;
    let tenant = Tenant::create(stack, "replicas").await?;
    let (dataplane, mut bootstrap) = tenant.dataplane("edge").await?;
    let endpoints = bootstrap
        .pointer_mut("/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| anyhow::anyhow!("the bootstrap has no xDS endpoints"))?;
    endpoints.push(json!({"endpoint": {"address": {"socket_address":
        {"address": "127.0.0.1", "port_value": second_port}}}}));
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let (url, upstreams) = route_all_traffic(&tenant, &dataplane, "before").await?;

    let first_http = stack.xds_http.clone();
    let (connected, _) = eventually(
        "Envoy's stream on one replica",
        Duration::from_secs(10),
        || async {
            let first = metric(&first_http, "xds_connected_streams").await?;
            let second = metric(&second_http, "xds_connected_streams").await?;
            match (first, second) {
                (1.0, 0.0) => Ok(true),
                (0.0, 1.0) => Ok(false),
                other => Err(format!("streams per replica: {other:?}")),
            }
        },
    )
    .await?;
    let (doomed, survivor) = if connected {
        ("flowplane-xds-server", second_http)
    } else {
        ("xds-replica-2", first_http)
    };
    let pushes_before = metric(&survivor, "xds_pushes_total").await;

    let traffic = Traffic::start(&url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.kill(doomed).await?;
    eventually(
        "Envoy to reconnect to the surviving replica",
        Duration::from_secs(30),
        || async {
            match metric(&survivor, "xds_connected_streams").await? {
                1.0 => Ok(()),
                n => Err(format!("{n} streams")),
            }
        },
    )
    .await?;
    // Give the reconnected stream time to present its versions for every type.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pushes_after = metric(&survivor, "xds_pushes_total").await;
    anyhow::ensure!(
        pushes_before == pushes_after,
        "the surviving replica re-sent unchanged resources: {pushes_before:?} → {pushes_after:?}"
    );

    tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster("after-failover", upstreams[1].port)),
            201,
        )
        .await?;
    tenant
        .api
        .expect(
            Method::PUT,
            "/api/v1/route-configs/routes",
            Some(&tenant.route_config("routes", "after-failover")),
            200,
        )
        .await?;
    eventually(
        "Envoy to follow a change through the surviving replica",
        Duration::from_secs(10),
        || served_by(&url, &upstreams[1].name),
    )
    .await?;
    let report = traffic.stop().await;
    anyhow::ensure!(
        report.failures.is_empty(),
        "requests failed while the replica died: {:?}",
        report.failures
    );
    anyhow::ensure!(report.ok >= 20, "too little traffic: {}", report.ok);
    envoy.stop().await;
    Ok(())
}

async fn postgres_outage(stack: &Stack, postgres: &Outage) -> anyhow::Result<()> {
    let (tenant, envoy, url, upstreams) = serving(stack, "pg-outage", "before").await?;
    postgres.cut();

    let (unavailable, _) = eventually(
        "the API to notice the database is gone",
        Duration::from_secs(15),
        || async {
            let reply = tenant
                .api
                .get("/api/v1/clusters")
                .await
                .map_err(|e| e.to_string())?;
            match reply.status.as_u16() {
                503 => Ok(reply),
                200 => Err("still answering from the database".to_string()),
                _ => Ok(reply),
            }
        },
    )
    .await?;
    anyhow::ensure!(
        unavailable.status.as_u16() == 503
            && unavailable.body["code"] == "unavailable"
            && unavailable
                .headers
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json")),
        "expected a 503 problem: {unavailable:?}"
    );
    let write = tenant
        .api
        .post(
            "/api/v1/clusters",
            &tenant.cluster("during", upstreams[1].port),
        )
        .await?;
    anyhow::ensure!(
        write.status.as_u16() == 503,
        "a write without the database: {write:?}"
    );
    served_by(&url, &upstreams[0].name)
        .await
        .map_err(|e| anyhow::anyhow!("Envoy stopped serving without the database: {e}"))?;

    postgres.restore().await?;
    eventually(
        "the API to recover with the database",
        Duration::from_secs(30),
        || async {
            let reply = tenant
                .api
                .get("/api/v1/clusters")
                .await
                .map_err(|e| e.to_string())?;
            if reply.status.is_success() {
                Ok(reply.body)
            } else {
                Err(format!("{reply:?}"))
            }
        },
    )
    .await
    .and_then(|(clusters, _)| {
        let names: Vec<&str> = clusters["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        anyhow::ensure!(
            names == ["before"],
            "the acknowledged cluster survives and the refused write left nothing: {names:?}"
        );
        Ok(())
    })?;
    move_route(&tenant, "after", upstreams[1].port).await?;
    eventually(
        "a write after the outage to reach Envoy",
        Duration::from_secs(10),
        || served_by(&url, &upstreams[1].name),
    )
    .await?;
    envoy.stop().await;
    Ok(())
}

async fn nats_outage(stack: &Stack, nats: &Outage) -> anyhow::Result<()> {
    let (tenant, envoy, url, upstreams) = serving(stack, "nats-outage", "before").await?;
    nats.cut();
    // Config keeps accepting writes (they wait in its outbox); Envoy keeps its configuration.
    move_route(&tenant, "during", upstreams[1].port).await?;
    // Whether Envoy already has the change depends on the periodic re-sync (which reads config
    // over gRPC, not NATS); either way it must keep answering.
    let answer = reqwest::get(&url).await?;
    anyhow::ensure!(
        answer.status().is_success(),
        "Envoy stopped serving without NATS: {}",
        answer.status()
    );

    nats.restore().await?;
    eventually(
        "the change made during the outage to reach Envoy",
        Duration::from_secs(30),
        || served_by(&url, &upstreams[1].name),
    )
    .await?;
    // Events flow again: the next change arrives promptly.
    move_route(&tenant, "after", upstreams[0].port).await?;
    eventually(
        "a change after the outage to reach Envoy",
        Duration::from_secs(10),
        || served_by(&url, &upstreams[0].name),
    )
    .await?;
    envoy.stop().await;
    Ok(())
}

/// Points the route at a new cluster `name` on `port`.
async fn move_route(tenant: &Tenant, name: &str, port: u16) -> anyhow::Result<()> {
    tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster(name, port)),
            201,
        )
        .await?;
    tenant
        .api
        .expect(
            Method::PUT,
            "/api/v1/route-configs/routes",
            Some(&tenant.route_config("routes", name)),
            200,
        )
        .await?;
    Ok(())
}

/// A tenant whose Envoy serves `/` from upstream `blue` through cluster `first`.
async fn serving(
    stack: &Stack,
    org: &str,
    first: &str,
) -> anyhow::Result<(Tenant, Envoy, String, [Upstream; 2])> {
    let tenant = Tenant::create(stack, org).await?;
    let (dataplane, bootstrap) = tenant.dataplane("edge").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let (url, upstreams) = route_all_traffic(&tenant, &dataplane, first).await?;
    Ok((tenant, envoy, url, upstreams))
}

async fn route_all_traffic(
    tenant: &Tenant,
    dataplane: &str,
    first: &str,
) -> anyhow::Result<(String, [Upstream; 2])> {
    let upstreams = [
        Upstream::start("blue").await?,
        Upstream::start("green").await?,
    ];
    let port = free_port();
    for (path, body) in [
        ("clusters", tenant.cluster(first, upstreams[0].port)),
        ("route-configs", tenant.route_config("routes", first)),
        (
            "listeners",
            tenant.listener("edge", port, dataplane, "routes"),
        ),
    ] {
        tenant
            .api
            .expect(Method::POST, &format!("/api/v1/{path}"), Some(&body), 201)
            .await?;
    }
    let url = format!("http://127.0.0.1:{port}/");
    eventually("traffic through Envoy", Duration::from_secs(15), || {
        served_by(&url, &upstreams[0].name)
    })
    .await?;
    Ok((url, upstreams))
}

async fn served_by(url: &str, upstream: &str) -> Result<(), String> {
    let response = reqwest::get(url).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("{status}: {e}"))?;
    if body["upstream"] == upstream {
        Ok(())
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// Requests sent back to back until stopped; every answer other than a 2xx is a failure.
struct Traffic {
    stop: Arc<AtomicBool>,
    task: JoinHandle<TrafficReport>,
}

#[derive(Default)]
struct TrafficReport {
    ok: usize,
    failures: Vec<String>,
}

impl Traffic {
    fn start(url: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = url.to_string();
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut report = TrafficReport::default();
            while !flag.load(Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => report.ok += 1,
                    Ok(r) => report.failures.push(r.status().to_string()),
                    Err(e) => report.failures.push(e.to_string()),
                }
            }
            report
        });
        Self { stop, task }
    }

    async fn stop(self) -> TrafficReport {
        self.stop.store(true, Ordering::Relaxed);
        let report = self.task.await.unwrap_or_default();
        eprintln!(
            "traffic: {} answered, {} failed",
            report.ok,
            report.failures.len()
        );
        report
    }
}
