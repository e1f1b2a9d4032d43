//! Reports through the REST API and the CLI: route flows show, for each route of each
//! listener, where its traffic goes (with the share of a weighted split and the endpoints);
//! usage counts what a real Envoy served, per route, cluster and status class, from its access
//! logs. Reading them takes `reports:read` on the team: without it, as for another
//! team, they are a 404.

use std::time::Duration;

use flowplane_e2e::{Envoy, Tenant, Upstream, eventually, run_scenario};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_show_route_flows_and_the_usage_envoy_served() {
    run_scenario("reports", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &mut flowplane_e2e::Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "report").await?;
    let team = &tenant.team;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let users = Upstream::start("users").await?;
    let port = tenant.route_all("users", users.port, &dataplane).await?;
    tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster("users-next", users.port)),
            201,
        )
        .await?;
    let canary = json!({"team": team, "name": "users-routes",
        "virtualHosts": [{"name": "api", "domains": ["api.example.com"], "routes": [
            {"name": "canary", "match": {"path": {"type": "prefix", "value": "/users"}},
             "action": {"type": "weighted", "clusters": [
                {"name": "users", "weight": 90}, {"name": "users-next", "weight": 10}]}},
            {"match": {"path": {"type": "exact", "value": "/"}},
             "action": {"type": "directResponse", "status": 200, "body": "ok"}}]}]});
    tenant
        .api
        .expect(
            Method::PUT,
            &format!("/api/v1/teams/{team}/route-configs/users-routes"),
            Some(&canary),
            200,
        )
        .await?;

    // The team token holds no reports scope: for it the team's reports do not exist.
    let refused = tenant
        .api
        .get(&format!("/api/v1/reports/route-flows?team={team}"))
        .await?;
    anyhow::ensure!(refused.status == 404, "without reports:read: {refused:?}");
    let missing = tenant.admin.get("/api/v1/reports/route-flows").await?;
    anyhow::ensure!(
        missing.status == 400 && missing.body["errors"][0]["field"] == "team",
        "without a team: {missing:?}"
    );

    let flows = tenant
        .admin
        .expect(
            Method::GET,
            &format!("/api/v1/reports/route-flows?team={team}"),
            None,
            200,
        )
        .await?;
    let rows = flows["items"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(rows.len() == 2, "two routes: {flows}");
    let split = &rows[0];
    anyhow::ensure!(
        split["listener"] == "users-listener"
            && split["port"] == port
            && split["dataplaneId"] == dataplane.as_str()
            && split["domains"] == json!(["api.example.com"])
            && split["route"] == "canary"
            && split["path"] == json!({"type": "prefix", "value": "/users"})
            && split["action"] == "weighted",
        "the canary row: {split}"
    );
    anyhow::ensure!(
        split["destinations"]
            == json!([
                {"cluster": "users", "percent": 90.0,
                 "endpoints": [format!("127.0.0.1:{}", users.port)]},
                {"cluster": "users-next", "percent": 10.0,
                 "endpoints": [format!("127.0.0.1:{}", users.port)]}]),
        "the split: {split}"
    );
    anyhow::ensure!(
        rows[1]["route"] == "api#1"
            && rows[1]["action"] == "directResponse"
            && rows[1]["destinations"] == json!([]),
        "the direct response row: {}",
        rows[1]
    );

    // The CLI prints the same as a table.
    let table = tenant
        .admin
        .cli(&["report", "route-flows", "--team", team])
        .await?;
    anyhow::ensure!(
        table.contains("users-listener")
            && table.contains(&format!("users 90% → 127.0.0.1:{}", users.port))
            && table.contains("directResponse"),
        "flowplane report route-flows: {table}"
    );

    // Usage: what Envoy served, counted from its access logs. Requests to the weighted route
    // and to the direct response; paths no route matches are 404s with neither.
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("host", "api.example.com")
            .send()
    };
    // Waiting ends at the first answer of the direct response, which is counted too (earlier
    // tries found no route, or no listener, and are not the direct response's).
    eventually(
        "Envoy to serve the routes",
        Duration::from_secs(15),
        || async {
            match get("/").await {
                Ok(r) if r.status() == 200 => Ok(()),
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    let before = 1;
    for i in 0..10 {
        anyhow::ensure!(
            get(&format!("/users/{i}")).await?.status() == 200,
            "users {i}"
        );
    }
    for _ in 0..4 {
        anyhow::ensure!(get("/").await?.status() == 200, "direct response");
    }
    let (rows, _) = eventually(
        "usage to count what Envoy served",
        Duration::from_secs(20),
        || async {
            let rows = tenant
                .admin
                .get(&format!("/api/v1/reports/usage?team={team}"))
                .await
                .map_err(|e| e.to_string())?;
            let items = rows.body["items"].as_array().cloned().unwrap_or_default();
            let requests = |route: &str| -> u64 {
                items
                    .iter()
                    .filter(|r| r["route"] == route)
                    .filter_map(|r| r["requests"].as_u64())
                    .sum()
            };
            let direct = requests("api#1");
            if requests("canary") >= 10 && direct >= before + 4 {
                Ok(items)
            } else {
                Err(format!("so far: {}", rows.text))
            }
        },
    )
    .await?;
    let canary: Vec<_> = rows.iter().filter(|r| r["route"] == "canary").collect();
    let counted: u64 = canary.iter().filter_map(|r| r["requests"].as_u64()).sum();
    anyhow::ensure!(
        counted == 10,
        "exactly the ten requests to the canary route: {rows:?}"
    );
    anyhow::ensure!(
        canary.iter().all(|r| r["listener"] == "users-listener"
            && r["statuses"]["2xx"] == r["requests"]
            && ["users", "users-next"].contains(&r["cluster"].as_str().unwrap_or_default())),
        "canary rows by cluster, all 2xx: {canary:?}"
    );
    let direct = rows
        .iter()
        .find(|r| r["route"] == "api#1")
        .cloned()
        .unwrap_or_default();
    anyhow::ensure!(
        direct["cluster"] == "" && direct["requests"].as_u64() == Some(before + 4),
        "the direct response row: {direct}"
    );
    let table = tenant
        .admin
        .cli(&["report", "usage", "--team", team])
        .await?;
    anyhow::ensure!(
        table.contains("canary") && table.contains("2xx×"),
        "flowplane report usage: {table}"
    );
    let bad = tenant
        .admin
        .get(&format!(
            "/api/v1/reports/usage?team={team}&since=yesterday"
        ))
        .await?;
    anyhow::ensure!(
        bad.status == 400 && bad.body["errors"][0]["field"] == "since",
        "a bad window: {bad:?}"
    );

    // Another organization's admin-made token for its own team sees nothing of this one.
    let other = tenant.another("elsewhere").await?;
    let foreign = other
        .api
        .get(&format!("/api/v1/reports/route-flows?team={team}"))
        .await?;
    anyhow::ensure!(foreign.status == 404, "another team's report: {foreign:?}");
    let foreign = other
        .api
        .get(&format!("/api/v1/reports/usage?team={team}"))
        .await?;
    anyhow::ensure!(foreign.status == 404, "another team's usage: {foreign:?}");
    envoy.stop().await;
    Ok(())
}
