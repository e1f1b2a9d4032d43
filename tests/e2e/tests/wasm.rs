//! A WebAssembly plugin through a real Envoy (V8): a hand-written proxy-wasm module, uploaded
//! inline with the listener, adds a response header to every answer and refuses requests that
//! ask it to; a route that switches the filter off bypasses it. Bytes that are not WebAssembly
//! are a 400 at the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use base64::Engine;
use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_plugin_changes_responses_and_refuses_requests_in_envoy() {
    flowplane_e2e::run_scenario("wasm", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let module =
        wat::parse_file(flowplane_e2e::workspace_root().join("tests/e2e/testdata/add_header.wat"))?;
    let inline = base64::engine::general_purpose::STANDARD.encode(&module);
    let tenant = Tenant::create(stack, "plugins").await?;
    let api = &tenant.api;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let app = Upstream::start("app").await?;
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&tenant.cluster("app", app.port)),
        201,
    )
    .await?;
    let routes =
        tenant.route_config_bypassing("wasm-routes", "app", "/raw", "envoy.filters.http.wasm");
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;
    let port = free_port();
    let listener = |module: &str| {
        let mut body = tenant.listener("plugged", port, &dataplane, "wasm-routes");
        body["filterChains"][0]["filters"][0]["httpFilters"] = json!([
            {"filter": {"type": "wasm", "module": {"inlineBase64": module},
                        "configuration": "{\"greeting\":\"hi\"}"}},
            {"filter": {"type": "router"}}]);
        body
    };
    let not_wasm = base64::engine::general_purpose::STANDARD.encode(b"#!/bin/sh\necho hi\n");
    let refused = api.post("/api/v1/listeners", &listener(&not_wasm)).await?;
    anyhow::ensure!(
        refused.status.as_u16() == 400
            && refused.body["errors"][0]["field"]
                == "/filterChains/0/filters/0/httpFilters/0/filter/module/inlineBase64",
        "a module that is not WebAssembly: {refused:?}"
    );
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&listener(&inline)),
        201,
    )
    .await?;

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let header = |r: &reqwest::Response| {
        r.headers()
            .get("x-wasm-plugin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    eventually(
        "the plugin to tag responses",
        Duration::from_secs(20),
        || async {
            let r = client
                .get(format!("{base}/orders"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let tag = header(&r);
            (r.status() == 200 && tag == "flowplane")
                .then_some(())
                .ok_or(format!("status {} tag {tag:?}", r.status()))
        },
    )
    .await?;
    let denied = client
        .get(format!("{base}/orders"))
        .header("x-wasm-deny", "yes")
        .send()
        .await?;
    let status = denied.status();
    let text = denied.text().await?;
    anyhow::ensure!(
        status == 403 && text == "denied by the wasm plugin",
        "refused by the plugin: {status} {text}"
    );
    let raw = client.get(format!("{base}/raw/file")).send().await?;
    anyhow::ensure!(
        raw.status() == 200 && header(&raw).is_empty(),
        "the route without the plugin: {} {:?}",
        raw.status(),
        header(&raw)
    );
    envoy.stop().await;
    Ok(())
}
