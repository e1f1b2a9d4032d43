//! The gateway driven through its router against the in-process fake config: the HTTP
//! contract (status codes, headers, problem bodies), authentication caching, and the OpenAPI
//! document's coverage of every route.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::fake_config::{FakeConfig, SERVICE_SECRET, SETUP_TOKEN, credential, gateway_credential};
use crate::{ApiGatewayConfig, AppState};
use flowplane_runtime::bus::NatsSettings;

fn gateway_config(config_url: String) -> ApiGatewayConfig {
    ApiGatewayConfig {
        api_addr: "127.0.0.1:0".parse().unwrap(),
        config_url,
        config_ca_file: None,
        service_credential: gateway_credential(),
        xds_public_host: "xds.example.internal".into(),
        xds_public_port: 18000,
        xds_public_ca_file: None,
        ratelimit_public_host: "ratelimit.example.internal".into(),
        ratelimit_public_port: 18081,
        learning_public_host: "learning.example.internal".into(),
        learning_public_port: 18083,
        ratelimit_public_ca_file: None,
        learning_public_ca_file: None,
        envoy_admin_port: 9901,
        nats: None,
        nats_prefix: "flowplane".into(),
        redis_url: None,
        redis_prefix: "flowplane".into(),
        login_throttle: Default::default(),
        bearer_throttle: Default::default(),
        cookie_secure: crate::config::CookieSecure::Auto,
        trusted_proxies: Vec::new(),
    }
}

struct Harness {
    app: Router,
    fake: FakeConfig,
}

async fn harness() -> Harness {
    let fake = FakeConfig::start().await;
    let state = AppState::new(&gateway_config(fake.url())).unwrap();
    Harness {
        app: crate::router(state),
        fake,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the RFC 9457 shape and returns the body.
    fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(
            self.header(header::CONTENT_TYPE),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["type"], format!("urn:flowplane:problem:{code}"));
        assert!(body["title"].is_string() && body["detail"].is_string());
        let request_id = self
            .header("x-request-id")
            .expect("x-request-id on every response");
        assert_eq!(body["requestId"], request_id);
        body
    }
}

async fn send(app: &Router, request: Request) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

fn request(method: Method, uri: &str, bearer: Option<&str>, body: Option<&str>) -> Request {
    let mut builder = axum::http::Request::builder().method(method).uri(uri);
    if let Some(bearer) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
    }
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    builder
        .body(Body::from(body.unwrap_or_default().to_string()))
        .unwrap()
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Reply {
    send(app, request(method, uri, bearer, body)).await
}

const CLUSTER: &str = r#"{"team":"my-org-default","name":"httpbin-cluster","serviceName":"httpbin-service",
  "endpoints":[{"host":"httpbin.org","port":443}],"connectTimeoutSeconds":5,"useTls":true,"lbPolicy":"ROUND_ROBIN"}"#;

// ---- request ids and unknown routes ----

#[tokio::test]
async fn unknown_routes_are_404_problems_with_a_request_id() {
    let h = harness().await;
    let reply = call(&h.app, Method::GET, "/api/v1/nothing-here", None, None).await;
    let body = reply.problem(404, "not_found");
    assert!(uuid::Uuid::parse_str(body["requestId"].as_str().unwrap()).is_ok());
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("/api/v1/nothing-here")
    );
}

#[tokio::test]
async fn a_callers_request_id_is_echoed_on_success_and_error() {
    let h = harness().await;
    for uri in ["/api/v1/bootstrap/status", "/nowhere"] {
        let mut req = request(Method::GET, uri, None, None);
        req.headers_mut()
            .insert("x-request-id", "my-trace-42".parse().unwrap());
        let reply = send(&h.app, req).await;
        assert_eq!(reply.header("x-request-id"), Some("my-trace-42"), "{uri}");
    }
    let mut req = request(Method::GET, "/nowhere", None, None);
    req.headers_mut()
        .insert("x-request-id", "bad id with spaces".parse().unwrap());
    let reply = send(&h.app, req).await;
    let id = reply.header("x-request-id").unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "unsafe ids are replaced: {id}"
    );
}

#[tokio::test]
async fn wrong_methods_are_405_problems() {
    let h = harness().await;
    let reply = call(
        &h.app,
        Method::PATCH,
        "/api/v1/bootstrap/status",
        None,
        None,
    )
    .await;
    reply.problem(405, "method_not_allowed");
}

// ---- bootstrap ----

#[tokio::test]
async fn bootstrap_status_needs_no_credential() {
    let h = harness().await;
    let reply = call(&h.app, Method::GET, "/api/v1/bootstrap/status", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"needsInitialization": true}));
}

#[tokio::test]
async fn initialize_uses_the_setup_token_and_returns_a_token() {
    let h = harness().await;
    let body = r#"{"email":"admin@example.com","password":"correct horse","name":"Admin"}"#;
    let reply = call(
        &h.app,
        Method::POST,
        "/api/v1/bootstrap/initialize",
        Some(SETUP_TOKEN),
        Some(body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let created = reply.json();
    assert_eq!(created["userId"], "u-admin");
    assert_eq!(created["tokenId"], "t-admin");
    assert_eq!(created["token"], credential("t-admin"));
    assert_eq!(created["expiresAt"], Value::Null);

    // The returned token works as a bearer credential.
    let token = created["token"].as_str().unwrap();
    let orgs = call(
        &h.app,
        Method::GET,
        "/api/v1/admin/organizations",
        Some(token),
        None,
    )
    .await;
    assert_eq!(orgs.status, StatusCode::OK);
}

#[tokio::test]
async fn initialize_refusals() {
    let h = harness().await;
    let body = r#"{"email":"a@example.com","password":"p","name":"A"}"#;
    let uri = "/api/v1/bootstrap/initialize";
    call(&h.app, Method::POST, uri, None, Some(body))
        .await
        .problem(401, "unauthenticated");
    // Authentication is checked before the body is read.
    call(&h.app, Method::POST, uri, None, Some("{"))
        .await
        .problem(401, "unauthenticated");
    call(&h.app, Method::POST, uri, Some("wrong"), Some(body))
        .await
        .problem(401, "unauthenticated");

    let broken = call(
        &h.app,
        Method::POST,
        uri,
        Some(SETUP_TOKEN),
        Some(r#"{"email": "#),
    )
    .await;
    broken.problem(400, "malformed_body");

    let wrong_type = call(
        &h.app,
        Method::POST,
        uri,
        Some(SETUP_TOKEN),
        Some(r#"{"email": 5}"#),
    )
    .await;
    let problem = wrong_type.problem(400, "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "/email");

    let unknown = call(
        &h.app,
        Method::POST,
        uri,
        Some(SETUP_TOKEN),
        Some(r#"{"emial":"x"}"#),
    )
    .await;
    unknown.problem(400, "validation_failed");

    // config's own validation, with its field path, reaches the caller.
    let empty = call(
        &h.app,
        Method::POST,
        uri,
        Some(SETUP_TOKEN),
        Some(r#"{"password":"p","name":"n"}"#),
    )
    .await;
    let problem = empty.problem(400, "validation_failed");
    assert_eq!(
        problem["errors"],
        json!([{"field": "/email", "message": "must not be empty"}])
    );
}

// ---- authentication and its cache ----

#[tokio::test]
async fn missing_or_bad_credentials_are_401_problems() {
    let h = harness().await;
    let reply = call(&h.app, Method::GET, "/api/v1/tokens", None, None).await;
    reply.problem(401, "unauthenticated");
    assert!(
        reply
            .header(header::WWW_AUTHENTICATE)
            .unwrap()
            .starts_with("Bearer")
    );
    call(
        &h.app,
        Method::GET,
        "/api/v1/tokens",
        Some("fp_pat_x.wrong"),
        None,
    )
    .await
    .problem(401, "unauthenticated");
    let mut basic = request(Method::GET, "/api/v1/tokens", None, None);
    basic
        .headers_mut()
        .insert(header::AUTHORIZATION, "Basic dTpw".parse().unwrap());
    send(&h.app, basic).await.problem(401, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_new_credential_verify_it_once() {
    let h = harness().await;
    let token = credential("t1");
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let (app, token) = (h.app.clone(), token.clone());
            tokio::spawn(async move {
                call(&app, Method::GET, "/api/v1/tokens", Some(&token), None).await
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(h.fake.calls.authenticate.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_verified_credential_is_not_checked_again_while_cached() {
    let h = harness().await;
    let token = credential("t1");
    for _ in 0..3 {
        let reply = call(&h.app, Method::GET, "/api/v1/tokens", Some(&token), None).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(h.fake.calls.authenticate.load(Ordering::SeqCst), 1);
    // A different credential is its own entry.
    call(
        &h.app,
        Method::GET,
        "/api/v1/tokens",
        Some(&credential("t2")),
        None,
    )
    .await;
    assert_eq!(h.fake.calls.authenticate.load(Ordering::SeqCst), 2);
    // Failures are not cached: each attempt is checked.
    for _ in 0..2 {
        call(&h.app, Method::GET, "/api/v1/tokens", Some("nope"), None).await;
    }
    assert_eq!(h.fake.calls.authenticate.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn config_decides_how_long_an_answer_may_be_cached() {
    let h = harness().await;
    h.fake.calls.cache_seconds.store(0, Ordering::SeqCst);
    for _ in 0..2 {
        call(
            &h.app,
            Method::GET,
            "/api/v1/tokens",
            Some(&credential("t1")),
            None,
        )
        .await;
    }
    assert_eq!(
        h.fake.calls.authenticate.load(Ordering::SeqCst),
        2,
        "0 s means do not cache"
    );

    h.fake.calls.cache_seconds.store(1, Ordering::SeqCst);
    call(
        &h.app,
        Method::GET,
        "/api/v1/tokens",
        Some(&credential("t2")),
        None,
    )
    .await;
    call(
        &h.app,
        Method::GET,
        "/api/v1/tokens",
        Some(&credential("t2")),
        None,
    )
    .await;
    assert_eq!(h.fake.calls.authenticate.load(Ordering::SeqCst), 3);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    call(
        &h.app,
        Method::GET,
        "/api/v1/tokens",
        Some(&credential("t2")),
        None,
    )
    .await;
    assert_eq!(
        h.fake.calls.authenticate.load(Ordering::SeqCst),
        4,
        "expired entries are re-checked"
    );
}

#[tokio::test]
async fn revoking_a_token_evicts_it_from_the_cache_at_once() {
    let h = harness().await;
    let admin = credential("t-admin");
    let victim = credential("t-victim");
    assert_eq!(
        call(&h.app, Method::GET, "/api/v1/tokens", Some(&victim), None)
            .await
            .status,
        StatusCode::OK
    );
    let revoke = call(
        &h.app,
        Method::DELETE,
        "/api/v1/tokens/t-victim",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{}", revoke.text());
    assert!(revoke.body.is_empty());
    // Cached for 30 s, yet refused right away.
    call(&h.app, Method::GET, "/api/v1/tokens", Some(&victim), None)
        .await
        .problem(401, "unauthenticated");
    // The revoker's own entry survives.
    let before = h.fake.calls.authenticate.load(Ordering::SeqCst);
    call(&h.app, Method::GET, "/api/v1/tokens", Some(&admin), None).await;
    assert_eq!(h.fake.calls.authenticate.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn every_call_to_config_carries_the_request_context() {
    let h = harness().await;
    let mut req = request(
        Method::GET,
        "/api/v1/admin/organizations",
        Some(&credential("t7")),
        None,
    );
    req.headers_mut()
        .insert("x-request-id", "ctx-check".parse().unwrap());
    req.extensions_mut().insert(ConnectInfo(
        "192.0.2.10:55555".parse::<SocketAddr>().unwrap(),
    ));
    assert_eq!(send(&h.app, req).await.status, StatusCode::OK);
    let context = h.fake.calls.last_context().expect("a context was sent");
    assert_eq!(context.request_id, "ctx-check");
    assert_eq!(context.client_address, "192.0.2.10");
    let signed = context
        .signed_principal
        .expect("the principal config signed");
    let principal = <flowplane_proto::common::v1::AssertedPrincipal as prost::Message>::decode(
        signed.claims.as_slice(),
    )
    .unwrap()
    .principal
    .expect("principal");
    assert_eq!(principal.token_id, "t7");
    assert_eq!(principal.user_id, "user-t7");
}

/// Behind a trusted load balancer the client is the address it saw; a client's own
/// `X-Forwarded-For` means nothing when it connects directly.
#[tokio::test]
async fn only_a_trusted_proxy_names_the_client_address() {
    let fake = FakeConfig::start().await;
    let mut config = gateway_config(fake.url());
    config.trusted_proxies = crate::client_address::parse_list("10.0.0.0/8").unwrap();
    let app = crate::router(AppState::new(&config).unwrap());
    for (peer, expected) in [
        ("10.1.2.3:4000", "203.0.113.9"),
        ("198.51.100.7:4000", "198.51.100.7"),
    ] {
        let mut req = request(
            Method::GET,
            "/api/v1/admin/organizations",
            Some(&credential("t7")),
            None,
        );
        req.headers_mut()
            .insert("x-forwarded-for", "1.1.1.1, 203.0.113.9".parse().unwrap());
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        assert_eq!(send(&app, req).await.status, StatusCode::OK);
        let context = fake.calls.last_context().expect("a context was sent");
        assert_eq!(context.client_address, expected, "peer {peer}");
    }
}

// ---- organizations and tokens ----

#[tokio::test]
async fn organizations_are_created_with_their_default_team() {
    let h = harness().await;
    let body = r#"{"name":"my-org","displayName":"My Organization"}"#;
    let reply = call(
        &h.app,
        Method::POST,
        "/api/v1/admin/organizations",
        Some(&credential("a")),
        Some(body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let org = reply.json();
    assert_eq!(org["name"], "my-org");
    assert_eq!(org["displayName"], "My Organization");
    assert_eq!(org["defaultTeam"]["name"], "my-org-default");
    let list = call(
        &h.app,
        Method::GET,
        "/api/v1/admin/organizations",
        Some(&credential("a")),
        None,
    )
    .await;
    assert_eq!(list.json()["items"][0]["name"], "my-org");
}

#[tokio::test]
async fn tokens_round_trip() {
    let h = harness().await;
    let admin = credential("t-admin");
    let body = r#"{"name":"ci","description":"deploys","scopes":["clusters:write"],"expiresAt":"2030-01-01T00:00:00Z"}"#;
    let created = call(
        &h.app,
        Method::POST,
        "/api/v1/tokens",
        Some(&admin),
        Some(body),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let created = created.json();
    for field in [
        "id",
        "name",
        "description",
        "scopes",
        "status",
        "expiresAt",
        "createdAt",
        "lastUsedAt",
        "token",
    ] {
        assert!(created.get(field).is_some(), "{field} in {created}");
    }
    assert_eq!(created["token"], credential("t-new"));
    assert_eq!(created["scopes"], json!(["clusters:write"]));
    assert_eq!(created["expiresAt"], "2030-01-01T00:00:00Z");
    assert_eq!(created["lastUsedAt"], Value::Null);

    let one = call(
        &h.app,
        Method::GET,
        "/api/v1/tokens/t-9",
        Some(&admin),
        None,
    )
    .await
    .json();
    assert_eq!(one["id"], "t-9");
    assert!(
        one.get("token").is_none(),
        "the secret is never returned again"
    );

    let page = call(
        &h.app,
        Method::GET,
        "/api/v1/tokens?limit=2&offset=1",
        Some(&admin),
        None,
    )
    .await
    .json();
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let default_page = call(&h.app, Method::GET, "/api/v1/tokens", Some(&admin), None)
        .await
        .json();
    assert_eq!(default_page["limit"], 50);

    call(
        &h.app,
        Method::GET,
        "/api/v1/tokens/missing",
        Some(&admin),
        None,
    )
    .await
    .problem(404, "not_found");
    let bad = call(
        &h.app,
        Method::GET,
        "/api/v1/tokens?limit=501",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        bad.problem(400, "validation_failed")["errors"][0]["field"],
        "limit"
    );
}

// ---- native resources ----

#[tokio::test]
async fn resources_create_read_update_delete_with_revisions() {
    let h = harness().await;
    let admin = credential("t-admin");

    let created = call(
        &h.app,
        Method::POST,
        "/api/v1/clusters",
        Some(&admin),
        Some(CLUSTER),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(
        created.header(header::LOCATION),
        Some("/api/v1/teams/my-org-default/clusters/httpbin-cluster")
    );
    let etag = created.header(header::ETAG).unwrap().to_string();
    let body = created.json();
    assert_eq!(etag, format!("\"{}\"", body["revision"]));
    assert_eq!(body["team"], "my-org-default");
    assert_eq!(body["name"], "httpbin-cluster");
    assert_eq!(
        body["endpoints"][0]["host"], "httpbin.org",
        "spec fields sit beside the envelope"
    );
    assert!(body["id"].is_string() && body["status"].is_array());

    for uri in [
        "/api/v1/clusters/httpbin-cluster",
        "/api/v1/clusters/httpbin-cluster?team=my-org-default",
        "/api/v1/teams/my-org-default/clusters/httpbin-cluster",
    ] {
        let got = call(&h.app, Method::GET, uri, Some(&admin), None).await;
        assert_eq!(got.status, StatusCode::OK, "{uri}");
        assert_eq!(got.header(header::ETAG), Some(etag.as_str()));
    }

    // A stale If-Match is refused by config with 412; the current one succeeds.
    let item = "/api/v1/teams/my-org-default/clusters/httpbin-cluster";
    let update = r#"{"endpoints":[{"host":"example.org","port":80}]}"#;
    let mut stale = request(Method::PUT, item, Some(&admin), Some(update));
    stale
        .headers_mut()
        .insert(header::IF_MATCH, "\"999\"".parse().unwrap());
    send(&h.app, stale).await.problem(412, "revision_mismatch");
    let mut fresh = request(Method::PUT, item, Some(&admin), Some(update));
    fresh
        .headers_mut()
        .insert(header::IF_MATCH, etag.parse().unwrap());
    let updated = send(&h.app, fresh).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    let new_etag = updated.header(header::ETAG).unwrap().to_string();
    assert_ne!(new_etag, etag);
    assert_eq!(updated.json()["endpoints"][0]["host"], "example.org");
    let sent: Vec<i64> = h.fake.calls.if_revisions.lock().unwrap().clone();
    assert_eq!(
        sent,
        vec![999, etag.trim_matches('"').parse::<i64>().unwrap()]
    );

    let mut delete = request(Method::DELETE, item, Some(&admin), None);
    delete
        .headers_mut()
        .insert(header::IF_MATCH, new_etag.parse().unwrap());
    let deleted = send(&h.app, delete).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    call(&h.app, Method::GET, item, Some(&admin), None)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn the_team_path_supplies_the_team() {
    let h = harness().await;
    let admin = credential("t-admin");
    let body = r#"{"name":"edge","gatewayHost":"gw.example.com"}"#;
    let created = call(
        &h.app,
        Method::POST,
        "/api/v1/teams/team-a/dataplanes",
        Some(&admin),
        Some(body),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json()["team"], "team-a");
    assert_eq!(
        h.fake
            .calls
            .teams
            .lock()
            .unwrap()
            .last()
            .map(String::as_str),
        Some("team-a")
    );
    assert_eq!(
        created.header(header::LOCATION),
        Some("/api/v1/teams/team-a/dataplanes/edge")
    );
}

#[tokio::test]
async fn config_validation_errors_pass_through_with_field_paths() {
    let h = harness().await;
    let admin = credential("t-admin");
    let missing = call(
        &h.app,
        Method::POST,
        "/api/v1/clusters",
        Some(&admin),
        Some(r#"{"team":"t","name":"c"}"#),
    )
    .await;
    let problem = missing.problem(400, "validation_failed");
    assert_eq!(
        problem["errors"],
        json!([{"field": "/endpoints", "message": "is required"}])
    );
    // Malformed JSON is config's to judge too: the body passes through as text.
    let broken = call(
        &h.app,
        Method::POST,
        "/api/v1/clusters",
        Some(&admin),
        Some("{nope"),
    )
    .await;
    let problem = broken.problem(400, "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "");

    call(
        &h.app,
        Method::POST,
        "/api/v1/clusters",
        Some(&admin),
        Some(CLUSTER),
    )
    .await;
    call(
        &h.app,
        Method::POST,
        "/api/v1/clusters",
        Some(&admin),
        Some(CLUSTER),
    )
    .await
    .problem(409, "already_exists");
}

#[tokio::test]
async fn resource_lists_page_with_cursors() {
    let h = harness().await;
    let admin = credential("t-admin");
    for name in ["a", "b", "c"] {
        let body =
            format!(r#"{{"name":"{name}","address":"0.0.0.0","port":10000,"filterChains":[]}}"#);
        let reply = call(
            &h.app,
            Method::POST,
            "/api/v1/teams/team-a/listeners",
            Some(&admin),
            Some(&body),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let first = call(
        &h.app,
        Method::GET,
        "/api/v1/listeners?limit=2",
        Some(&admin),
        None,
    )
    .await
    .json();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = call(
        &h.app,
        Method::GET,
        &format!("/api/v1/listeners?limit=2&cursor={cursor}"),
        Some(&admin),
        None,
    )
    .await
    .json();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["nextCursor"], Value::Null);
    let team = call(
        &h.app,
        Method::GET,
        "/api/v1/teams/team-a/listeners",
        Some(&admin),
        None,
    )
    .await
    .json();
    assert_eq!(team["items"].as_array().unwrap().len(), 3);
    let by_query = call(
        &h.app,
        Method::GET,
        "/api/v1/listeners?team=team-b",
        Some(&admin),
        None,
    )
    .await
    .json();
    assert_eq!(by_query["items"], json!([]));
    assert_eq!(
        h.fake
            .calls
            .teams
            .lock()
            .unwrap()
            .last()
            .map(String::as_str),
        Some("team-b")
    );

    for bad in ["0", "501", "x"] {
        let reply = call(
            &h.app,
            Method::GET,
            &format!("/api/v1/clusters?limit={bad}"),
            Some(&admin),
            None,
        )
        .await;
        reply.problem(400, "validation_failed");
    }
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413_problems() {
    let h = harness().await;
    let big = format!(
        r#"{{"name":"x","pad":"{}"}}"#,
        "a".repeat(crate::BODY_LIMIT_BYTES)
    );
    let reply = call(
        &h.app,
        Method::POST,
        "/api/v1/clusters",
        Some(&credential("t-admin")),
        Some(&big),
    )
    .await;
    reply.problem(413, "payload_too_large");
}

#[tokio::test]
async fn envoy_config_renders_the_dataplane_bootstrap() {
    let h = harness().await;
    let admin = credential("t-admin");
    let created = call(
        &h.app,
        Method::POST,
        "/api/v1/teams/team-a/dataplanes",
        Some(&admin),
        Some(r#"{"name":"edge"}"#),
    )
    .await;
    let id = created.json()["id"].as_str().unwrap().to_string();

    let uri = "/api/v1/teams/team-a/dataplanes/edge/envoy-config";
    let yaml = call(&h.app, Method::GET, uri, Some(&admin), None).await;
    assert_eq!(yaml.status, StatusCode::OK, "{}", yaml.text());
    assert_eq!(yaml.header(header::CONTENT_TYPE), Some("application/yaml"));
    let from_yaml: Value = serde_yaml_ng::from_str(&yaml.text()).unwrap();

    let json = call(
        &h.app,
        Method::GET,
        &format!("{uri}?format=json"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(json.header(header::CONTENT_TYPE), Some("application/json"));
    assert_eq!(
        json.json(),
        from_yaml,
        "both formats carry the same bootstrap"
    );

    // The dataplane's token is the one config issued (and every xds-server checks).
    let issued = flowplane_runtime::credential::ServiceSecret::new(SERVICE_SECRET)
        .unwrap()
        .dataplane_tokens()
        .issue("team-a", &id);
    assert_eq!(
        flowplane_xds::bootstrap::dataplane_token(&from_yaml),
        Some(issued.as_str())
    );
    let expected =
        flowplane_xds::bootstrap::bootstrap(&flowplane_xds::bootstrap::BootstrapParams {
            team: "team-a",
            dataplane_name: "edge",
            dataplane_id: &id,
            dataplane_token: &issued,
            xds_host: "xds.example.internal",
            xds_port: 18000,
            xds_ca: None,
            ratelimit_host: "ratelimit.example.internal",
            ratelimit_port: 18081,
            learning_host: "learning.example.internal",
            learning_port: 18083,
            ratelimit_ca: None,
            learning_ca: None,
            admin_port: 9901,
        });
    assert_eq!(from_yaml, expected);

    call(
        &h.app,
        Method::GET,
        &format!("{uri}?format=xml"),
        Some(&admin),
        None,
    )
    .await
    .problem(400, "validation_failed");
    call(
        &h.app,
        Method::GET,
        "/api/v1/teams/team-a/dataplanes/ghost/envoy-config",
        Some(&admin),
        None,
    )
    .await
    .problem(404, "not_found");
    call(&h.app, Method::GET, uri, None, None)
        .await
        .problem(401, "unauthenticated");
}

// ---- config unreachable ----

#[tokio::test]
async fn an_unreachable_config_is_a_503_problem() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = AppState::new(&gateway_config(format!("http://127.0.0.1:{port}"))).unwrap();
    let app = crate::router(state);
    let status = call(&app, Method::GET, "/api/v1/bootstrap/status", None, None).await;
    let body = status.problem(503, "unavailable");
    assert!(
        !body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "transport detail stays in the log"
    );
    call(
        &app,
        Method::GET,
        "/api/v1/clusters",
        Some("fp_pat_x.ok"),
        None,
    )
    .await
    .problem(503, "unavailable");
    // The process itself is alive, but not ready; operational endpoints answer in plain text.
    assert_eq!(
        call(&app, Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    let readyz = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(readyz.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(readyz.text(), "not ready");
    assert!(readyz.header("x-request-id").is_some());
}

#[test]
fn a_missing_service_credential_is_refused_at_start() {
    let mut config = gateway_config("http://127.0.0.1:1".into());
    config.service_credential = String::new();
    let error = AppState::new(&config).err().expect("refused");
    assert!(
        error.to_string().contains("FLOWPLANE_SERVICE_CREDENTIAL"),
        "{error}"
    );
    // Another service's credential is not the gateway's.
    config.service_credential = flowplane_runtime::credential::ServiceSecret::new(SERVICE_SECRET)
        .unwrap()
        .credential(flowplane_runtime::credential::Service::Learning);
    assert!(AppState::new(&config).is_err());
}

#[tokio::test]
async fn a_wrong_service_credential_is_an_internal_error_not_the_callers_401() {
    let fake = FakeConfig::start().await;
    let mut config = gateway_config(fake.url());
    config.service_credential =
        flowplane_runtime::credential::ServiceSecret::new("another-secret-0123456789")
            .unwrap()
            .credential(flowplane_runtime::credential::Service::ApiGateway);
    let app = crate::router(AppState::new(&config).unwrap());
    call(&app, Method::GET, "/api/v1/bootstrap/status", None, None)
        .await
        .problem(500, "internal");
}

// ---- operations endpoints ----

#[tokio::test]
async fn run_serves_and_becomes_ready_once_config_answers() {
    let fake = FakeConfig::start().await;
    let state = AppState::new(&gateway_config(fake.url())).unwrap();
    let readiness = state.readiness().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = flowplane_runtime::shutdown::channel();
    let server = tokio::spawn(crate::serve(listener, state, shutdown));
    for _ in 0..100 {
        if readiness.is_ready() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(readiness.is_ready());

    // A real TCP request: the peer address reaches config.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "GET /api/v1/admin/organizations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        credential("t1")
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(
        fake.calls.last_context().unwrap().client_address,
        "127.0.0.1"
    );

    trigger.fire();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let h = harness().await;
    call(
        &h.app,
        Method::GET,
        "/api/v1/clusters/some-name",
        None,
        None,
    )
    .await;
    call(
        &h.app,
        Method::GET,
        "/api/v1/tokens",
        Some(&credential("m1")),
        None,
    )
    .await;
    let metrics = call(&h.app, Method::GET, "/metrics", None, None)
        .await
        .text();
    assert!(
        metrics.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains(r#"route="/api/v1/clusters/{name}""#)
            && l.contains(r#"status="401""#)),
        "{metrics}"
    );
    assert!(metrics.contains("http_request_duration_seconds"));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("auth_authentications_total")
                && l.contains(r#"status="success""#)),
        "{metrics}"
    );
}

#[tokio::test]
async fn swagger_ui_is_served_from_embedded_assets() {
    let h = harness().await;
    let index = call(&h.app, Method::GET, "/swagger-ui/", None, None).await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(
        index
            .header(header::CONTENT_TYPE)
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        index.text().contains("SwaggerUIBundle") && index.text().contains("/api-docs/openapi.json")
    );
    let js = call(
        &h.app,
        Method::GET,
        "/swagger-ui/swagger-ui-bundle.js",
        None,
        None,
    )
    .await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.len() > 100_000);
    let css = call(
        &h.app,
        Method::GET,
        "/swagger-ui/swagger-ui.css",
        None,
        None,
    )
    .await;
    assert!(
        css.header(header::CONTENT_TYPE)
            .unwrap()
            .starts_with("text/css")
    );
    let redirect = call(&h.app, Method::GET, "/swagger-ui", None, None).await;
    assert_eq!(redirect.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.header(header::LOCATION), Some("/swagger-ui/"));
    call(&h.app, Method::GET, "/swagger-ui/secrets.txt", None, None)
        .await
        .problem(404, "not_found");
}

// ---- the OpenAPI document ----

async fn served_document(app: &Router) -> Value {
    let reply = call(app, Method::GET, "/api-docs/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// Echoes the route template axum matched, so the test can tell a routed request from the
/// fallback.
async fn expose_matched_path(request: Request, next: Next) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(matched) = matched.and_then(|m| m.parse().ok()) {
        response.headers_mut().insert("x-matched-path", matched);
    }
    response
}

#[tokio::test]
async fn every_authenticated_write_documents_the_csrf_header_and_reads_do_not() {
    let h = harness().await;
    let doc = served_document(&h.app).await;
    let mut writes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            let has_csrf = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "x-csrf-token" && p["in"] == "header");
            let write = ["post", "put", "patch", "delete"].contains(&method.as_str());
            assert_eq!(has_csrf, secured && write, "{method} {path}");
            writes += usize::from(has_csrf);
        }
    }
    assert!(writes > 20, "only {writes} operations carry the header");
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_every_documented_operation_is_routed() {
    let fake = FakeConfig::start().await;
    let state = AppState::new(&gateway_config(fake.url())).unwrap();
    let (router, _, routes) = crate::build(state);
    let doc = served_document(&router).await;
    let documented = documented_operations(&doc);

    let served: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, p)| (m.as_str().to_string(), p.clone()))
        .collect();
    assert!(served.len() >= 50, "{} routes", served.len());
    for route in &served {
        assert!(
            documented.contains(route),
            "{route:?} is served but not documented"
        );
    }
    assert_eq!(served, documented);

    // And each documented operation really reaches a route of that template and method.
    let probe = router.layer(from_fn(expose_matched_path));
    for (method, path) in &documented {
        let concrete = path
            .replace("{team}", "team-a")
            .replace("{name}", "n")
            .replace("{id}", "t-1")
            .replace("{file}", "swagger-ui.css");
        let req = request(method.parse().unwrap(), &concrete, None, None);
        let reply = send(&probe, req).await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            reply.header("x-matched-path"),
            Some(path.as_str()),
            "{method} {path}"
        );
    }
}

/// JSON Schema validates an `allOf` member by member: a closed member (`additionalProperties:
/// false`) would refuse the other members' fields, and no body could satisfy the schema. The
/// document merges such compositions; the bodies serde accepts are objects the schema allows.
#[tokio::test]
async fn no_composition_in_the_document_is_unsatisfiable() {
    let h = harness().await;
    let doc = served_document(&h.app).await;
    let schemas = doc["components"]["schemas"].clone();
    let resolve = |v: &Value| -> Value {
        match v["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        {
            Some(name) => schemas[name].clone(),
            None => v.clone(),
        }
    };
    for members in values_of_key(&doc, "allOf") {
        let Some(members) = members.as_array() else {
            continue;
        };
        if members.len() < 2 {
            continue;
        }
        for member in members {
            assert_ne!(
                resolve(member)["additionalProperties"],
                Value::Bool(false),
                "an allOf with a closed member: {members:?}"
            );
        }
    }
    // The bodies that were unsatisfiable: one object per variant, with the identity fields.
    let secret = &schemas["SecretInput"];
    let variants = secret["oneOf"].as_array().expect("SecretInput is a oneOf");
    assert_eq!(variants.len(), 3);
    for variant in variants {
        let properties = variant["properties"].as_object().unwrap();
        for field in ["name", "team", "type"] {
            assert!(properties.contains_key(field), "{field} in {variant}");
        }
        assert_eq!(variant["additionalProperties"], Value::Bool(false));
    }
    for name in ["ApiDefinitionInput", "ExposeInput"] {
        let properties = schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} is one object"));
        assert!(properties.contains_key("name"), "{name}");
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_security_problems_and_resolvable_schemas() {
    let h = harness().await;
    let doc = served_document(&h.app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Problem",
        "FieldError",
        "ClusterSpec",
        "Cluster",
        "ClusterInput",
        "ClusterList",
        "RouteConfigSpec",
        "ListenerSpec",
        "DataplaneSpec",
        "Token",
        "CreatedToken",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }

    // Every $ref points at a schema that exists.
    for r in values_of_key(&doc, "$ref") {
        let Some(r) = r.as_str() else {
            continue;
        };
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(schemas.contains_key(name), "dangling {r}");
    }

    // Operation ids are unique; secured operations document 401 as a problem; API operations
    // document 503.
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            if path.starts_with("/api/") {
                assert!(op["responses"].get("503").is_some(), "{method} {path}");
                // Public: the bootstrap status, and the calls that obtain a credential.
                let public = [
                    "/api/v1/bootstrap/status",
                    "/api/v1/auth/login",
                    "/api/v1/auth/register",
                ]
                .contains(&path.as_str());
                assert_eq!(
                    secured, !public,
                    "{method} {path}: only the bootstrap status, login and register are public"
                );
            }
            if secured {
                let unauthorized = &op["responses"]["401"]["content"]["application/problem+json"]["schema"]
                    ["$ref"];
                assert_eq!(
                    unauthorized, "#/components/schemas/Problem",
                    "{method} {path}"
                );
            }
        }
    }
    // A resource's schemas are the domain type's, flattened with the envelope: the domain
    // refuses unknown fields, so an `allOf` could never be satisfied.
    let input = &schemas["ClusterInput"];
    assert_eq!(input["additionalProperties"], false);
    for field in ["team", "name", "endpoints", "lbPolicy"] {
        assert!(
            input["properties"].get(field).is_some(),
            "ClusterInput.{field}"
        );
    }
    assert!(
        input["required"]
            .as_array()
            .unwrap()
            .contains(&json!("name"))
    );
    let reply = call(
        &h.app,
        Method::POST,
        "/api/v1/clusters",
        Some(&credential("t")),
        Some(CLUSTER),
    )
    .await;
    let rendered = reply.json();
    let output = &schemas["Cluster"]["properties"];
    for key in rendered.as_object().unwrap().keys() {
        assert!(
            output.get(key).is_some(),
            "rendered field {key} is not in the Cluster schema"
        );
    }
    for key in schemas["Cluster"]["required"].as_array().unwrap() {
        assert!(
            rendered.get(key.as_str().unwrap()).is_some(),
            "required {key} missing from {rendered}"
        );
    }
    let create = &doc["paths"]["/api/v1/clusters"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ClusterInput"
    );
    assert!(create["responses"]["201"]["headers"].get("ETag").is_some());
}

// ---- token update, rotation, notices, audit logs, teams ----

#[tokio::test]
async fn patching_a_token_sends_only_the_fields_given_and_null_removes_the_expiry() {
    let h = harness().await;
    let admin = credential("t-admin");
    let reply = call(
        &h.app,
        Method::PATCH,
        "/api/v1/tokens/t-7",
        Some(&admin),
        Some(r#"{"name":"renamed","scopes":["clusters:read"],"expiresAt":null}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["name"], "renamed");
    assert_eq!(reply.json()["scopes"], json!(["clusters:read"]));
    let reply = call(
        &h.app,
        Method::PATCH,
        "/api/v1/tokens/t-7",
        Some(&admin),
        Some(r#"{"description":"only this"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let updates = h.fake.calls.token_updates.lock().unwrap().clone();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].name.as_deref(), Some("renamed"));
    assert!(updates[0].replace_scopes);
    assert_eq!(
        updates[0].expires_at.as_deref(),
        Some(""),
        "null removes the expiry"
    );
    assert_eq!(updates[1].name, None);
    assert_eq!(updates[1].description.as_deref(), Some("only this"));
    assert!(!updates[1].replace_scopes);
    assert_eq!(updates[1].expires_at, None, "absent keeps the expiry");
}

#[tokio::test]
async fn patching_scopes_beyond_the_callers_is_a_400_with_the_field() {
    let h = harness().await;
    let body = call(
        &h.app,
        Method::PATCH,
        "/api/v1/tokens/t-7",
        Some(&credential("t-admin")),
        Some(r#"{"scopes":["admin:all"]}"#),
    )
    .await
    .problem(400, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "/scopes/0");
    call(
        &h.app,
        Method::PATCH,
        "/api/v1/tokens/t-7",
        Some(&credential("t-admin")),
        Some(r#"{"secret":"x"}"#),
    )
    .await
    .problem(400, "validation_failed");
}

#[tokio::test]
async fn rotating_returns_a_new_secret_and_the_old_one_stops_at_once() {
    let h = harness().await;
    let old = credential("t-rot");
    assert_eq!(
        call(&h.app, Method::GET, "/api/v1/tokens", Some(&old), None)
            .await
            .status,
        StatusCode::OK
    );
    let reply = call(
        &h.app,
        Method::POST,
        "/api/v1/tokens/t-rot/rotate",
        Some(&credential("t-admin")),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let new = reply.json()["token"].as_str().unwrap().to_string();
    assert_eq!(reply.json()["id"], "t-rot");
    assert_ne!(new, old);
    // The old credential was cached for 30 s, yet is refused right away.
    call(&h.app, Method::GET, "/api/v1/tokens", Some(&old), None)
        .await
        .problem(401, "unauthenticated");
    assert_eq!(
        call(&h.app, Method::GET, "/api/v1/tokens", Some(&new), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rotating_a_revoked_token_is_a_409() {
    let h = harness().await;
    let admin = credential("t-admin");
    call(
        &h.app,
        Method::DELETE,
        "/api/v1/tokens/t-gone",
        Some(&admin),
        None,
    )
    .await;
    call(
        &h.app,
        Method::POST,
        "/api/v1/tokens/t-gone/rotate",
        Some(&admin),
        None,
    )
    .await
    .problem(409, "conflict");
}

#[tokio::test]
async fn a_token_invalidated_notice_evicts_the_token_from_the_cache() {
    let fake = FakeConfig::start().await;
    let notices = flowplane_runtime::bus::AuthNotices::local();
    let state = AppState::new(&gateway_config(fake.url()))
        .unwrap()
        .with_notices(notices.clone());
    let listener = crate::auth::listen_for_notices(notices.clone(), state.auth.clone())
        .await
        .unwrap();
    let app = crate::router(state);
    let victim = credential("t-elsewhere");
    for _ in 0..2 {
        call(&app, Method::GET, "/api/v1/tokens", Some(&victim), None).await;
    }
    assert_eq!(fake.calls.authenticate.load(Ordering::SeqCst), 1, "cached");
    // Another gateway revoked it: config announces the token id, never a secret.
    fake.calls
        .revoked
        .lock()
        .unwrap()
        .insert("t-elsewhere".into());
    // The same id from another installation's config (a shared NATS) is not ours to act on.
    notices
        .clone()
        .from_installation("another-installation")
        .token_invalidated("t-elsewhere")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let reply = call(&app, Method::GET, "/api/v1/tokens", Some(&victim), None).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "another installation's notice evicted it"
    );
    assert_eq!(
        fake.calls.authenticate.load(Ordering::SeqCst),
        1,
        "still cached"
    );
    notices
        .clone()
        .from_installation(crate::fake_config::INSTALLATION)
        .token_invalidated("t-elsewhere")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let reply = call(&app, Method::GET, "/api/v1/tokens", Some(&victim), None).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served from the cache"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    listener.abort();
}

#[tokio::test]
async fn audit_logs_pass_filters_and_paging_and_render_events() {
    let h = harness().await;
    let admin = credential("t-admin");
    let reply = call(
        &h.app,
        Method::GET,
        "/api/v1/audit-logs?action=cluster.created&team=my-org-default&resourceKind=clusters&since=2025-01-01T00:00:00Z&until=2026-01-01T00:00:00Z&limit=10",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["nextCursor"], "7");
    let item = &body["items"][0];
    assert_eq!(item["action"], "cluster.created");
    assert_eq!(item["team"], "my-org-default");
    assert_eq!(item["actorUserId"], "u-admin");
    assert_eq!(item["after"], json!({"name": "c1"}));
    assert_eq!(item["before"], Value::Null);
    assert_eq!(item["clientAddress"], Value::Null);
    let sent = h.fake.calls.audit_requests.lock().unwrap()[0].clone();
    assert_eq!(sent.action, "cluster.created");
    assert_eq!(sent.team, "my-org-default");
    assert_eq!(sent.resource_kind, "clusters");
    assert_eq!(sent.since, "2025-01-01T00:00:00Z");
    assert_eq!(sent.until, "2026-01-01T00:00:00Z");
    assert_eq!(sent.limit, 10);
    let last = call(
        &h.app,
        Method::GET,
        "/api/v1/audit-logs?cursor=7",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(last.json()["nextCursor"], Value::Null);
    assert_eq!(h.fake.calls.audit_requests.lock().unwrap()[1].limit, 50);
    call(
        &h.app,
        Method::GET,
        "/api/v1/audit-logs?limit=501",
        Some(&admin),
        None,
    )
    .await
    .problem(400, "validation_failed");
    call(&h.app, Method::GET, "/api/v1/audit-logs", None, None)
        .await
        .problem(401, "unauthenticated");
}

#[tokio::test]
async fn teams_are_listed_and_created_per_organization() {
    let h = harness().await;
    let admin = credential("t-admin");
    let list = call(
        &h.app,
        Method::GET,
        "/api/v1/orgs/my-org/teams",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    assert_eq!(list.json()["items"][0]["name"], "my-org-default");
    call(
        &h.app,
        Method::GET,
        "/api/v1/orgs/other/teams",
        Some(&admin),
        None,
    )
    .await
    .problem(404, "not_found");
    let created = call(
        &h.app,
        Method::POST,
        "/api/v1/orgs/my-org/teams",
        Some(&admin),
        Some(r#"{"name":"payments","displayName":"Payments"}"#),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.json()["name"], "payments");
    assert_eq!(created.json()["displayName"], "Payments");
    call(
        &h.app,
        Method::POST,
        "/api/v1/orgs/my-org/teams",
        Some(&admin),
        Some(r#"{"name":"taken"}"#),
    )
    .await
    .problem(409, "already_exists");
}

#[tokio::test]
async fn a_gateway_serves_while_nats_for_notices_is_unreachable() {
    let fake = FakeConfig::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut config = gateway_config(fake.url());
    config.nats = Some(NatsSettings::at(&format!("nats://127.0.0.1:{closed}")));
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    config.api_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let (trigger, shutdown) = flowplane_runtime::shutdown::channel();
    let server = tokio::spawn(crate::run(config, shutdown));
    let mut ready = false;
    for _ in 0..150 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            if response.starts_with("HTTP/1.1 200") {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ready, "the gateway must not wait for NATS");
    trigger.fire();
    server.await.unwrap().unwrap();
}

// ---- sessions: cookie and CSRF ----

fn with_header(mut request: Request, name: &str, value: &str) -> Request {
    request.headers_mut().insert(
        axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
        axum::http::HeaderValue::from_str(value).unwrap(),
    );
    request
}

#[tokio::test]
async fn a_session_must_send_its_csrf_token_on_writes() {
    use crate::fake_config::{SESSION, SESSION_CSRF};
    let h = harness().await;
    let body = r#"{"name":"ci","scopes":["clusters:read"]}"#;
    // Reads need no CSRF token, by bearer or by cookie.
    let read = call(&h.app, Method::GET, "/api/v1/tokens", Some(SESSION), None).await;
    assert_eq!(read.status, StatusCode::OK);
    let by_cookie = request(Method::GET, "/api/v1/tokens", None, None);
    let by_cookie = with_header(by_cookie, "cookie", &format!("fp_session={SESSION}"));
    assert_eq!(send(&h.app, by_cookie).await.status, StatusCode::OK);
    // Writes without it, or with a wrong one, are refused before config hears of them.
    for csrf in [None, Some("wrong"), Some("")] {
        for bearer in [true, false] {
            let mut req = request(
                Method::POST,
                "/api/v1/tokens",
                bearer.then_some(SESSION),
                Some(body),
            );
            if !bearer {
                req = with_header(req, "cookie", &format!("fp_session={SESSION}"));
            }
            if let Some(csrf) = csrf {
                req = with_header(req, "x-csrf-token", csrf);
            }
            let refused = send(&h.app, req).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{csrf:?} {bearer}");
            assert_eq!(refused.json()["code"], "forbidden");
        }
    }
    let req = request(Method::POST, "/api/v1/tokens", Some(SESSION), Some(body));
    let req = with_header(req, "x-csrf-token", SESSION_CSRF);
    assert_eq!(send(&h.app, req).await.status, StatusCode::CREATED);
    // A token needs none.
    let by_token = call(
        &h.app,
        Method::POST,
        "/api/v1/tokens",
        Some(&credential("t1")),
        Some(body),
    )
    .await;
    assert_eq!(by_token.status, StatusCode::CREATED);
}

#[tokio::test]
async fn login_validates_its_body_before_anything_else() {
    let h = harness().await;
    let reply = call(
        &h.app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(r#"{"email":"","password":""}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let fields: Vec<String> = reply.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["/email", "/password"]);
}

// ---- filter types ----

#[tokio::test]
async fn filter_types_list_every_http_filter_variant_with_its_schema() {
    let h = harness().await;
    let reply = call(
        &h.app,
        Method::GET,
        "/api/v1/filter-types",
        Some(&credential("t1")),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    let items = body["items"].as_array().unwrap();
    let listed: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    let variants: Vec<String> = flowplane_domain::filters::catalog::variant_schemas()
        .into_iter()
        .map(|(tag, _)| tag)
        .collect();
    assert_eq!(listed, variants, "every HttpFilter variant, in order");
    for expected in [
        "router",
        "cors",
        "localRateLimit",
        "headerMutation",
        "rbac",
        "jwtAuth",
    ] {
        assert!(listed.contains(&expected), "{expected} missing: {listed:?}");
    }
    for item in items {
        let name = item["type"].as_str().unwrap();
        assert!(item["schema"].is_object(), "{name} has no schema");
        assert!(!item["description"].as_str().unwrap().is_empty(), "{name}");
        assert!(
            item["defaultName"]
                .as_str()
                .unwrap()
                .starts_with("envoy.filters.http.")
        );
        // Every $ref resolves inside the answer, so a client needs nothing else.
        let text = item.to_string();
        for reference in text.split("#/components/schemas/").skip(1) {
            let referenced = reference.split('"').next().unwrap();
            assert!(
                item["referencedSchemas"].get(referenced).is_some(),
                "{name}: {referenced} is referenced but not included"
            );
        }
    }
    let cors = &items[listed.iter().position(|t| *t == "cors").unwrap()];
    assert_eq!(cors["perRouteOverride"]["field"], "cors");
    assert!(cors["perRouteOverride"]["schema"].is_object());
    let router = &items[listed.iter().position(|t| *t == "router").unwrap()];
    assert_eq!(router["perRouteOverride"], json!({"disable": false}));
}

#[tokio::test]
async fn one_filter_type_is_served_by_its_tag_and_an_unknown_one_is_404() {
    let h = harness().await;
    let token = credential("t1");
    let reply = call(
        &h.app,
        Method::GET,
        "/api/v1/filter-types/jwtAuth",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["type"], "jwtAuth");
    assert_eq!(body["perRouteOverride"]["field"], "jwtRequirement");
    assert!(body["referencedSchemas"]["JwtAuthFilter"].is_object());
    call(
        &h.app,
        Method::GET,
        "/api/v1/filter-types/nope",
        Some(&token),
        None,
    )
    .await
    .problem(404, "not_found");
    call(&h.app, Method::GET, "/api/v1/filter-types", None, None)
        .await
        .problem(401, "unauthenticated");
}

/// Wrong secrets for one credential id are counted before config is asked: past the limit
/// (5 per id by default in these tests) the gateway answers 429 with `Retry-After` and config
/// runs no more verifications for it; another credential from the same address still works,
/// and a success clears its own count.
#[tokio::test]
async fn failed_bearer_authentications_are_throttled_before_config_is_asked() {
    let h = harness().await;
    let guess = "fp_pat_t-target.guess";
    for _ in 0..5 {
        let reply = call(&h.app, Method::GET, "/api/v1/tokens", Some(guess), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let asked = h.fake.calls.authenticate.load(Ordering::SeqCst);
    assert_eq!(asked, 5);
    let reply = call(&h.app, Method::GET, "/api/v1/tokens", Some(guess), None).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(
        h.fake.calls.authenticate.load(Ordering::SeqCst),
        asked,
        "config was asked about a throttled credential"
    );
    // The right secret of another token from the same address is not held back.
    let reply = call(
        &h.app,
        Method::GET,
        "/api/v1/tokens",
        Some(&credential("t-other")),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// Every value held under `key` at any depth of `value` (a document's `$ref`s, `allOf`s).
fn values_of_key<'a>(value: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut found = Vec::new();
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                found.extend(map.get(key));
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    found
}
