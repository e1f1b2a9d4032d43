//! Edge HTTP filters through a real Envoy: Envoy answering health checks itself, external
//! authorization against a local authorization service (with a route that skips it), gzip
//! compression of responses, and a regex path rewrite. Also the filter's cluster reference: checked on write, and the
//! cluster cannot be deleted while the listener uses it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::any;
use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_external_authorization_and_compression_work_in_envoy() {
    flowplane_e2e::run_scenario("edge-filters", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "edge").await?;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstream = Upstream::start("app").await?;
    let authz_port = authorization_service().await?;
    let api = &tenant.api;
    for (name, port) in [("app", upstream.port), ("authz", authz_port)] {
        api.expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster(name, port)),
            201,
        )
        .await?;
    }
    let routes = json!({"team": tenant.team, "name": "edge-routes",
        "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"path": {"type": "prefix", "value": "/legacy/"}},
             "action": {"type": "forward", "cluster": "app",
                "regexRewrite": {"pattern": "^/legacy/([a-z]+)/(.*)$", "substitution": "/v2/\\2/\\1"}}},
            {"match": {"path": {"type": "prefix", "value": "/public"}},
             "action": {"type": "forward", "cluster": "app"},
             "filterOverrides": {"envoy.filters.http.ext_authz": {"disabled": true}}},
            {"match": {"path": {"type": "prefix", "value": "/"}},
             "action": {"type": "forward", "cluster": "app"}}]}]});
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;
    let port = free_port();
    let listener = |authz_cluster: &str| {
        let mut body = tenant.listener("edge", port, &dataplane, "edge-routes");
        body["filterChains"][0]["filters"][0]["httpFilters"] = json!([
            {"filter": {"type": "healthCheck", "path": "/healthz"}},
            {"filter": {"type": "extAuthz", "cluster": authz_cluster, "allowedHeaders": ["x-allow"]}},
            {"filter": {"type": "compressor", "minContentLength": 20, "contentTypes": ["application/json"]}},
            {"filter": {"type": "router"}}
        ]);
        body
    };

    // The authorization service's cluster must exist: a 400 at the filter's field, nothing made.
    let dangling = api.post("/api/v1/listeners", &listener("missing")).await?;
    anyhow::ensure!(
        dangling.status.as_u16() == 400
            && dangling.body["errors"][0]["field"]
                == "/filterChains/0/filters/0/httpFilters/1/filter/cluster",
        "a missing authorization cluster: {dangling:?}"
    );
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&listener("authz")),
        201,
    )
    .await?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut request = client.get(format!("{base}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };

    // External authorization: refused without the header the service wants, served with it.
    eventually(
        "Envoy to ask the authorization service",
        Duration::from_secs(15),
        || async {
            let response = get("/orders", &[]).await.map_err(|e| e.to_string())?;
            match response.status().as_u16() {
                403 => Ok(()),
                other => Err(format!("status {other}")),
            }
        },
    )
    .await?;
    let allowed = get("/orders", &[("x-allow", "yes")]).await?;
    anyhow::ensure!(allowed.status() == 200, "allowed: {}", allowed.status());
    let body: Value = allowed.json().await?;
    anyhow::ensure!(body["upstream"] == "app", "served by {body}");
    // The route that switches the filter off needs no permission.
    let public = get("/public/docs", &[]).await?;
    anyhow::ensure!(public.status() == 200, "public: {}", public.status());

    // A regex rewrite reorders the path the upstream sees.
    let rewritten: Value = get("/legacy/orders/7", &[("x-allow", "yes")])
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        rewritten["path"] == "/v2/7/orders",
        "regex rewrite: {rewritten}"
    );

    // Health checks are answered by Envoy itself, before authorization and without the app.
    let health = get("/healthz", &[]).await?;
    let status = health.status();
    let text = health.text().await?;
    anyhow::ensure!(
        status == 200 && !text.contains("upstream"),
        "health check: {status} {text}"
    );

    // Compression for clients that accept gzip.
    let compressed = get(
        "/orders",
        &[("x-allow", "yes"), ("accept-encoding", "gzip")],
    )
    .await?;
    let encoding = compressed
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = compressed.bytes().await?;
    anyhow::ensure!(
        encoding.as_deref() == Some("gzip") && bytes.starts_with(&[0x1f, 0x8b]),
        "expected a gzip body, got {encoding:?} starting {:?}",
        &bytes[..bytes.len().min(4)]
    );
    let plain = get("/orders", &[("x-allow", "yes")]).await?;
    anyhow::ensure!(
        plain.headers().get("content-encoding").is_none(),
        "compressed for a client that did not ask"
    );

    // The listener uses the authorization cluster: deleting it is a conflict naming the listener.
    let busy = api.delete("/api/v1/clusters/authz").await?;
    anyhow::ensure!(
        busy.status.as_u16() == 409 && busy.text.contains("edge"),
        "deleting a used authorization cluster: {busy:?}"
    );
    envoy.stop().await;
    Ok(())
}

/// Allows a request when it carries `x-allow: yes`, refuses it otherwise.
async fn authorization_service() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = Router::new().fallback(any(|request: Request| async move {
        let allowed = request
            .headers()
            .get("x-allow")
            .is_some_and(|v| v.as_bytes() == b"yes");
        if allowed {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        }
    }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}
