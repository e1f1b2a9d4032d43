//! The quickstart story over incremental xDS: the same services and the same real Envoy, but the
//! Envoy bootstrap asks for `DELTA_GRPC` ADS. Initialize → organization → dataplane → delta
//! bootstrap → Envoy → cluster, route config and listener → traffic flows → the route changes
//! and Envoy follows → a rejected listener shows in the API → deleting the listener stops it.

use std::time::Duration;

use flowplane_e2e::{Api, Envoy, Stack, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::{Value, json};

const TEAM: &str = "my-org-default";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_xds_traffic_flows_through_envoy_and_follows_changes() {
    flowplane_e2e::run_scenario("delta-xds", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    // 1. Initialize and create an organization, which brings its default team.
    let anonymous = Api::new(&stack.api_url);
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
    let api = anonymous.with_token(init["token"].as_str().unwrap_or_default());
    api.expect(
        Method::POST,
        "/api/v1/admin/organizations",
        Some(&json!({"name": "my-org", "displayName": "My Organization"})),
        201,
    )
    .await?;

    // 2. A dataplane, and its bootstrap switched to incremental ADS.
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
    let delta_bootstrap = to_delta(&bootstrap.text)?;
    let envoy = Envoy::start(&stack.dir, &delta_bootstrap, stack.envoy_admin_port).await?;

    // 3. Cluster, route config and listener: traffic flows.
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

    // Envoy's ACK over the delta stream reaches the API as status.
    eventually(
        "cluster status programmed on dataplane edge",
        Duration::from_secs(5),
        || async {
            let reply = api
                .get("/api/v1/clusters/httpbin-cluster")
                .await
                .map_err(|e| e.to_string())?;
            let programmed = reply.body["status"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|d| d["dataplane"] == "edge" && d["state"] == "programmed")
            });
            if programmed { Ok(()) } else { Err(reply.text) }
        },
    )
    .await?;

    // The configuration really came over the delta protocol.
    let metrics = reqwest::get(format!("{}/metrics", stack.xds_http))
        .await?
        .text()
        .await?;
    let pushes: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("xds_pushes_total"))
        .collect();
    anyhow::ensure!(
        pushes.iter().any(|l| l.contains("protocol=\"delta\"")),
        "no delta pushes in the xds-server's metrics: {pushes:?}"
    );
    anyhow::ensure!(
        !pushes.iter().any(|l| l.contains("protocol=\"sotw\"")),
        "state-of-the-world pushes to a delta Envoy: {pushes:?}"
    );

    // 4. Point the route at another cluster: Envoy follows.
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&cluster("other-cluster", upstream_b.port)),
        201,
    )
    .await?;
    api.expect(
        Method::PUT,
        "/api/v1/route-configs/httpbin-route",
        Some(&route_config("other-cluster")),
        200,
    )
    .await?;
    let (_, took) = eventually(
        "Envoy to route to upstream b",
        Duration::from_secs(5),
        || served_by(&url, "b"),
    )
    .await?;
    println!("route change served by Envoy {took:?} after the PUT returned");

    // 5. A listener Envoy cannot program (its port is taken): the NACK shows in the API, and
    // the working listener keeps serving.
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

    // 6. Delete the listener: it arrives as a delta removal and Envoy stops serving the port.
    let active = envoy.active_listeners().await?;
    anyhow::ensure!(
        active.iter().any(|l| l == "httpbin-listener"),
        "listener not active before delete: {active:?}"
    );
    api.expect(
        Method::DELETE,
        "/api/v1/listeners/httpbin-listener",
        None,
        204,
    )
    .await?;
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

/// Switches the generated bootstrap's ADS to the incremental protocol. CDS and LDS are
/// configured as `ads: {}`, so they ride the same (now delta) ADS stream, as does RDS, which
/// the listeners' connection managers also point at ADS.
fn to_delta(bootstrap: &str) -> anyhow::Result<String> {
    const SOTW: &str = "api_type: GRPC";
    anyhow::ensure!(
        bootstrap.matches(SOTW).count() == 1,
        "expected one `{SOTW}` in the bootstrap:\n{bootstrap}"
    );
    anyhow::ensure!(
        bootstrap.matches("ads: {}").count() == 2,
        "expected CDS and LDS over ADS in the bootstrap:\n{bootstrap}"
    );
    Ok(bootstrap.replace(SOTW, "api_type: DELTA_GRPC"))
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
