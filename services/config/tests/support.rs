//! A fresh database per test, dropped afterwards. A missing database server fails the test;
//! it never skips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::sync::Arc;

use flowplane_config::Context;
use flowplane_config::authz::Caller;
use flowplane_domain::scopes::Grants;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr;
use tokio::sync::Notify;

pub struct TestDb {
    pub ctx: Context,
    name: String,
    base: String,
}

pub fn base_url() -> String {
    std::env::var("FLOWPLANE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

impl TestDb {
    pub async fn new() -> Self {
        let name = unique("fp_test");
        let base = base_url();
        let pool = flowplane_config::db::connect(&format!("{base}/{name}"), true)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must be running for these tests: {e:#}"));
        Self {
            ctx: Context {
                pool,
                outbox_ready: Arc::new(Notify::new()),
                notices: flowplane_runtime::bus::AuthNotices::local(),
                identity: Default::default(),
                secrets_key: Arc::new(test_secrets_key()),
                keys: Arc::new(test_keys()),
                gather: flowplane_runtime::bus::Bus::local().gather(),
            },
            name,
            base,
        }
    }

    pub async fn drop_db(self) {
        self.ctx.pool.close().await;
        if let Ok(options) = PgConnectOptions::from_str(&format!("{}/postgres", self.base))
            && let Ok(mut conn) = options.connect().await
        {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(&drop).execute(&mut conn).await;
        }
    }
}

/// The service secret of these tests' config.
pub const SERVICE_SECRET: &str = "config-test-service-secret-0123456789";

pub fn test_keys() -> flowplane_config::service_auth::Keys {
    flowplane_config::service_auth::Keys::new(
        flowplane_runtime::credential::ServiceSecret::new(SERVICE_SECRET).unwrap(),
    )
}

pub fn test_secrets_key() -> flowplane_config::secrets_key::SecretsKey {
    let encoded = flowplane_config::secrets_key::SecretsKey::generate_base64().unwrap();
    flowplane_config::secrets_key::SecretsKey::from_base64(&encoded).unwrap()
}

pub fn caller(scopes: &[&str], org_id: Option<String>) -> Caller {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    Caller {
        grants: Grants::parse(&scopes, org_id),
        user_id: None,
        token_id: None,
        session_id: None,
        request_id: "test-request".into(),
        client_address: "127.0.0.1".into(),
    }
}

/// A caller of the organization `team` belongs to, holding `scopes` (team scopes are held only
/// within their organization).
pub async fn caller_in_team_org(db: &TestDb, team: &str, scopes: &[&str]) -> Caller {
    let org: uuid::Uuid = sqlx::query_scalar("SELECT org_id FROM teams WHERE name = $1")
        .bind(team)
        .fetch_one(&db.ctx.pool)
        .await
        .unwrap_or_else(|e| panic!("team {team}: {e}"));
    caller(scopes, Some(org.to_string()))
}

pub fn admin() -> Caller {
    caller(&["admin:all"], None)
}

pub fn cluster_body(team: &str, name: &str, port: u16) -> String {
    serde_json::json!({"team": team, "name": name, "endpoints": [{"host": "127.0.0.1", "port": port}]}).to_string()
}

pub fn route_body(team: &str, name: &str, cluster: &str) -> String {
    serde_json::json!({"team": team, "name": name, "virtualHosts": [{"name": "vh", "domains": ["*"],
        "routes": [{"match": {"path": {"type": "prefix", "value": "/"}}, "action": {"type": "forward", "cluster": cluster}}]}]})
    .to_string()
}

/// The full state as a replica receives it, its parts in order.
pub async fn state_parts(
    ctx: &Context,
) -> Result<Vec<flowplane_proto::state::v1::State>, tonic::Status> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let ctx = ctx.clone();
    let producer = tokio::spawn(async move {
        if let Err(e) = flowplane_config::state::stream_state(&ctx, &tx).await {
            let _ = tx.send(Err(e.into())).await;
        }
    });
    let mut parts = Vec::new();
    while let Some(part) = rx.recv().await {
        parts.push(part?);
    }
    producer
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(parts)
}

/// Every resource of the full state, as one list.
pub async fn full_state(
    ctx: &Context,
) -> Result<Vec<flowplane_proto::resources::v1::Resource>, tonic::Status> {
    let parts = state_parts(ctx).await?;
    Ok(parts.into_iter().flat_map(|p| p.resources).collect())
}
