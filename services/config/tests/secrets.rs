//! Secrets against a real PostgreSQL: material sealed at rest and never shown again, opened
//! only for xds-server, references from listeners and clusters checked both ways.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flowplane_config::error::ServiceError;
use flowplane_config::{identity, resources, secret_material};
use flowplane_domain::ResourceKind;
use serde_json::json;
use sqlx::Row;
use support::{TestDb, admin, cluster_body};

const CERT: &str = include_str!("../../../shared/domain/testdata/localhost.crt.pem");
const KEY: &str = include_str!("../../../shared/domain/testdata/localhost.key.pem");

/// A line of the private key's base64 body: if it shows up anywhere, the key leaked.
fn key_marker() -> &'static str {
    KEY.lines().nth(1).unwrap()
}

async fn team(db: &TestDb, org: &str) -> String {
    let created = identity::create_organization(&db.ctx, &admin(), org, "")
        .await
        .unwrap_or_else(|e| panic!("create org: {e}"));
    created.default_team.unwrap_or_default().name
}

fn secret_body(team: &str, name: &str, key: &str) -> String {
    json!({"team": team, "name": name, "type": "tlsCertificate",
           "certificateChain": CERT, "privateKey": key})
    .to_string()
}

fn tls_listener(team: &str, name: &str, cert: &str) -> String {
    json!({"team": team, "name": name, "port": 10443, "protocol": "TCP",
           "filterChains": [{"tls": {"certificateSecret": cert},
                             "filters": [{"type": "tcpProxy", "cluster": "backend"}]}]})
    .to_string()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every byte the database holds about resources, their audit rows and their events.
async fn everything_stored(db: &TestDb) -> Vec<Vec<u8>> {
    let mut stored = Vec::new();
    for query in [
        "SELECT convert_to(row_to_json(r)::text, 'UTF8') AS b FROM resources r",
        "SELECT convert_to(row_to_json(a)::text, 'UTF8') AS b FROM audit_log a",
        "SELECT sealed AS b FROM resources WHERE sealed IS NOT NULL",
        "SELECT payload AS b FROM outbox",
    ] {
        for row in sqlx::query(query).fetch_all(&db.ctx.pool).await.unwrap() {
            stored.push(row.try_get::<Vec<u8>, _>("b").unwrap());
        }
    }
    stored
}

#[tokio::test]
async fn material_is_sealed_at_rest_and_never_returned() {
    let db = TestDb::new().await;
    let team = team(&db, "acme").await;
    let admin = admin();
    let created = resources::create(
        &db.ctx,
        &admin,
        ResourceKind::Secret,
        "",
        &secret_body(&team, "edge", KEY),
    )
    .await
    .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&created.spec_json).unwrap();
    assert_eq!(summary["type"], "tlsCertificate");
    assert_eq!(
        summary["certificates"][0]["serialNumber"],
        "7494C14D174F9262A76C7EEDE1866A9358B17E57"
    );
    let read = resources::get(&db.ctx, &admin, ResourceKind::Secret, &team, "edge")
        .await
        .unwrap();
    let listed = resources::list(&db.ctx, &admin, ResourceKind::Secret, &team, 0, "")
        .await
        .unwrap();
    for shown in [
        &created.spec_json,
        &read.spec_json,
        &listed.items[0].spec_json,
    ] {
        assert!(!shown.contains("BEGIN"), "material in a response: {shown}");
        assert!(!shown.contains(key_marker()));
    }

    // The key appears nowhere in the database: not in rows, audit entries, events or the
    // sealed column (which must be present and opaque).
    let stored = everything_stored(&db).await;
    assert!(
        stored.len() >= 4,
        "rows, audit, sealed and outbox were read"
    );
    for bytes in &stored {
        assert!(
            !contains(bytes, key_marker()),
            "private key stored in the clear"
        );
        assert!(!contains(bytes, "PRIVATE KEY"));
    }
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT sealed FROM resources WHERE name = 'edge'")
            .fetch_one(&db.ctx.pool)
            .await
            .unwrap();
    assert!(sealed.is_some_and(|s| s.len() > KEY.len()));

    // Only xds-server's paths open it.
    let state = support::full_state(&db.ctx).await.unwrap();
    let served = state.iter().find(|r| r.name == "edge").unwrap();
    assert!(served.spec_json.contains(key_marker()));
    let fetched = secret_material::get_secrets(&db.ctx, &team, &["edge".into(), "gone".into()])
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    assert!(fetched[0].spec_json.contains(key_marker()));
    db.drop_db().await;
}

#[tokio::test]
async fn updates_compare_material_and_bad_pem_changes_nothing() {
    let db = TestDb::new().await;
    let team = team(&db, "acme").await;
    let admin = admin();
    let body = secret_body(&team, "edge", KEY);
    let first = resources::create(&db.ctx, &admin, ResourceKind::Secret, "", &body)
        .await
        .unwrap();
    let same = resources::update(
        &db.ctx,
        &admin,
        ResourceKind::Secret,
        &team,
        "edge",
        &body,
        0,
    )
    .await
    .unwrap();
    assert_eq!(
        same.revision, first.revision,
        "an identical PUT spends nothing"
    );

    // Same certificate, different key bytes (PKCS#8 re-wrapped): the summary is unchanged but
    // the material is not, so it is a change.
    let rewrapped = KEY.replace(
        "-----END PRIVATE KEY-----\n",
        "-----END PRIVATE KEY-----\n\n",
    );
    let changed = resources::update(
        &db.ctx,
        &admin,
        ResourceKind::Secret,
        &team,
        "edge",
        &secret_body(&team, "edge", &rewrapped),
        0,
    )
    .await
    .unwrap();
    assert_eq!(changed.revision, first.revision + 1);

    let bad = resources::update(
        &db.ctx,
        &admin,
        ResourceKind::Secret,
        &team,
        "edge",
        &secret_body(
            &team,
            "edge",
            "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        ),
        0,
    )
    .await;
    match bad {
        Err(ServiceError::Validation(errors)) => {
            assert_eq!(errors.errors()[0].field, "/privateKey");
            assert!(!errors.to_string().contains("not base64!"));
        }
        other => panic!("expected a 400 on /privateKey, got {other:?}"),
    }
    let after = resources::get(&db.ctx, &admin, ResourceKind::Secret, &team, "edge")
        .await
        .unwrap();
    assert_eq!(
        after.revision, changed.revision,
        "the bad write changed nothing"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn references_are_checked_on_write_and_protect_on_delete() {
    let db = TestDb::new().await;
    let team = team(&db, "acme").await;
    let other = team_in_other_org(&db).await;
    let admin = admin();
    for t in [&team, &other] {
        resources::create(
            &db.ctx,
            &admin,
            ResourceKind::Cluster,
            "",
            &cluster_body(t, "backend", 8080),
        )
        .await
        .unwrap();
    }
    resources::create(
        &db.ctx,
        &admin,
        ResourceKind::Secret,
        "",
        &secret_body(&team, "edge", KEY),
    )
    .await
    .unwrap();

    // Missing, and another team's, are the same 400 at the referring field.
    for (t, cert) in [(&team, "missing"), (&other, "edge")] {
        let dangling = resources::create(
            &db.ctx,
            &admin,
            ResourceKind::Listener,
            "",
            &tls_listener(t, "l", cert),
        )
        .await;
        match dangling {
            Err(ServiceError::Validation(errors)) => {
                assert_eq!(
                    errors.errors()[0].field,
                    "/filterChains/0/tls/certificateSecret"
                );
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }
    let cluster = json!({"team": team, "name": "upstream", "useTls": true,
        "endpoints": [{"host": "api.internal", "port": 443}],
        "tls": {"validationSecret": "nope"}});
    match resources::create(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        "",
        &cluster.to_string(),
    )
    .await
    {
        Err(ServiceError::Validation(errors)) => {
            assert_eq!(errors.errors()[0].field, "/tls/validationSecret");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    // A secret of the wrong type is refused where it is named: a certificate cannot serve as
    // trust anchors.
    let wrong_type = json!({"team": team, "name": "upstream", "useTls": true,
        "endpoints": [{"host": "api.internal", "port": 443}],
        "tls": {"validationSecret": "edge"}});
    match resources::create(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        "",
        &wrong_type.to_string(),
    )
    .await
    {
        Err(ServiceError::Validation(errors)) => {
            assert_eq!(errors.errors()[0].field, "/tls/validationSecret");
            assert!(
                errors.errors()[0].message.contains("validationContext"),
                "{errors:?}"
            );
        }
        other => panic!("expected a 400, got {other:?}"),
    }

    resources::create(
        &db.ctx,
        &admin,
        ResourceKind::Listener,
        "",
        &tls_listener(&team, "edge-listener", "edge"),
    )
    .await
    .unwrap();
    let cluster = json!({"team": team, "name": "mtls-upstream", "useTls": true,
        "endpoints": [{"host": "api.internal", "port": 443}],
        "tls": {"clientCertificateSecret": "edge"}});
    resources::create(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        "",
        &cluster.to_string(),
    )
    .await
    .unwrap();
    match resources::delete(&db.ctx, &admin, ResourceKind::Secret, &team, "edge", 0).await {
        Err(ServiceError::Conflict { referrers, .. }) => {
            let fields: Vec<&str> = referrers.iter().map(|r| r.field.as_str()).collect();
            assert_eq!(
                fields,
                [
                    "/clusters/mtls-upstream/tls/clientCertificateSecret",
                    "/listeners/edge-listener/filterChains/0/tls/certificateSecret"
                ]
            );
        }
        other => panic!("expected 409, got {other:?}"),
    }
    resources::delete(
        &db.ctx,
        &admin,
        ResourceKind::Listener,
        &team,
        "edge-listener",
        0,
    )
    .await
    .unwrap();
    resources::delete(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        &team,
        "mtls-upstream",
        0,
    )
    .await
    .unwrap();
    resources::delete(&db.ctx, &admin, ResourceKind::Secret, &team, "edge", 0)
        .await
        .unwrap();
    db.drop_db().await;
}

async fn team_in_other_org(db: &TestDb) -> String {
    team(db, "globex").await
}

/// Rotation: a new `FLOWPLANE_SECRETS_KEY` with the old one as previous opens everything,
/// re-seals it under the new key (nothing else about the row changes), after which the new
/// key alone serves the material and the old one opens nothing.
#[tokio::test]
async fn rotating_the_secrets_key_reseals_every_secret() {
    use flowplane_config::secrets_key::SecretsKey;
    use std::sync::Arc;

    let mut db = TestDb::new().await;
    let old = SecretsKey::generate_base64().unwrap();
    db.ctx.secrets_key = Arc::new(SecretsKey::from_base64(&old).unwrap());
    let team = team(&db, "rotating").await;
    let created = resources::create(
        &db.ctx,
        &admin(),
        ResourceKind::Secret,
        "",
        &secret_body(&team, "edge", KEY),
    )
    .await
    .unwrap();

    let new = SecretsKey::generate_base64().unwrap();
    // Without the previous key the material does not open: the state load refuses.
    db.ctx.secrets_key = Arc::new(SecretsKey::from_base64(&new).unwrap());
    assert!(support::full_state(&db.ctx).await.is_err());

    let rotating = SecretsKey::from_base64(&new)
        .unwrap()
        .with_previous(&old)
        .unwrap();
    let resealed = secret_material::reseal_with_current_key(&db.ctx.pool, &rotating)
        .await
        .unwrap();
    assert_eq!(resealed, 1);
    assert_eq!(
        secret_material::reseal_with_current_key(&db.ctx.pool, &rotating)
            .await
            .unwrap(),
        0,
        "a second pass finds nothing left under the old key"
    );

    // The new key alone now serves the material; the revision did not move.
    let state = support::full_state(&db.ctx).await.unwrap();
    let served = state.iter().find(|r| r.name == "edge").unwrap();
    assert!(served.spec_json.contains(key_marker()));
    assert_eq!(served.revision, created.revision);
    db.ctx.secrets_key = Arc::new(SecretsKey::from_base64(&old).unwrap());
    assert!(
        support::full_state(&db.ctx).await.is_err(),
        "the old key is retired"
    );
    db.drop_db().await;
}
