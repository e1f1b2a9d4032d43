//! Reports through the REST API, the CLI and MCP's reach: route flows show, for each route of
//! each listener, where its traffic goes (with the share of a weighted split and the
//! endpoints). Reading them takes `reports:read` on the team: without it, as for another
//! team, they are a 404.

use flowplane_e2e::{Tenant, run_scenario};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_flows_show_where_each_listener_sends_traffic() {
    run_scenario("reports", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &mut flowplane_e2e::Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "report").await?;
    let team = &tenant.team;
    let (dataplane, _) = tenant.dataplane("gw").await?;
    let port = tenant.route_all("users", 8081, &dataplane).await?;
    tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster("users-next", 8082)),
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
                {"cluster": "users", "percent": 90.0, "endpoints": ["127.0.0.1:8081"]},
                {"cluster": "users-next", "percent": 10.0, "endpoints": ["127.0.0.1:8082"]}]),
        "the split: {split}"
    );
    anyhow::ensure!(
        rows[1]["route"] == "#1"
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
            && table.contains("users 90% → 127.0.0.1:8081")
            && table.contains("directResponse"),
        "flowplane report route-flows: {table}"
    );

    // Another organization's admin-made token for its own team sees nothing of this one.
    let other = tenant.another("elsewhere").await?;
    let foreign = other
        .api
        .get(&format!("/api/v1/reports/route-flows?team={team}"))
        .await?;
    anyhow::ensure!(foreign.status == 404, "another team's report: {foreign:?}");
    Ok(())
}
