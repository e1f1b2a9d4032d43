//! Endpoints over EDS through a real Envoy, for both ADS variants: moving a cluster to another
//! upstream re-sends only its endpoints (Envoy does not modify the cluster), and a change to
//! the cluster itself keeps traffic flowing (Envoy re-creates the cluster and gets its
//! endpoints again).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually};
use reqwest::Method;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_changes_travel_over_eds_state_of_the_world() {
    run("eds-sotw", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_changes_travel_over_eds_delta() {
    run("eds-delta", true).await;
}

async fn run(name: &str, delta: bool) {
    flowplane_e2e::run_scenario(name, move |stack| Box::pin(scenario(stack, delta))).await;
}

async fn scenario(stack: &Stack, delta: bool) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "eds").await?;
    let api = &tenant.api;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let mut bootstrap = bootstrap.clone();
    if delta {
        bootstrap["dynamic_resources"]["ads_config"]["api_type"] = "DELTA_GRPC".into();
    }
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let blue = Upstream::start("blue").await?;
    let green = Upstream::start("green").await?;
    let port = tenant.route_all("app", blue.port, &dataplane).await?;
    let url = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::new();
    let served_by = |expected: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            eventually(
                &format!("traffic to reach {expected}"),
                Duration::from_secs(20),
                || async {
                    let r = client.get(&url).send().await.map_err(|e| e.to_string())?;
                    if r.status() != 200 {
                        return Err(format!("status {}", r.status()));
                    }
                    let body: Value = r.json().await.map_err(|e| e.to_string())?;
                    (body["upstream"] == expected)
                        .then_some(())
                        .ok_or(format!("served by {}", body["upstream"]))
                },
            )
            .await
        }
    };
    served_by("blue").await?;
    let modified = envoy.stat("cluster_manager.cluster_modified").await?;

    // Another endpoint: only the endpoints travel; Envoy keeps the cluster as it is.
    api.expect(
        Method::PUT,
        &format!("/api/v1/teams/{}/clusters/app", tenant.team),
        Some(&tenant.cluster("app", green.port)),
        200,
    )
    .await?;
    served_by("green").await?;
    anyhow::ensure!(
        envoy.stat("cluster_manager.cluster_modified").await? == modified,
        "an endpoint change must not modify the cluster"
    );

    // A change to the cluster itself: Envoy re-creates it and must get its endpoints again,
    // or the cluster would never finish warming.
    let mut slower = tenant.cluster("app", green.port);
    slower["connectTimeoutSeconds"] = 3.into();
    api.expect(
        Method::PUT,
        &format!("/api/v1/teams/{}/clusters/app", tenant.team),
        Some(&slower),
        200,
    )
    .await?;
    eventually(
        "Envoy to apply the modified cluster",
        Duration::from_secs(30),
        || async {
            let now = envoy
                .stat("cluster_manager.cluster_modified")
                .await
                .map_err(|e| e.to_string())?;
            let warming = envoy
                .stat("cluster_manager.warming_clusters")
                .await
                .map_err(|e| e.to_string())?;
            (now > modified && warming == 0)
                .then_some(())
                .ok_or(format!("modified {now}, warming {warming}"))
        },
    )
    .await?;
    // Envoy gives up waiting for endpoints after its initial fetch timeout (15 s) and counts
    // it; the endpoints must have come with the cluster instead.
    anyhow::ensure!(
        envoy.stat("cluster.app.init_fetch_timeout").await? == 0,
        "the re-created cluster waited for its endpoints until Envoy gave up"
    );
    served_by("green").await?;
    envoy.stop().await;
    Ok(())
}
