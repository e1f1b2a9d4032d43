//! Route features and HTTP filters, proven by what a real Envoy does with traffic: a direct
//! response, headers added on the way to the upstream (by the route and by the headerMutation
//! filter), a local rate limit that runs dry, a CORS preflight, RBAC allow/deny, and JWT
//! checks with a per-route opt-out; and a bad filter body or a mirror to no cluster refused
//! with its field path before anything reaches Envoy.

use std::time::Duration;

use flowplane_e2e::jwt::{hs256_jwks, hs256_token};
use flowplane_e2e::{Api, Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::{Value, json};

const TEAM: &str = "my-org-default";
const JWT_SECRET: &[u8] = b"flowplane-e2e-hs256-secret-0123456789";
const ISSUER: &str = "https://issuer.flowplane.test";
const AUDIENCE: &str = "orders";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_http_filters_shape_traffic_through_envoy() {
    flowplane_e2e::run_scenario("http-filters", |stack| Box::pin(traffic_scenario(stack))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filter_and_mirror_bodies_are_400s_with_field_paths_and_create_nothing() {
    flowplane_e2e::run_scenario("http-filters-bad", |stack| {
        Box::pin(bad_input_scenario(stack))
    })
    .await;
}

/// initialize → organization (`my-org`, team [`TEAM`]) → team-scoped token → dataplane.
async fn team_api(stack: &Stack) -> anyhow::Result<(Api, String)> {
    let tenant = Tenant::create(stack, "my-org").await?;
    let (dataplane_id, _) = tenant.dataplane("edge").await?;
    Ok((tenant.api, dataplane_id))
}

async fn traffic_scenario(stack: &Stack) -> anyhow::Result<()> {
    let (api, dataplane_id) = team_api(stack).await?;
    let bootstrap = api
        .get(&format!(
            "/api/v1/teams/{TEAM}/dataplanes/edge/envoy-config"
        ))
        .await?;
    anyhow::ensure!(bootstrap.status.is_success(), "envoy-config: {bootstrap:?}");
    let envoy = Envoy::start(&stack.dir, &bootstrap.text, stack.envoy_admin_port).await?;

    let upstream = Upstream::start("app").await?;
    let port = free_port();
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&json!({"team": TEAM, "name": "app-cluster",
            "endpoints": [{"host": "127.0.0.1", "port": upstream.port}]})),
        201,
    )
    .await?;
    api.expect(
        Method::POST,
        "/api/v1/route-configs",
        Some(&route_config()),
        201,
    )
    .await?;
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&listener(&dataplane_id, port)),
        201,
    )
    .await?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // A direct response: Envoy answers itself.
    let (body, _) = eventually(
        "Envoy to answer /direct",
        Duration::from_secs(15),
        || async {
            let r = reqwest::get(format!("{base}/direct"))
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let text = r.text().await.map_err(|e| e.to_string())?;
            if status == 200 {
                Ok(text)
            } else {
                Err(format!("{status}: {text}"))
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- envoy ---\n{}", envoy.log_tail()))?;
    anyhow::ensure!(body == "hello from envoy", "direct response body: {body:?}");

    // Headers added by the route reach the upstream; the response header reaches the client.
    let echoed = client.get(format!("{base}/echo")).send().await?;
    let served_by = header(&echoed, "x-served-by");
    let echoed: Value = echoed.json().await?;
    anyhow::ensure!(
        echoed["upstream"] == "app" && echoed["headers"]["x-flowplane-route"] == "echo",
        "the route's request header must reach the upstream: {echoed}"
    );
    anyhow::ensure!(
        echoed["headers"]["x-edge"] == "flowplane",
        "the headerMutation filter's request header must reach the upstream: {echoed}"
    );
    anyhow::ensure!(
        served_by.as_deref() == Some("flowplane"),
        "response header: {served_by:?}"
    );

    // CORS preflight from an allowed origin.
    let preflight = client
        .request(Method::OPTIONS, format!("{base}/echo"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    let allowed = header(&preflight, "access-control-allow-origin");
    anyhow::ensure!(
        allowed.as_deref() == Some("https://app.example.com"),
        "preflight {}: allow-origin {allowed:?}",
        preflight.status()
    );
    let other = client
        .request(Method::OPTIONS, format!("{base}/echo"))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    anyhow::ensure!(
        header(&other, "access-control-allow-origin").is_none(),
        "a foreign origin must not be allowed"
    );

    // RBAC: a denied path gets 403, another path is allowed.
    let denied = client.get(format!("{base}/forbidden/x")).send().await?;
    anyhow::ensure!(denied.status() == 403, "RBAC deny: {}", denied.status());
    let allowed = client.get(format!("{base}/echo")).send().await?;
    anyhow::ensure!(allowed.status() == 200, "RBAC allow: {}", allowed.status());

    // JWT: required under /secure, except where the route disables the filter.
    let secure = format!("{base}/secure/data");
    let missing = client.get(&secure).send().await?;
    anyhow::ensure!(missing.status() == 401, "no token: {}", missing.status());
    let good = client
        .get(&secure)
        .bearer_auth(token(JWT_SECRET))
        .send()
        .await?;
    anyhow::ensure!(good.status() == 200, "valid token: {}", good.status());
    let forged = client
        .get(&secure)
        .bearer_auth(token(b"not-the-secret-not-the-secret-123"))
        .send()
        .await?;
    anyhow::ensure!(forged.status() == 401, "bad signature: {}", forged.status());
    let open = client.get(format!("{base}/secure/open")).send().await?;
    anyhow::ensure!(
        open.status() == 200,
        "a route that disables jwt needs no token: {}",
        open.status()
    );

    // Local rate limit: this route's own bucket holds two tokens, refilled hourly.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            client
                .get(format!("{base}/limited"))
                .send()
                .await?
                .status()
                .as_u16(),
        );
    }
    anyhow::ensure!(
        statuses == [200, 200, 429, 429],
        "rate limit statuses: {statuses:?}"
    );

    envoy.stop().await;
    Ok(())
}

async fn bad_input_scenario(stack: &Stack) -> anyhow::Result<()> {
    let (api, dataplane_id) = team_api(stack).await?;
    let mut body = listener(&dataplane_id, free_port());
    body["filterChains"][0]["filters"][0]["httpFilters"][3]["filter"]["maxTokens"] = json!(0);
    let reply = api.post("/api/v1/listeners", &body).await?;
    anyhow::ensure!(reply.status.as_u16() == 400, "bad filter: {reply:?}");
    let field = "/filterChains/0/filters/0/httpFilters/3/filter/maxTokens";
    anyhow::ensure!(
        error_fields(&reply.body) == [field],
        "error fields: {}",
        reply.text
    );
    let after = api.get("/api/v1/listeners/filters-listener").await?;
    anyhow::ensure!(
        after.status.as_u16() == 404,
        "a refused listener must not exist: {after:?}"
    );

    // A mirror that points at no cluster is refused like any other dangling reference.
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&json!({"team": TEAM, "name": "app-cluster",
            "endpoints": [{"host": "127.0.0.1", "port": free_port()}]})),
        201,
    )
    .await?;
    let mut routes = route_config();
    routes["virtualHosts"][0]["routes"][1]["action"]["requestMirror"] =
        json!({"cluster": "nowhere"});
    let reply = api.post("/api/v1/route-configs", &routes).await?;
    anyhow::ensure!(reply.status.as_u16() == 400, "dangling mirror: {reply:?}");
    anyhow::ensure!(
        error_fields(&reply.body) == ["/virtualHosts/0/routes/1/action/requestMirror/cluster"],
        "error fields: {}",
        reply.text
    );
    let after = api.get("/api/v1/route-configs/filters-route").await?;
    anyhow::ensure!(
        after.status.as_u16() == 404,
        "a refused route config must not exist: {after:?}"
    );
    Ok(())
}

fn error_fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

fn route_config() -> Value {
    let forward = json!({"type": "forward", "cluster": "app-cluster"});
    let prefix = |value: &str| json!({"path": {"type": "prefix", "value": value}});
    json!({"team": TEAM, "name": "filters-route", "virtualHosts": [{
    "name": "app", "domains": ["*"],
    "filterOverrides": {"envoy.filters.http.cors": {"cors": {
        "allowOrigins": [{"exact": "https://app.example.com"}],
        "allowMethods": ["GET", "POST"], "allowHeaders": ["authorization"], "maxAgeSeconds": 60}}},
    "routes": [
        {"name": "direct", "match": {"path": {"type": "exact", "value": "/direct"}},
         "action": {"type": "directResponse", "status": 200, "body": "hello from envoy"}},
        {"name": "limited", "match": prefix("/limited"), "action": forward,
         "filterOverrides": {"limiter": {"localRateLimit": {"maxTokens": 2, "fillIntervalSeconds": 3600}}}},
        {"name": "secure-open", "match": prefix("/secure/open"), "action": forward,
         "filterOverrides": {"jwt": {"disabled": true}}},
        {"name": "secure", "match": prefix("/secure"), "action": forward},
        {"name": "echo", "match": prefix("/"), "action": forward,
         "requestHeadersToAdd": [{"name": "x-flowplane-route", "value": "echo"}],
         "responseHeadersToAdd": [{"name": "x-served-by", "value": "flowplane"}]}
    ]}]})
}

/// CORS first, so a preflight is answered before RBAC or JWT could refuse it.
fn listener(dataplane_id: &str, port: u16) -> Value {
    let jwks = hs256_jwks(JWT_SECRET);
    json!({"team": TEAM, "name": "filters-listener", "address": "127.0.0.1", "port": port,
    "dataplaneId": dataplane_id,
    "filterChains": [{"filters": [{"type": "httpConnectionManager", "routeConfigName": "filters-route",
        "httpFilters": [
            {"filter": {"type": "cors"}},
            {"filter": {"type": "rbac", "rules": [
                {"action": "deny", "match": {"path": {"type": "prefix", "value": "/forbidden"}}}]}},
            {"name": "jwt", "filter": {"type": "jwtAuth",
                "providers": [{"name": "test", "issuer": ISSUER, "audiences": [AUDIENCE],
                    "jwks": {"type": "local", "inline": jwks.to_string()}}],
                "rules": [{"pathPrefix": "/secure", "providers": ["test"]}]}},
            {"name": "limiter", "filter": {"type": "localRateLimit", "maxTokens": 1000}},
            {"filter": {"type": "headerMutation",
                "requestHeadersToAdd": [{"name": "x-edge", "value": "flowplane"}]}},
            {"filter": {"type": "router"}}
        ]}]}]})
}

/// An HS256 JWT for the test provider, signed with `secret`.
fn token(secret: &[u8]) -> String {
    hs256_token(secret, ISSUER, AUDIENCE)
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
