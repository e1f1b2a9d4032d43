//! Access logs and connection manager options through a real Envoy: a JSON access log with
//! every request, an errors-only text log, and the `server` header Envoy answers with. A
//! template with an unknown substitution is refused before it could make Envoy reject the
//! listener.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_writes_access_logs_and_applies_connection_manager_options() {
    flowplane_e2e::run_scenario("observability", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "logs").await?;
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
    let routes = json!({"team": tenant.team, "name": "log-routes",
        "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"path": {"type": "exact", "value": "/missing"}},
             "action": {"type": "directResponse", "status": 404, "body": "no such thing"}},
            {"match": {"path": {"type": "prefix", "value": "/"}},
             "action": {"type": "forward", "cluster": "app"}}]}]});
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;
    let access_path = stack.dir.join("access.json");
    let errors_path = stack.dir.join("errors.log");
    let port = free_port();
    let mut listener = tenant.listener("logged", port, &dataplane, "log-routes");
    let hcm = &mut listener["filterChains"][0]["filters"][0];
    hcm["accessLogs"] = json!([
        {"path": access_path, "format": {"type": "json", "fields": {
            "status": "%RESPONSE_CODE%", "method": "%REQ(:METHOD)%", "path": "%REQ(:PATH)%"}}},
        {"path": errors_path, "minStatus": 400,
         "format": {"type": "text", "template": "%RESPONSE_CODE% %REQ(:PATH)%"}}]);
    hcm["options"] = json!({"serverName": "flowplane-edge", "useRemoteAddress": true,
        "requestTimeoutMs": 10000});

    // Envoy writes with the operator's rights: a tenant's log path stays under the directory
    // the operator set (here the scenario's), or goes to stdout/stderr.
    for path in ["/var/log/../../etc/cron.d/x", "/etc/cron.d/x"] {
        let mut escaping = listener.clone();
        escaping["filterChains"][0]["filters"][0]["accessLogs"][0]["path"] = json!(path);
        let refused = api.post("/api/v1/listeners", &escaping).await?;
        anyhow::ensure!(
            refused.status.as_u16() == 400
                && refused.body["errors"][0]["field"]
                    == "/filterChains/0/filters/0/accessLogs/0/path",
            "access log at {path}: {refused:?}"
        );
    }
    let mut escaping = listener.clone();
    escaping["filterChains"][0]["filters"][0]["accessLogs"][0]["path"] =
        json!(format!("{}/../escaped.log", stack.dir.display()));
    let refused = api.post("/api/v1/listeners", &escaping).await?;
    anyhow::ensure!(refused.status.as_u16() == 400, "a '..' path: {refused:?}");

    let mut bad = listener.clone();
    bad["filterChains"][0]["filters"][0]["accessLogs"][1]["format"]["template"] =
        json!("%RESPONSE_CODE% %NOT_A_COMMAND%");
    let refused = api.post("/api/v1/listeners", &bad).await?;
    anyhow::ensure!(
        refused.status.as_u16() == 400
            && refused.body["errors"][0]["field"]
                == "/filterChains/0/filters/0/accessLogs/1/format/template",
        "an unknown substitution: {refused:?}"
    );
    api.expect(Method::POST, "/api/v1/listeners", Some(&listener), 201)
        .await?;

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let (server, _) = eventually("Envoy to serve", Duration::from_secs(20), || async {
        let r = client
            .get(format!("{base}/hello"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 200 {
            return Err(format!("status {}", r.status()));
        }
        Ok(r.headers()
            .get("server")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string())
    })
    .await?;
    anyhow::ensure!(server == "flowplane-edge", "server header: {server}");
    let missing = client.get(format!("{base}/missing")).send().await?;
    anyhow::ensure!(missing.status() == 404, "missing: {}", missing.status());

    // Envoy flushes log files every 10 s unless started with --file-flush-interval-msec.
    let (entries, _) = eventually(
        "both requests in the JSON access log",
        Duration::from_secs(30),
        || async {
            let text = std::fs::read_to_string(&access_path).map_err(|e| e.to_string())?;
            let entries: Vec<Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let has = |status: u64, path: &str| {
                entries
                    .iter()
                    .any(|e| e["status"] == status && e["path"] == path && e["method"] == "GET")
            };
            if has(200, "/hello") && has(404, "/missing") {
                Ok(entries)
            } else {
                Err(text)
            }
        },
    )
    .await?;
    anyhow::ensure!(!entries.is_empty(), "entries: {entries:?}");
    let (errors, _) = eventually(
        "the 404 in the errors-only log",
        Duration::from_secs(30),
        || async {
            let text = std::fs::read_to_string(&errors_path).map_err(|e| e.to_string())?;
            if text.contains("404 /missing") {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await?;
    anyhow::ensure!(
        !errors.contains("/hello"),
        "successful requests stay out of the errors log: {errors}"
    );
    envoy.stop().await;
    Ok(())
}
