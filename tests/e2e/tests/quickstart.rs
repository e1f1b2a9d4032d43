//! The quickstart story, end to end, with every service as its own process and a real Envoy:
//! initialize → organization → scoped token → dataplane → bootstrap → Envoy → cluster, route
//! config and listener → traffic flows → the route changes and Envoy follows → deletes stop it.

use std::time::Duration;

use flowplane_e2e::{Api, Envoy, Stack, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::{Value, json};

const TEAM: &str = "my-org-default";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_traffic_flows_through_envoy_and_follows_changes() {
    flowplane_e2e::run_scenario("quickstart", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let anonymous = Api::new(&stack.api_url);
    let status = anonymous.get("/api/v1/bootstrap/status").await?;
    anyhow::ensure!(
        status.body["needsInitialization"] == json!(true),
        "fresh install: {status:?}"
    );

    // 1. Initialize with the setup token from the log.
    let setup = stack.setup_token().await?;
    let init = anonymous
        .with_token(&setup)
        .expect(
            Method::POST,
            "/api/v1/bootstrap/initialize",
            Some(&json!({"email": "admin@example.com", "password": "correct-horse-battery", "name": "Admin"})),
            201,
        )
        .await?;
    let admin_token = init["token"].as_str().unwrap_or_default().to_string();
    anyhow::ensure!(
        admin_token.starts_with("fp_pat_"),
        "bootstrap token: {init}"
    );
    let again = anonymous
        .with_token(&setup)
        .post(
            "/api/v1/bootstrap/initialize",
            &json!({"email": "x@example.com", "password": "another-password-1", "name": "X"}),
        )
        .await?;
    anyhow::ensure!(
        again.status.as_u16() == 401,
        "second initialize must be refused: {again:?}"
    );
    let admin = anonymous.with_token(&admin_token);

    // 2. An organization, which brings its default team.
    let org = admin
        .expect(
            Method::POST,
            "/api/v1/admin/organizations",
            Some(&json!({"name": "my-org", "displayName": "My Organization"})),
            201,
        )
        .await?;
    anyhow::ensure!(
        org["defaultTeam"]["name"] == json!(TEAM),
        "default team: {org}"
    );

    // 3. A token scoped to that team only.
    let scopes: Vec<String> = ["clusters", "routes", "listeners", "dataplanes"]
        .iter()
        .map(|r| format!("team:{TEAM}:{r}:write"))
        .collect();
    let pat = admin
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": "quickstart", "description": "e2e", "scopes": scopes})),
            201,
        )
        .await?;
    let token = pat["token"].as_str().unwrap_or_default().to_string();
    anyhow::ensure!(
        token.starts_with(&format!("fp_pat_{}.", pat["id"].as_str().unwrap_or("?"))),
        "PAT format: {pat}"
    );
    let api = anonymous.with_token(&token);
    let denied = api
        .post("/api/v1/admin/organizations", &json!({"name": "nope"}))
        .await?;
    anyhow::ensure!(
        denied.status.as_u16() == 403,
        "a team token cannot create orgs: {denied:?}"
    );

    // 4. A dataplane and its Envoy bootstrap; start a real Envoy with it.
    let dataplane = api
        .expect(Method::POST, &format!("/api/v1/teams/{TEAM}/dataplanes"),
            Some(&json!({"team": TEAM, "name": "edge", "gatewayHost": "127.0.0.1", "description": "e2e"})), 201)
        .await?;
    let dataplane_id = dataplane["id"].as_str().unwrap_or_default().to_string();
    let bootstrap = api
        .get(&format!(
            "/api/v1/teams/{TEAM}/dataplanes/edge/envoy-config"
        ))
        .await?;
    anyhow::ensure!(bootstrap.status.is_success(), "envoy-config: {bootstrap:?}");
    let envoy = Envoy::start(&stack.dir, &bootstrap.text, stack.envoy_admin_port).await?;

    // 5. The API.md example, pointed at a local upstream.
    let upstream_a = Upstream::start("a").await?;
    let upstream_b = Upstream::start("b").await?;
    let listener_port = free_port();
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&cluster("httpbin-cluster", upstream_a.port)),
        201,
    )
    .await?;
    api.expect(
        Method::POST,
        "/api/v1/route-configs",
        Some(&route_config("httpbin-cluster")),
        201,
    )
    .await?;
    let listener = json!({"name": "httpbin-listener", "address": "127.0.0.1", "port": listener_port, "team": TEAM,
        "dataplaneId": dataplane_id, "protocol": "HTTP",
        "filterChains": [{"name": "default", "filters": [{
            "name": "envoy.filters.network.http_connection_manager", "type": "httpConnectionManager",
            "routeConfigName": "httpbin-route", "httpFilters": [{"filter": {"type": "router"}}]}]}]});
    api.expect(Method::POST, "/api/v1/listeners", Some(&listener), 201)
        .await?;

    let url = format!("http://127.0.0.1:{listener_port}/get");
    let (_, took) = eventually(
        "traffic through Envoy to upstream a",
        Duration::from_secs(15),
        || served_by(&url, "a"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- envoy ---\n{}", envoy.log_tail()))?;
    println!("first request served by upstream a {took:?} after the listener was created");

    // Envoy acknowledged the cluster, and the API says so.
    eventually(
        "cluster status programmed on dataplane edge",
        Duration::from_secs(5),
        || async {
            let reply = api
                .get("/api/v1/clusters/httpbin-cluster")
                .await
                .map_err(|e| e.to_string())?;
            let status = &reply.body["status"];
            let programmed = status.as_array().is_some_and(|s| {
                s.iter()
                    .any(|d| d["dataplane"] == "edge" && d["state"] == "programmed")
            });
            if programmed { Ok(()) } else { Err(reply.text) }
        },
    )
    .await?;

    // 6. Point the route at another cluster: Envoy follows.
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&cluster("other-cluster", upstream_b.port)),
        201,
    )
    .await?;
    let current = api.get("/api/v1/route-configs/httpbin-route").await?;
    let etag = current
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(!etag.is_empty(), "GET must return an ETag: {current:?}");
    let changed = api
        .call(
            Method::PUT,
            "/api/v1/route-configs/httpbin-route",
            Some(&route_config("other-cluster")),
            &[("if-match", &etag)],
        )
        .await?;
    anyhow::ensure!(changed.status.as_u16() == 200, "route update: {changed:?}");
    let (_, took) = eventually(
        "Envoy to route to upstream b",
        Duration::from_secs(5),
        || served_by(&url, "b"),
    )
    .await?;
    println!("route change served by Envoy {took:?} after the PUT returned");
    let stale = api
        .call(
            Method::PUT,
            "/api/v1/route-configs/httpbin-route",
            Some(&route_config("httpbin-cluster")),
            &[("if-match", &etag)],
        )
        .await?;
    anyhow::ensure!(
        stale.status.as_u16() == 412,
        "stale If-Match must be refused: {stale:?}"
    );

    // A cluster still referenced cannot be deleted.
    let referenced = api.delete("/api/v1/clusters/other-cluster").await?;
    anyhow::ensure!(
        referenced.status.as_u16() == 409,
        "deleting a referenced cluster: {referenced:?}"
    );

    // A listener Envoy cannot program (its port is taken) is rejected by Envoy: the NACK shows
    // in the API, and the working listener keeps serving.
    let mut clash = listener.clone();
    clash["name"] = json!("clashing-listener");
    clash["port"] = json!(upstream_a.port);
    api.expect(Method::POST, "/api/v1/listeners", Some(&clash), 201)
        .await?;
    let (error, _) = eventually(
        "the NACK to show on the listener",
        Duration::from_secs(10),
        || async {
            let reply = api
                .get("/api/v1/listeners/clashing-listener")
                .await
                .map_err(|e| e.to_string())?;
            let rejected = reply.body["status"]
                .as_array()
                .and_then(|s| {
                    s.iter()
                        .find(|d| d["dataplane"] == "edge" && d["state"] == "rejected")
                })
                .map(|d| d["error"].as_str().unwrap_or_default().to_string());
            rejected.ok_or(reply.text)
        },
    )
    .await?;
    anyhow::ensure!(!error.is_empty(), "a rejection carries Envoy's error");
    println!("Envoy's rejection, as the API shows it: {error}");
    served_by(&url, "b")
        .await
        .map_err(|e| anyhow::anyhow!("the good listener stopped serving: {e}"))?;
    api.expect(
        Method::DELETE,
        "/api/v1/listeners/clashing-listener",
        None,
        204,
    )
    .await?;

    // 7. Delete the listener: Envoy stops serving the port.
    let active = envoy.active_listeners().await?;
    anyhow::ensure!(
        active.iter().any(|l| l == "httpbin-listener"),
        "listener not active before delete: {active:?}"
    );
    let deleted = api.delete("/api/v1/listeners/httpbin-listener").await?;
    anyhow::ensure!(
        deleted.status.as_u16() == 204,
        "delete listener: {deleted:?}"
    );
    eventually(
        "Envoy to stop serving the listener",
        Duration::from_secs(10),
        || {
            let url = url.clone();
            async move {
                match reqwest::get(&url).await {
                    Err(_) => Ok(()),
                    Ok(r) => Err(format!("still answering {}", r.status())),
                }
            }
        },
    )
    .await?;
    let active = envoy.active_listeners().await?;
    anyhow::ensure!(
        !active.iter().any(|l| l == "httpbin-listener"),
        "listener still active in Envoy: {active:?}"
    );
    envoy.stop().await;
    Ok(())
}

fn cluster(name: &str, port: u16) -> Value {
    json!({"team": TEAM, "name": name, "serviceName": "httpbin-service",
        "endpoints": [{"host": "127.0.0.1", "port": port}], "connectTimeoutSeconds": 5, "lbPolicy": "ROUND_ROBIN"})
}

fn route_config(cluster: &str) -> Value {
    json!({"name": "httpbin-route", "team": TEAM,
        "virtualHosts": [{"name": "httpbin-vhost", "domains": ["*"],
            "routes": [{"name": "httpbin-route", "match": {"path": {"type": "prefix", "value": "/"}},
                "action": {"type": "forward", "cluster": cluster, "timeoutSeconds": 30}}]}]})
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
