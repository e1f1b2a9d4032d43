//! Envoys prove which dataplane they are: the bootstrap from the envoy-config endpoint carries
//! the dataplane's token on its xDS streams. A real Envoy with that bootstrap is configured and
//! serves traffic; the same bootstrap with the token removed, or with another dataplane's
//! token, gets nothing from the xds-server (no listener, no cluster), though its node metadata
//! names the dataplane exactly as the good one does. Handing out a bootstrap takes write
//! access to dataplanes: a reader gets 403.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port, run_scenario};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_envoy_with_its_dataplanes_token_gets_configuration() {
    run_scenario("dataplane-tokens", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "tokens").await?;
    let (dataplane, bootstrap) = tenant.dataplane("edge").await?;
    let (_, other_bootstrap) = tenant.dataplane("other").await?;
    let token = flowplane_xds::bootstrap::dataplane_token(&bootstrap)
        .ok_or_else(|| anyhow::anyhow!("no token in the bootstrap"))?
        .to_string();
    anyhow::ensure!(token.starts_with("fpdp_"), "token {token}");
    let other_token = flowplane_xds::bootstrap::dataplane_token(&other_bootstrap)
        .ok_or_else(|| anyhow::anyhow!("no token in the other bootstrap"))?
        .to_string();
    anyhow::ensure!(other_token != token, "two dataplanes share a token");

    // The bootstrap is a credential: reading dataplanes is not enough to be handed one.
    let reader = tenant
        .admin
        .expect(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": "dp-reader",
                "scopes": [format!("team:{}:dataplanes:read", tenant.team)]})),
            201,
        )
        .await?;
    let reader = flowplane_e2e::Api::new(&stack.api_url)
        .with_token(reader["token"].as_str().unwrap_or_default());
    let seen = reader
        .get(&format!("/api/v1/teams/{}/dataplanes/edge", tenant.team))
        .await?;
    anyhow::ensure!(seen.status == 200, "a reader reads the dataplane: {seen:?}");
    let refused = reader
        .get(&format!(
            "/api/v1/teams/{}/dataplanes/edge/envoy-config",
            tenant.team
        ))
        .await?;
    anyhow::ensure!(
        refused.status == 403,
        "a reader got a bootstrap: {refused:?}"
    );

    let upstream = Upstream::start("app").await?;
    let port = tenant.route_all("app", upstream.port, &dataplane).await?;

    let good = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let url = format!("http://127.0.0.1:{port}/");
    eventually(
        "traffic through the Envoy with the token",
        Duration::from_secs(20),
        || async {
            let r = reqwest::get(&url).await.map_err(|e| e.to_string())?;
            (r.status() == 200)
                .then_some(())
                .ok_or(format!("status {}", r.status()))
        },
    )
    .await?;

    let without = with_token(&bootstrap, None);
    let borrowed = with_token(&bootstrap, Some(&other_token));
    for (label, tampered) in [
        ("no token", without),
        ("another dataplane's token", borrowed),
    ] {
        let refusals_before = refusals(stack);
        let dir = stack.dir.join(label.replace(' ', "-").replace('\'', ""));
        std::fs::create_dir_all(&dir)?;
        let admin_port = free_port();
        let mut tampered = tampered;
        // Beside the good Envoy: an admin port of its own.
        tampered["admin"]["address"]["socket_address"]["port_value"] = admin_port.into();
        let envoy = Envoy::start(&dir, &tampered.to_string(), admin_port).await?;
        // Envoy retries a refused stream every few hundred milliseconds; give it time to
        // have been refused several times.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let listeners = envoy.active_listeners().await?;
        let connected = envoy.stat("control_plane.connected_state").await?;
        let clusters = envoy
            .stat("cluster_manager.cds.update_success")
            .await
            .unwrap_or(0);
        envoy.stop().await;
        anyhow::ensure!(listeners.is_empty(), "{label}: got listeners {listeners:?}");
        anyhow::ensure!(connected == 0, "{label}: the control plane accepted it");
        anyhow::ensure!(clusters == 0, "{label}: got clusters");
        anyhow::ensure!(
            refusals(stack) > refusals_before,
            "{label}: the xds-server logged no refusal"
        );
    }

    // The good Envoy was never disturbed.
    let r = reqwest::get(&url).await?;
    anyhow::ensure!(r.status() == 200, "status {}", r.status());
    good.stop().await;
    Ok(())
}

/// How many streams the xds-server has refused so far, from its log.
fn refusals(stack: &Stack) -> usize {
    std::fs::read_to_string(stack.log_path("flowplane-xds-server"))
        .unwrap_or_default()
        .matches("refused an ADS stream")
        .count()
}

/// `bootstrap` with its xDS token replaced (`Some`) or removed (`None`).
fn with_token(bootstrap: &Value, token: Option<&str>) -> Value {
    let mut changed = bootstrap.clone();
    let service = &mut changed["dynamic_resources"]["ads_config"]["grpc_services"][0];
    match token {
        Some(token) => {
            service["initial_metadata"] =
                json!([{ "key": "x-flowplane-dataplane-token", "value": token }]);
        }
        None => {
            if let Some(fields) = service.as_object_mut() {
                fields.remove("initial_metadata");
            }
        }
    }
    changed
}
