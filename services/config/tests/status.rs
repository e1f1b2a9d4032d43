//! Envoy's answers against a real PostgreSQL: an accepted version is remembered, a rejected
//! one never accepted is quarantined in one change (revision, audit row, outbox event serving
//! the accepted version), replicas loading the state get the fallback, a corrected write
//! clears it, and answers about versions that are no longer current change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flowplane_config::{identity, resources, status};
use flowplane_domain::ResourceKind;
use flowplane_proto::state::v1::{ChangeEvent, ChangeOp, ReportStatusRequest};
use flowplane_xds::resource::CLUSTER_TYPE;
use prost::Message;
use support::{TestDb, admin, cluster_body};

async fn team(db: &TestDb) -> String {
    let created = identity::create_organization(&db.ctx, &admin(), "acme", "")
        .await
        .unwrap();
    created.default_team.unwrap().name
}

fn answer(team: &str, name: &str, revision: i64, error: Option<&str>) -> ReportStatusRequest {
    ReportStatusRequest {
        team: team.into(),
        dataplane: "edge".into(),
        node_id: "envoy-1".into(),
        type_url: CLUSTER_TYPE.into(),
        version: format!("v{revision}"),
        resource_names: vec![name.into()],
        resource_revisions: vec![revision],
        accepted: error.is_none(),
        error_message: error.unwrap_or_default().into(),
    }
}

async fn write(db: &TestDb, team: &str, port: u16) -> i64 {
    let body = cluster_body(team, "app", port);
    let written = match resources::create(&db.ctx, &admin(), ResourceKind::Cluster, "", &body).await
    {
        Ok(created) => created,
        Err(_) => resources::update(
            &db.ctx,
            &admin(),
            ResourceKind::Cluster,
            team,
            "app",
            &body,
            0,
        )
        .await
        .unwrap(),
    };
    written.revision
}

async fn get(db: &TestDb, team: &str) -> flowplane_proto::resources::v1::Resource {
    resources::get(&db.ctx, &admin(), ResourceKind::Cluster, team, "app")
        .await
        .unwrap()
}

async fn latest_event(db: &TestDb) -> ChangeEvent {
    let payload: Vec<u8> =
        sqlx::query_scalar("SELECT payload FROM outbox ORDER BY revision DESC LIMIT 1")
            .fetch_one(&db.ctx.pool)
            .await
            .unwrap();
    ChangeEvent::decode(payload.as_slice()).unwrap()
}

async fn served_port(db: &TestDb) -> Option<String> {
    let state = support::full_state(&db.ctx).await.unwrap();
    state
        .iter()
        .find(|r| r.name == "app")
        .map(|r| r.spec_json.clone())
}

async fn revision(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT value FROM revision_counter")
        .fetch_one(&db.ctx.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rejected_version_falls_back_to_the_accepted_one_until_a_write_fixes_it() {
    let db = TestDb::new().await;
    let team = team(&db).await;
    let good = write(&db, &team, 8080).await;
    status::report_status(&db.ctx, answer(&team, "app", good, None))
        .await
        .unwrap();
    let bad = write(&db, &team, 8081).await;
    let before = revision(&db).await;

    status::report_status(&db.ctx, answer(&team, "app", bad, Some("app: no")))
        .await
        .unwrap();

    // One change: a revision, an event serving the accepted version, an audit row.
    assert_eq!(revision(&db).await, before + 1);
    let event = latest_event(&db).await;
    assert_eq!(event.revision, before + 1);
    assert_eq!(event.op, ChangeOp::Upsert as i32);
    let served = event.resource.unwrap();
    assert_eq!(served.revision, good);
    assert!(served.spec_json.contains("8080"), "{}", served.spec_json);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'cluster.quarantined' AND revision = $1",
    )
    .bind(before + 1)
    .fetch_one(&db.ctx.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // The API shows it; the state a new replica loads serves the fallback.
    let read = get(&db, &team).await;
    assert_eq!(read.revision, bad, "the resource itself is unchanged");
    let quarantine = read.quarantine.unwrap();
    assert_eq!(
        (quarantine.rejected_revision, quarantine.serving_revision),
        (bad, good)
    );
    assert_eq!(quarantine.error, "app: no");
    assert!(served_port(&db).await.unwrap().contains("8080"));

    // Envoy accepting the fallback is not the rejected version accepted.
    status::report_status(&db.ctx, answer(&team, "app", good, None))
        .await
        .unwrap();
    let read = get(&db, &team).await;
    assert_eq!(read.status[0].state, "quarantined");
    assert!(read.quarantine.is_some());
    // A second NACK of it starts nothing new.
    let settled = revision(&db).await;
    status::report_status(&db.ctx, answer(&team, "app", bad, Some("app: no")))
        .await
        .unwrap();
    assert_eq!(revision(&db).await, settled);

    // A corrected write clears it and is served.
    let fixed = write(&db, &team, 8082).await;
    let read = get(&db, &team).await;
    assert!(read.quarantine.is_none());
    assert_eq!(read.revision, fixed);
    assert!(served_port(&db).await.unwrap().contains("8082"));
    db.drop_db().await;
}

#[tokio::test]
async fn a_version_no_envoy_accepted_is_withheld() {
    let db = TestDb::new().await;
    let team = team(&db).await;
    let bad = write(&db, &team, 8081).await;
    status::report_status(&db.ctx, answer(&team, "app", bad, Some("app: no")))
        .await
        .unwrap();
    let event = latest_event(&db).await;
    assert_eq!(event.op, ChangeOp::Delete as i32);
    assert_eq!(event.name, "app");
    assert_eq!(
        get(&db, &team).await.quarantine.unwrap().serving_revision,
        0
    );
    assert_eq!(served_port(&db).await, None, "the state still serves it");
    db.drop_db().await;
}

#[tokio::test]
async fn answers_about_versions_that_are_not_current_quarantine_nothing() {
    let db = TestDb::new().await;
    let team = team(&db).await;
    let first = write(&db, &team, 8080).await;
    status::report_status(&db.ctx, answer(&team, "app", first, None))
        .await
        .unwrap();
    let replaced = write(&db, &team, 8081).await;
    let current = write(&db, &team, 8082).await;
    let before = revision(&db).await;

    // A late NACK of a version a write has since replaced.
    status::report_status(&db.ctx, answer(&team, "app", replaced, Some("app: no")))
        .await
        .unwrap();
    // A NACK of a version another Envoy accepted: not the version's fault.
    status::report_status(&db.ctx, answer(&team, "app", current, None))
        .await
        .unwrap();
    let mut other = answer(&team, "app", current, Some("app: no"));
    other.node_id = "envoy-2".into();
    status::report_status(&db.ctx, other).await.unwrap();
    // A report without revisions (a replica from before quarantine): status only.
    let mut legacy = answer(&team, "app", current, Some("app: no"));
    legacy.resource_revisions.clear();
    status::report_status(&db.ctx, legacy).await.unwrap();

    assert_eq!(revision(&db).await, before, "a quarantine was started");
    let read = get(&db, &team).await;
    assert!(read.quarantine.is_none());
    assert_eq!(read.status[0].state, "rejected");
    db.drop_db().await;
}
