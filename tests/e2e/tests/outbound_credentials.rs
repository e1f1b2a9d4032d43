//! Outbound API access through a real Envoy: a `credentialInjector` filter adds a credential
//! kept in a generic secret to requests on their way upstream. The upstream sees it, the client
//! never does, a route can switch it off, rotating the secret changes what is sent without
//! touching the listener, and the secret is neither returned nor deletable while in use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_injects_a_credential_from_a_secret_and_follows_its_rotation() {
    flowplane_e2e::run_scenario("outbound-credentials", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "outbound").await?;
    let api = &tenant.api;
    let (dataplane, bootstrap) = tenant.dataplane("egress").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let partner = Upstream::start("partner").await?;
    let secret = |value: &str| {
        json!({"team": tenant.team, "name": "partner-key", "type": "genericSecret",
            "secret": value})
    };
    let created = api
        .expect(
            Method::POST,
            "/api/v1/secrets",
            Some(&secret("first-token")),
            201,
        )
        .await?;
    anyhow::ensure!(
        !created.to_string().contains("first-token"),
        "the secret is never returned: {created}"
    );
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&tenant.cluster("partner", partner.port)),
        201,
    )
    .await?;
    let routes = tenant.route_config_bypassing(
        "partner-routes",
        "partner",
        "/docs",
        "envoy.filters.http.credential_injector",
    );
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;
    let port = free_port();
    let listener = |secret_name: &str| {
        let mut body = tenant.listener("egress", port, &dataplane, "partner-routes");
        body["filterChains"][0]["filters"][0]["httpFilters"] = json!([
            {"filter": {"type": "credentialInjector", "secret": secret_name,
                        "valuePrefix": "Bearer "}},
            {"filter": {"type": "router"}}]);
        body
    };

    // The filter's secret must exist (as a generic secret): a 400 at its field otherwise.
    let dangling = api.post("/api/v1/listeners", &listener("missing")).await?;
    anyhow::ensure!(
        dangling.status.as_u16() == 400
            && dangling.body["errors"][0]["field"]
                == "/filterChains/0/filters/0/httpFilters/0/filter/secret",
        "a missing secret: {dangling:?}"
    );
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&listener("partner-key")),
        201,
    )
    .await?;

    let client = reqwest::Client::new();
    let seen_by_partner = |path: &'static str, authorization: Option<&'static str>| {
        let mut request = client.get(format!("http://127.0.0.1:{port}{path}"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            if response.status() != 200 {
                return Err(format!("status {}", response.status()));
            }
            let body: Value = response.json().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(body["headers"]["authorization"].as_str().map(String::from))
        }
    };
    let (first, _) = eventually(
        "the partner to receive the injected credential",
        Duration::from_secs(20),
        || async {
            match seen_by_partner("/v1/quotes", None).await? {
                Some(value) => Ok(value),
                None => Err("no authorization header upstream yet".to_string()),
            }
        },
    )
    .await?;
    anyhow::ensure!(first == "Bearer first-token", "injected: {first}");
    // A credential the client sends itself is kept (overwrite is off by default).
    let own = seen_by_partner("/v1/quotes", Some("Bearer client-own")).await;
    anyhow::ensure!(
        own == Ok(Some("Bearer client-own".into())),
        "client credential: {own:?}"
    );
    // The route that switches the filter off sends nothing.
    let docs = seen_by_partner("/docs/index", None).await;
    anyhow::ensure!(docs == Ok(None), "docs route: {docs:?}");

    // Rotation: the new value is sent without touching the listener or restarting Envoy.
    api.expect(
        Method::PUT,
        &format!("/api/v1/teams/{}/secrets/partner-key", tenant.team),
        Some(&secret("second-token")),
        200,
    )
    .await?;
    eventually(
        "the rotated credential to be sent",
        Duration::from_secs(20),
        || async {
            match seen_by_partner("/v1/quotes", None).await? {
                Some(value) if value == "Bearer second-token" => Ok(()),
                other => Err(format!("still {other:?}")),
            }
        },
    )
    .await?;

    // The secret cannot go while the listener uses it.
    let delete = api
        .delete(&format!(
            "/api/v1/teams/{}/secrets/partner-key",
            tenant.team
        ))
        .await?;
    anyhow::ensure!(delete.status == 409, "delete in use: {delete:?}");
    for (service, log) in stack.full_logs() {
        anyhow::ensure!(
            !log.contains("first-token") && !log.contains("second-token"),
            "{service}'s log holds the credential"
        );
    }
    envoy.stop().await;
    Ok(())
}
