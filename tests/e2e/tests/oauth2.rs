//! OAuth2 login through a real Envoy against a small local identity provider: a request
//! without a session is redirected to the provider's authorization endpoint, the callback's
//! code is exchanged at the token endpoint (through a cluster, with the client secret from a
//! generic secret), the session cookies then let the user in with the token forwarded
//! upstream, and a route with the filter off needs no login.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

const ACCESS_TOKEN: &str = "at-e2e-1234";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_log_in_through_the_identity_provider_before_reaching_the_app() {
    flowplane_e2e::run_scenario("oauth2", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "portal").await?;
    let api = &tenant.api;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let app = Upstream::start("app").await?;
    let (idp_port, token_requests) = identity_provider().await?;
    for (name, value) in [
        ("portal-client-secret", "client-secret-value"),
        ("portal-hmac", "hmac-signing-key-for-the-e2e-test"),
    ] {
        api.expect(
            Method::POST,
            "/api/v1/secrets",
            Some(
                &json!({"team": tenant.team, "name": name, "type": "genericSecret",
                "secret": value}),
            ),
            201,
        )
        .await?;
    }
    for (name, port) in [("app", app.port), ("idp", idp_port)] {
        api.expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster(name, port)),
            201,
        )
        .await?;
    }
    let routes = tenant.route_config_bypassing(
        "portal-routes",
        "app",
        "/assets",
        "envoy.filters.http.oauth2",
    );
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;
    let port = free_port();
    let mut listener = tenant.listener("portal", port, &dataplane, "portal-routes");
    listener["filterChains"][0]["filters"][0]["httpFilters"] = json!([
        {"filter": {"type": "oauth2",
            "authorizationEndpoint": "http://idp.example.test/authorize",
            "tokenEndpoint": {"cluster": "idp", "uri": format!("http://127.0.0.1:{idp_port}/token")},
            "clientId": "portal",
            "clientSecret": "portal-client-secret",
            "hmacSecret": "portal-hmac",
            "scopes": ["openid"],
            "forwardBearerToken": true}},
        {"filter": {"type": "router"}}]);
    // The secrets must exist as generic secrets: a missing one is a 400 at its field.
    let mut dangling = listener.clone();
    dangling["filterChains"][0]["filters"][0]["httpFilters"][0]["filter"]["hmacSecret"] =
        json!("missing");
    let refused = api.post("/api/v1/listeners", &dangling).await?;
    anyhow::ensure!(
        refused.status.as_u16() == 400
            && refused.body["errors"][0]["field"]
                == "/filterChains/0/filters/0/httpFilters/0/filter/hmacSecret",
        "a missing HMAC secret: {refused:?}"
    );
    api.expect(Method::POST, "/api/v1/listeners", Some(&listener), 201)
        .await?;

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // 1. No session: Envoy sends the user to the identity provider.
    let (login, _) = eventually(
        "Envoy to redirect to the identity provider",
        Duration::from_secs(20),
        || async {
            let r = client
                .get(format!("{base}/account"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let location = r
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if r.status() == 302 && location.starts_with("http://idp.example.test/authorize?") {
                Ok((location, cookies(&r)))
            } else {
                Err(format!("status {} location {location}", r.status()))
            }
        },
    )
    .await?;
    let (location, login_cookies) = login;
    let redirect_uri = format!("redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Foauth2%2Fcallback");
    anyhow::ensure!(
        location.contains("client_id=portal")
            && location.contains("response_type=code")
            && location.contains(&redirect_uri),
        "authorization request: {location}"
    );
    let state = query_value(&location, "state").ok_or_else(|| anyhow::anyhow!("no state"))?;

    // 2. The provider sends the user back with a code; Envoy exchanges it for a token.
    let callback = client
        .get(format!("{base}/oauth2/callback?code=code-42&state={state}"))
        .header(COOKIE, login_cookies.join("; "))
        .send()
        .await?;
    let status = callback.status();
    let session = cookies(&callback);
    anyhow::ensure!(
        status == 302 && session.iter().any(|c| c.starts_with("BearerToken=")),
        "callback: {status} cookies {session:?}"
    );
    let exchanged = token_requests.lock().unwrap().clone();
    anyhow::ensure!(
        exchanged.len() == 1
            && exchanged[0].contains("code=code-42")
            && exchanged[0].contains("client_secret=client-secret-value"),
        "token exchange: {exchanged:?}"
    );

    // 3. With the session cookies the app is reached, with the token forwarded.
    let mut with_session = login_cookies.clone();
    with_session.extend(session);
    let inside = client
        .get(format!("{base}/account"))
        .header(COOKIE, with_session.join("; "))
        .send()
        .await?;
    anyhow::ensure!(
        inside.status() == 200,
        "with a session: {}",
        inside.status()
    );
    let seen: Value = inside.json().await?;
    anyhow::ensure!(
        seen["headers"]["authorization"] == format!("Bearer {ACCESS_TOKEN}"),
        "the app sees the bearer token: {seen}"
    );
    // A route with the filter off needs no login.
    let asset = client.get(format!("{base}/assets/logo.svg")).send().await?;
    anyhow::ensure!(asset.status() == 200, "public asset: {}", asset.status());
    envoy.stop().await;
    Ok(())
}

/// `name=value` of each cookie a response sets.
fn cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_string)
        .collect()
}

fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// A token endpoint that answers every exchange with the same access token and records each
/// request body.
async fn identity_provider() -> anyhow::Result<(u16, Arc<Mutex<Vec<String>>>)> {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let app = Router::new().route(
        "/token",
        post(move |body: String| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                axum::Json(json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer",
                    "expires_in": 3600}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, requests))
}
