//! Custom responses through a real Envoy: an upstream's 503 page becomes the platform's JSON
//! error (with the status and content type the rule sets), other 5xx answers get the class
//! rule, a route with its own rules answers differently, and successful answers pass as they
//! are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use flowplane_e2e::upstream::Behaviour;
use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_replaces_upstream_errors_with_custom_responses() {
    flowplane_e2e::run_scenario("custom-response", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "custom").await?;
    let api = &tenant.api;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let healthy = Upstream::start("healthy").await?;
    let unavailable = Upstream::start_with(
        "unavailable",
        Behaviour {
            status: Some(503),
            ..Default::default()
        },
    )
    .await?;
    let broken = Upstream::start_with(
        "broken",
        Behaviour {
            status: Some(500),
            ..Default::default()
        },
    )
    .await?;
    for (name, port) in [
        ("healthy", healthy.port),
        ("unavailable", unavailable.port),
        ("broken", broken.port),
    ] {
        api.expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster(name, port)),
            201,
        )
        .await?;
    }
    let forward = |prefix: &str, cluster: &str| {
        json!({"match": {"path": {"type": "prefix", "value": prefix}},
               "action": {"type": "forward", "cluster": cluster}})
    };
    let mut own_rules = forward("/legacy", "unavailable");
    own_rules["filterOverrides"] = json!({"envoy.filters.http.custom_response": {
        "customResponse": {"rules": [{"statusCodes": [503], "status": 410, "body": "gone"}]}}});
    let routes = json!({"team": tenant.team, "name": "custom-routes",
        "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
            own_rules,
            forward("/unavailable", "unavailable"),
            forward("/broken", "broken"),
            forward("/", "healthy")]}]});
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;
    let port = free_port();
    let mut listener = tenant.listener("custom", port, &dataplane, "custom-routes");
    listener["filterChains"][0]["filters"][0]["httpFilters"] = json!([
        {"filter": {"type": "customResponse", "rules": [
            {"statusCodes": [502, 503], "status": 503,
             "body": "{\"error\":\"temporarily unavailable\"}",
             "responseHeadersToAdd": [{"name": "content-type", "value": "application/json",
                                       "append": false}]},
            {"statusClass": "5xx", "body": "upstream error"}]}},
        {"filter": {"type": "router"}}]);
    // A rule without statusCodes or statusClass is refused where it stands.
    let mut bad = listener.clone();
    bad["filterChains"][0]["filters"][0]["httpFilters"][0]["filter"]["rules"][1] =
        json!({"body": "x"});
    let refused = api.post("/api/v1/listeners", &bad).await?;
    anyhow::ensure!(
        refused.status.as_u16() == 400
            && refused.body["errors"][0]["field"]
                == "/filterChains/0/filters/0/httpFilters/0/filter/rules/1",
        "a rule matching nothing: {refused:?}"
    );
    api.expect(Method::POST, "/api/v1/listeners", Some(&listener), 201)
        .await?;

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually(
        "Envoy to serve the listener",
        Duration::from_secs(20),
        || async {
            let r = client
                .get(format!("{base}/ok"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            (r.status() == 200)
                .then_some(())
                .ok_or(format!("status {}", r.status()))
        },
    )
    .await?;
    let fetch = |path: &'static str| {
        let request = client.get(format!("{base}{path}"));
        async move {
            let r = request.send().await?;
            let status = r.status().as_u16();
            let content_type = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            Ok::<_, anyhow::Error>((status, content_type, r.text().await?))
        }
    };
    let (status, content_type, body) = fetch("/unavailable/x").await?;
    anyhow::ensure!(
        status == 503
            && content_type == "application/json"
            && body == r#"{"error":"temporarily unavailable"}"#,
        "503 rule: {status} {content_type} {body}"
    );
    let (status, _, body) = fetch("/broken/x").await?;
    anyhow::ensure!(
        status == 500 && body == "upstream error",
        "5xx rule keeps the upstream status: {status} {body}"
    );
    let (status, _, body) = fetch("/legacy/x").await?;
    anyhow::ensure!(
        status == 410 && body == "gone",
        "the route's own rules: {status} {body}"
    );
    let (status, _, body) = fetch("/ok").await?;
    anyhow::ensure!(
        status == 200 && body.contains("healthy"),
        "success passes untouched: {status} {body}"
    );
    envoy.stop().await;
    Ok(())
}
