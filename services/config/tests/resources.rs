//! Resource writes against a real PostgreSQL: revisions, audit, outbox, references, tenancy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flowplane_config::error::ServiceError;
use flowplane_config::{identity, resources};
use flowplane_domain::ResourceKind;
use sqlx::Row;
use support::{TestDb, admin, caller, cluster_body, route_body};

async fn org(db: &TestDb, name: &str) -> (String, String) {
    let created = identity::create_organization(&db.ctx, &admin(), name, "")
        .await
        .unwrap_or_else(|e| panic!("create org: {e}"));
    let team = created.default_team.unwrap_or_default();
    (team.name, team.org_id)
}

#[tokio::test]
async fn every_write_takes_the_next_gap_free_revision_with_audit_and_outbox() {
    let db = TestDb::new().await;
    let (team, _) = org(&db, "acme").await;
    let admin = admin();
    let a = resources::create(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        "",
        &cluster_body(&team, "a", 80),
    )
    .await;
    assert_eq!(a.map(|r| r.revision).ok(), Some(1));

    // Failed writes spend no revision.
    let dup = resources::create(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        "",
        &cluster_body(&team, "a", 81),
    )
    .await;
    assert!(
        matches!(dup, Err(ServiceError::AlreadyExists(_))),
        "{dup:?}"
    );
    let dangling = resources::create(
        &db.ctx,
        &admin,
        ResourceKind::RouteConfig,
        "",
        &route_body(&team, "r", "missing"),
    )
    .await;
    match dangling {
        Err(ServiceError::Validation(errors)) => {
            assert_eq!(
                errors.errors()[0].field,
                "/virtualHosts/0/routes/0/action/cluster"
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }

    let route = resources::create(
        &db.ctx,
        &admin,
        ResourceKind::RouteConfig,
        "",
        &route_body(&team, "r", "a"),
    )
    .await;
    assert_eq!(route.map(|r| r.revision).ok(), Some(2));
    // An update that changes nothing spends nothing.
    let same = resources::update(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        &team,
        "a",
        &cluster_body(&team, "a", 80),
        1,
    )
    .await;
    assert_eq!(same.map(|r| r.revision).ok(), Some(1));
    let stale = resources::update(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        &team,
        "a",
        &cluster_body(&team, "a", 90),
        7,
    )
    .await;
    assert!(
        matches!(
            stale,
            Err(ServiceError::RevisionMismatch {
                expected: 7,
                current: 1
            })
        ),
        "{stale:?}"
    );
    let updated = resources::update(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        &team,
        "a",
        &cluster_body(&team, "a", 90),
        1,
    )
    .await;
    assert_eq!(updated.map(|r| r.revision).ok(), Some(3));

    // Referenced resources cannot be deleted; the referrer is named.
    match resources::delete(&db.ctx, &admin, ResourceKind::Cluster, &team, "a", 0).await {
        Err(ServiceError::Conflict { referrers, .. }) => {
            assert_eq!(
                referrers[0].field,
                "/route-configs/r/virtualHosts/0/routes/0/action/cluster"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        resources::delete(&db.ctx, &admin, ResourceKind::RouteConfig, &team, "r", 0)
            .await
            .ok(),
        Some(4)
    );
    assert_eq!(
        resources::delete(&db.ctx, &admin, ResourceKind::Cluster, &team, "a", 0)
            .await
            .ok(),
        Some(5)
    );

    let outbox: Vec<i64> = sqlx::query_scalar("SELECT revision FROM outbox ORDER BY revision")
        .fetch_all(&db.ctx.pool)
        .await
        .unwrap_or_default();
    assert_eq!(outbox, vec![1, 2, 3, 4, 5]);
    let audit = sqlx::query("SELECT action, revision, before IS NOT NULL AS has_before FROM audit_log WHERE revision IS NOT NULL ORDER BY id")
        .fetch_all(&db.ctx.pool)
        .await
        .unwrap_or_default();
    let actions: Vec<(String, i64, bool)> = audit
        .iter()
        .map(|r| (r.get("action"), r.get("revision"), r.get("has_before")))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("cluster.created".into(), 1, false),
            ("route-config.created".into(), 2, false),
            ("cluster.updated".into(), 3, true),
            ("route-config.deleted".into(), 4, true),
            ("cluster.deleted".into(), 5, true),
        ]
    );
    db.drop_db().await;
}

#[tokio::test]
async fn teams_are_isolated_and_hidden() {
    let db = TestDb::new().await;
    let (team_a, org_a) = org(&db, "alpha").await;
    let (team_b, _) = org(&db, "beta").await;
    let admin = admin();
    for team in [&team_a, &team_b] {
        resources::create(
            &db.ctx,
            &admin,
            ResourceKind::Cluster,
            "",
            &cluster_body(team, "shared-name", 80),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let a_writer = caller(
        &[&format!("team:{team_a}:clusters:write")],
        Some(org_a.clone()),
    );
    let a_reader = caller(&[&format!("team:{team_a}:clusters:read")], Some(org_a));

    // Team B does not exist as far as team A's token can tell.
    let get = resources::get(
        &db.ctx,
        &a_writer,
        ResourceKind::Cluster,
        &team_b,
        "shared-name",
    )
    .await;
    assert!(matches!(get, Err(ServiceError::NotFound(_))), "{get:?}");
    let create = resources::create(
        &db.ctx,
        &a_writer,
        ResourceKind::Cluster,
        "",
        &cluster_body(&team_b, "x", 80),
    )
    .await;
    assert!(
        matches!(create, Err(ServiceError::NotFound(_))),
        "{create:?}"
    );
    let list = resources::list(&db.ctx, &a_writer, ResourceKind::Cluster, "", 0, "").await;
    let teams: Vec<String> = list
        .map(|l| l.items.into_iter().map(|r| r.team).collect())
        .unwrap_or_default();
    assert_eq!(teams, vec![team_a.clone()]);
    // Without ?team=, the one visible match is found.
    let found = resources::get(&db.ctx, &a_writer, ResourceKind::Cluster, "", "shared-name").await;
    assert_eq!(found.map(|r| r.team).ok(), Some(team_a.clone()));

    // Read-only sees, but may not write (403, not 404).
    let write = resources::update(
        &db.ctx,
        &a_reader,
        ResourceKind::Cluster,
        &team_a,
        "shared-name",
        &cluster_body(&team_a, "shared-name", 81),
        0,
    )
    .await;
    assert!(
        matches!(write, Err(ServiceError::Forbidden(_))),
        "{write:?}"
    );
    // Other resource kinds stay hidden from a clusters-only token.
    let listeners =
        resources::list(&db.ctx, &a_writer, ResourceKind::Listener, &team_a, 0, "").await;
    assert!(
        matches!(listeners, Err(ServiceError::NotFound(_))),
        "{listeners:?}"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn lists_page_with_cursors() {
    let db = TestDb::new().await;
    let (team, _) = org(&db, "pager").await;
    let admin = admin();
    for i in 0..7 {
        resources::create(
            &db.ctx,
            &admin,
            ResourceKind::Cluster,
            "",
            &cluster_body(&team, &format!("c{i}"), 80),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = resources::list(&db.ctx, &admin, ResourceKind::Cluster, &team, 3, &cursor)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        seen.extend(page.items.into_iter().map(|r| r.name));
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    assert_eq!(seen, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
    let bad = resources::list(&db.ctx, &admin, ResourceKind::Cluster, &team, 3, "zz").await;
    assert!(matches!(bad, Err(ServiceError::Validation(_))), "{bad:?}");
    db.drop_db().await;
}

#[tokio::test]
async fn admin_all_reaching_tenant_resources_is_audited_as_break_glass() {
    let db = TestDb::new().await;
    let (team, org_id) = org(&db, "glass").await;
    let break_glass_rows = || async {
        sqlx::query(
            "SELECT team, resource_kind, after->>'access' AS access FROM audit_log \
             WHERE action = 'auth.admin_all.used' ORDER BY id",
        )
        .fetch_all(&db.ctx.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<Option<String>, _>("team"),
                r.get::<Option<String>, _>("resource_kind")
                    .unwrap_or_default(),
                r.get::<Option<String>, _>("access").unwrap_or_default(),
            )
        })
        .collect::<Vec<_>>()
    };
    let admin = admin();
    resources::create(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        "",
        &cluster_body(&team, "a", 80),
    )
    .await
    .unwrap();
    resources::get(&db.ctx, &admin, ResourceKind::Cluster, "", "a")
        .await
        .unwrap();
    resources::list(&db.ctx, &admin, ResourceKind::Cluster, "", 0, "")
        .await
        .unwrap();
    // A team token reaching its own team is ordinary access: not audited as break-glass.
    let scoped = caller(&[&format!("team:{team}:clusters:write")], Some(org_id));
    resources::get(&db.ctx, &scoped, ResourceKind::Cluster, &team, "a")
        .await
        .unwrap();
    resources::list(&db.ctx, &scoped, ResourceKind::Cluster, &team, 0, "")
        .await
        .unwrap();
    let t = Some(team.clone());
    assert_eq!(
        break_glass_rows().await,
        [
            (t.clone(), "clusters".to_string(), "write".to_string()),
            (t, "clusters".to_string(), "read".to_string()),
            (None, "clusters".to_string(), "read".to_string()),
        ]
    );
    db.drop_db().await;
}

#[tokio::test]
async fn handing_out_a_dataplane_to_deploy_takes_write_access() {
    let db = TestDb::new().await;
    let (team, org_id) = org(&db, "deployers").await;
    let body = serde_json::json!({"team": team, "name": "edge"}).to_string();
    resources::create(&db.ctx, &admin(), ResourceKind::Dataplane, &team, &body)
        .await
        .unwrap();
    let reader = caller(
        &[&format!("team:{team}:dataplanes:read")],
        Some(org_id.clone()),
    );
    let writer = caller(
        &[&format!("team:{team}:dataplanes:write")],
        Some(org_id.clone()),
    );
    let outsider = caller(&["team:elsewhere:dataplanes:write"], Some(org_id));

    // A reader sees the dataplane but may not take its credential.
    resources::get(&db.ctx, &reader, ResourceKind::Dataplane, &team, "edge")
        .await
        .unwrap();
    let refused =
        resources::get_for_deployment(&db.ctx, &reader, ResourceKind::Dataplane, &team, "edge")
            .await
            .unwrap_err();
    assert!(matches!(refused, ServiceError::Forbidden(_)), "{refused:?}");
    let hidden =
        resources::get_for_deployment(&db.ctx, &outsider, ResourceKind::Dataplane, &team, "edge")
            .await
            .unwrap_err();
    assert!(matches!(hidden, ServiceError::NotFound(_)), "{hidden:?}");
    let deployed =
        resources::get_for_deployment(&db.ctx, &writer, ResourceKind::Dataplane, &team, "edge")
            .await
            .unwrap();
    assert_eq!(deployed.name, "edge");
    db.drop_db().await;
}
