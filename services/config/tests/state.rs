//! The state a replica loads, against a real PostgreSQL: streamed in bounded parts that all
//! carry one revision and together hold every resource exactly once, read in one snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use flowplane_config::{identity, resources};
use flowplane_domain::ResourceKind;
use support::{TestDb, admin, cluster_body};

/// Rows written straight into PostgreSQL, as a REST client could not write thousands quickly.
const ROWS: i64 = 10_000;

async fn team_with_rows(db: &TestDb) -> String {
    let created = identity::create_organization(&db.ctx, &admin(), "bulk", "")
        .await
        .unwrap();
    let team = created.default_team.unwrap().name;
    sqlx::query(
        "INSERT INTO resources (id, kind, team_id, name, spec, revision) \
         SELECT gen_random_uuid(), 'clusters', t.id, 'bulk-' || i, \
                '{\"endpoints\":[{\"host\":\"127.0.0.1\",\"port\":8080}]}'::jsonb, \
                (SELECT value FROM revision_counter) \
         FROM teams t, generate_series(1, $2) AS i WHERE t.name = $1",
    )
    .bind(&team)
    .bind(ROWS)
    .execute(&db.ctx.pool)
    .await
    .unwrap();
    team
}

#[tokio::test]
async fn an_empty_state_is_one_part_with_the_revision() {
    let db = TestDb::new().await;
    let parts = support::state_parts(&db.ctx).await.unwrap();
    assert_eq!(parts.len(), 1);
    assert!(parts[0].resources.is_empty());
    db.drop_db().await;
}

#[tokio::test]
async fn a_large_state_streams_in_bounded_parts_of_one_revision() {
    let db = TestDb::new().await;
    let team = team_with_rows(&db).await;
    let parts = support::state_parts(&db.ctx).await.unwrap();

    assert!(parts.len() >= 3, "{} parts", parts.len());
    assert!(parts.iter().all(|p| p.resources.len() <= 4_096));
    let revisions: BTreeSet<i64> = parts.iter().map(|p| p.revision).collect();
    assert_eq!(revisions.len(), 1, "parts disagree on the revision");
    let names: Vec<&str> = parts
        .iter()
        .flat_map(|p| &p.resources)
        .filter(|r| r.team == team && r.name.starts_with("bulk-"))
        .map(|r| r.name.as_str())
        .collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), ROWS as usize);
    assert_eq!(unique.len(), names.len(), "a resource came twice");
    let some = &parts[1].resources[0];
    assert!(some.spec_json.contains("127.0.0.1"), "{}", some.spec_json);
    assert!(!some.id.is_empty());
    db.drop_db().await;
}

#[tokio::test]
async fn a_write_during_the_stream_is_not_in_it() {
    let db = TestDb::new().await;
    let team = team_with_rows(&db).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let ctx = db.ctx.clone();
    let producer =
        tokio::spawn(async move { flowplane_config::state::stream_state(&ctx, &tx).await });
    // The snapshot is taken before the first part is sent.
    let first = rx.recv().await.unwrap().unwrap();
    let created = resources::create(
        &db.ctx,
        &admin(),
        ResourceKind::Cluster,
        &team,
        &cluster_body(&team, "late", 80),
    )
    .await
    .unwrap();
    assert!(created.revision > first.revision);

    let mut rest = Vec::new();
    while let Some(part) = rx.recv().await {
        rest.push(part.unwrap());
    }
    producer.await.unwrap().unwrap();
    assert!(rest.iter().all(|p| p.revision == first.revision));
    let all: Vec<&str> = std::iter::once(&first)
        .chain(&rest)
        .flat_map(|p| &p.resources)
        .map(|r| r.name.as_str())
        .collect();
    assert!(
        !all.contains(&"late"),
        "a later write leaked into the snapshot"
    );
    assert_eq!(
        support::full_state(&db.ctx).await.unwrap().len(),
        all.len() + 1
    );
    db.drop_db().await;
}
