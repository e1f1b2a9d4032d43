//! Two installations of Flowplane on one NATS with the same settings (the same stream, the
//! same subjects), each with a fresh database, as after a reset or in a shared environment:
//! the same organization, team, dataplane and resource names, and revisions that start at 1
//! in both. Writes interleave; each Envoy serves only its own installation's config, and
//! every change of the second installation reaches its Envoy at once rather than being
//! dropped as a duplicate of the first's revision and caught up only by the periodic re-sync.

use std::time::Duration;

use flowplane_e2e::{Dependencies, Envoy, Stack, Tenant, Upstream, eventually, free_port, metric};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installations_on_one_nats_never_mix_or_lose_changes() {
    let first = Stack::start("install-a").await.expect("first stack");
    let second = Stack::start_with(
        "install-b",
        Dependencies {
            nats_prefix: Some(first.nats_prefix().to_string()),
            ..Dependencies::default()
        },
    )
    .await
    .expect("second stack");
    let result = scenario(&first, &second).await;
    if let Err(e) = &result {
        eprintln!("{}\n{}", first.logs(), second.logs());
        first.stop().await;
        second.stop().await;
        panic!("{e:#}");
    }
    first.stop().await;
    second.stop().await;
}

/// One installation's side: its tenant, Envoy, upstreams and listener port.
struct Side {
    tenant: Tenant,
    _envoy: Envoy,
    port: u16,
    _upstreams: (Upstream, Upstream),
    ports: (u16, u16),
}

async fn side(stack: &Stack, label: &str) -> anyhow::Result<Side> {
    // The same names in both installations: only the installation tells them apart.
    let tenant = Tenant::create(stack, "acme").await?;
    let (dataplane, bootstrap) = tenant.dataplane("edge").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let one = Upstream::start(&format!("{label}-one")).await?;
    let two = Upstream::start(&format!("{label}-two")).await?;
    let port = free_port();
    let api = &tenant.api;
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&tenant.cluster("app", one.port)),
        201,
    )
    .await?;
    api.expect(
        Method::POST,
        "/api/v1/route-configs",
        Some(&tenant.route_config("web", "app")),
        201,
    )
    .await?;
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&tenant.listener("web", port, &dataplane, "web")),
        201,
    )
    .await?;
    let ports = (one.port, two.port);
    Ok(Side {
        tenant,
        _envoy: envoy,
        port,
        _upstreams: (one, two),
        ports,
    })
}

/// Which upstream the side's Envoy sends a request to.
async fn served_by(port: u16) -> Result<String, String> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    Ok(body["upstream"].as_str().unwrap_or_default().to_string())
}

async fn serves(side: &Side, upstream: &str, what: &str) -> anyhow::Result<Duration> {
    let port = side.port;
    let wanted = upstream.to_string();
    let (_, took) = eventually(what, Duration::from_secs(3), || {
        let wanted = wanted.clone();
        async move {
            match served_by(port).await {
                Ok(got) if got == wanted => Ok(()),
                Ok(got) => Err(format!("served by {got}")),
                Err(e) => Err(e),
            }
        }
    })
    .await?;
    Ok(took)
}

async fn point_app_at(side: &Side, port: u16) -> anyhow::Result<()> {
    side.tenant
        .api
        .expect(
            Method::PUT,
            &format!("/api/v1/teams/{}/clusters/app", side.tenant.team),
            Some(&side.tenant.cluster("app", port)),
            200,
        )
        .await?;
    Ok(())
}

async fn scenario(first: &Stack, second: &Stack) -> anyhow::Result<()> {
    let a = side(first, "a").await?;
    let b = side(second, "b").await?;
    serves(&a, "a-one", "installation A's Envoy serving A's config").await?;
    serves(&b, "b-one", "installation B's Envoy serving B's config").await?;

    // Interleaved changes at the same revisions in both databases.
    for (round, (a_port, b_port, a_label, b_label)) in [
        (a.ports.1, b.ports.1, "a-two", "b-two"),
        (a.ports.0, b.ports.0, "a-one", "b-one"),
        (a.ports.1, b.ports.1, "a-two", "b-two"),
    ]
    .into_iter()
    .enumerate()
    {
        point_app_at(&a, a_port).await?;
        point_app_at(&b, b_port).await?;
        let took_a = serves(&a, a_label, "A's change reaching A's Envoy").await?;
        let took_b = serves(&b, b_label, "B's change reaching B's Envoy").await?;
        eprintln!("round {round}: A's change served after {took_a:?}, B's after {took_b:?}");
    }
    // And nothing of the other installation ever reached either Envoy.
    for _ in 0..5 {
        anyhow::ensure!(served_by(a.port).await.map_err(anyhow::Error::msg)? == "a-two");
        anyhow::ensure!(served_by(b.port).await.map_err(anyhow::Error::msg)? == "b-two");
    }
    // A token revoked in A: its notice reaches B's gateway too (one NATS), which ignores it.
    let made = a
        .tenant
        .admin
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": "brief", "scopes": ["clusters:read"]})),
            201,
        )
        .await?;
    let id = made["id"].as_str().unwrap_or_default().to_string();
    a.tenant
        .admin
        .expect(Method::DELETE, &format!("/api/v1/tokens/{id}"), None, 204)
        .await?;
    eventually(
        "B's gateway to ignore A's token-invalidated notice",
        Duration::from_secs(5),
        || async {
            match metric(&second.api_url, "auth_foreign_notices_total").await? {
                n if n >= 1.0 => Ok(()),
                n => Err(format!("{n} foreign notices")),
            }
        },
    )
    .await?;
    Ok(())
}
