//! A database restored to an earlier backup, with the replicas still holding what came after
//! it: the replicas converge on the restored state, and the first change after the restore
//! (made at a revision the database had already published, within JetStream's duplicate
//! window) reaches Envoy as an event rather than being dropped as a duplicate. The Envoy's
//! replica compares revisions with config only once an hour here, so only the event can bring
//! it the change.

use std::time::Duration;

use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, metric, run_scenario};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_database_reaches_envoy_and_loses_no_change() {
    run_scenario("restore", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &mut Stack) -> anyhow::Result<()> {
    let (xds_port, _) = stack
        .add_xds_server_with(
            "xds-hourly-check",
            &[("FLOWPLANE_XDS_RESYNC_SECONDS", "3600".to_string())],
        )
        .await?;
    let tenant = Tenant::create(stack, "acme").await?;
    let (dataplane, mut bootstrap) = tenant.dataplane("edge").await?;
    *bootstrap
        .pointer_mut("/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints")
        .ok_or_else(|| anyhow::anyhow!("the bootstrap has no xDS endpoints"))? = json!([
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": xds_port}}}}
    ]);
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstreams = [
        Upstream::start("backed-up").await?,
        Upstream::start("lost").await?,
        Upstream::start("after-restore").await?,
    ];
    let listener_port = tenant
        .route_all("app", upstreams[0].port, &dataplane)
        .await?;
    let url = format!("http://127.0.0.1:{listener_port}/");
    serves(&url, "backed-up", "the first config").await?;

    // The backup: a copy of the database taken while config is stopped.
    let database = stack.database().to_string();
    let backup = format!("{database}_backup");
    stack.stop_config().await?;
    stack
        .admin_sql(&format!("CREATE DATABASE {backup} TEMPLATE {database}"))
        .await?;
    stack.start_config().await?;

    // A change after the backup, which the restore will lose.
    point_app_at(&tenant, upstreams[1].port).await?;
    serves(&url, "lost", "the change made after the backup").await?;
    let ahead = metric(&stack.xds_http, "xds_revision")
        .await
        .map_err(anyhow::Error::msg)?;

    stack.stop_config().await?;
    for statement in [
        format!("DROP DATABASE {database} WITH (FORCE)"),
        format!("CREATE DATABASE {database} TEMPLATE {backup}"),
        format!("DROP DATABASE {backup}"),
    ] {
        stack.admin_sql(&statement).await?;
    }
    stack.start_config().await?;

    // The stack's own replica (default five-second check) goes back to the restored revision.
    let xds_http = stack.xds_http.clone();
    let (restored, took) = eventually(
        "the replica to converge on the restored database",
        Duration::from_secs(20),
        || {
            let xds_http = xds_http.clone();
            async move {
                match metric(&xds_http, "xds_revision").await? {
                    revision if revision < ahead => Ok(revision),
                    revision => Err(format!("at revision {revision}")),
                }
            }
        },
    )
    .await?;
    eprintln!("the replica went back from revision {ahead} to {restored} after {took:?}");

    // The first change after the restore re-uses the lost change's revision.
    point_app_at(&tenant, upstreams[2].port).await?;
    let (_, took) = eventually(
        "the change after the restore to reach Envoy",
        Duration::from_secs(10),
        || served_by(&url, "after-restore"),
    )
    .await?;
    eprintln!("the change after the restore reached Envoy in {took:?}");
    let logs = std::fs::read_to_string(stack.log_path("flowplane-config"))?;
    anyhow::ensure!(
        logs.contains("publishing under a new epoch"),
        "config did not move to a new epoch"
    );
    envoy.stop().await;
    Ok(())
}

async fn point_app_at(tenant: &Tenant, port: u16) -> anyhow::Result<()> {
    tenant
        .api
        .expect(
            Method::PUT,
            &format!("/api/v1/teams/{}/clusters/app", tenant.team),
            Some(&tenant.cluster("app", port)),
            200,
        )
        .await?;
    Ok(())
}

async fn serves(url: &str, upstream: &str, what: &str) -> anyhow::Result<()> {
    eventually(what, Duration::from_secs(15), || served_by(url, upstream)).await?;
    Ok(())
}

async fn served_by(url: &str, upstream: &str) -> Result<(), String> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if body["upstream"] == upstream {
        Ok(())
    } else {
        Err(format!("served by {}", body["upstream"]))
    }
}
