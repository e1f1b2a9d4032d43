//! The outbox relay against a real PostgreSQL and NATS JetStream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use flowplane_config::{identity, relay, resources};
use flowplane_domain::ResourceKind;
use flowplane_proto::state::v1::ChangeEvent;
use flowplane_runtime::bus::{Bus, NatsSettings};
use futures::StreamExt;
use prost::Message;
use support::{TestDb, admin, cluster_body, unique};

async fn nats_bus(prefix: &str) -> Bus {
    let url =
        std::env::var("FLOWPLANE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    Bus::nats(&NatsSettings::at(&url), prefix)
        .await
        .unwrap_or_else(|e| panic!("NATS must be running for these tests: {e:#}"))
}

async fn delete_stream(prefix: &str) {
    let url =
        std::env::var("FLOWPLANE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    if let Ok(client) = async_nats::connect(url).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(flowplane_runtime::bus::stream_name(prefix))
            .await;
    }
}

/// A fresh organization's default team in `db`.
async fn relay_team(db: &TestDb) -> String {
    identity::create_organization(&db.ctx, &admin(), "relay", "")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .default_team
        .unwrap_or_default()
        .name
}

/// The next `count` events with their decoded changes, failing after 5 s without one.
async fn receive(
    events: &mut flowplane_runtime::bus::EventStream,
    count: usize,
) -> Vec<(flowplane_runtime::bus::Event, ChangeEvent)> {
    let mut received = Vec::new();
    while received.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap_or_else(|_| panic!("only received {} events", received.len()))
            .unwrap_or_else(|| panic!("stream ended"))
            .unwrap_or_else(|e| panic!("{e}"));
        let change =
            ChangeEvent::decode(event.payload.as_slice()).unwrap_or_else(|e| panic!("{e}"));
        received.push((event, change));
    }
    received
}

#[tokio::test]
async fn publishes_each_revision_once_in_order_and_resumes_after_a_crash() {
    let db = TestDb::new().await;
    let prefix = unique("fprelay");
    let bus = nats_bus(&prefix).await;
    let mut events = bus.subscribe().await.unwrap_or_else(|e| panic!("{e}"));
    let team = relay_team(&db).await;
    for i in 0..3 {
        resources::create(
            &db.ctx,
            &admin(),
            ResourceKind::Cluster,
            "",
            &cluster_body(&team, &format!("c{i}"), 80),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(relay::publish_pending(&db.ctx, &bus).await.ok(), Some(3));
    assert_eq!(
        relay::publish_pending(&db.ctx, &bus).await.ok(),
        Some(0),
        "nothing is published twice"
    );

    // A relay that crashed after publishing but before recording it publishes again; the bus
    // drops the duplicate by revision.
    sqlx::query("UPDATE outbox SET published_at = NULL WHERE revision = 3")
        .execute(&db.ctx.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(relay::publish_pending(&db.ctx, &bus).await.ok(), Some(1));
    resources::delete(&db.ctx, &admin(), ResourceKind::Cluster, &team, "c0", 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(relay::publish_pending(&db.ctx, &bus).await.ok(), Some(1));

    let received: Vec<_> = receive(&mut events, 4)
        .await
        .into_iter()
        .map(|(event, change)| {
            assert_eq!(change.revision, event.revision);
            (change.revision, change.name, change.op)
        })
        .collect();
    assert_eq!(
        received,
        vec![
            (1, "c0".into(), 1),
            (2, "c1".into(), 1),
            (3, "c2".into(), 1),
            (4, "c0".into(), 2)
        ]
    );
    // And nothing more: the duplicate of revision 3 was dropped.
    let extra = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(
        extra.is_err(),
        "unexpected extra event: {:?}",
        extra.map(|e| e.map(|e| e.map(|e| e.revision).ok()))
    );
    delete_stream(&prefix).await;
    db.drop_db().await;
}

/// Two databases on one NATS stream, as after a reset or with a second installation sharing
/// NATS: both start at revision 1 within the duplicate window, and every event of both is
/// delivered, each naming its own installation (before, the second database's revisions 1-2
/// were dropped as duplicates of the first's).
#[tokio::test]
async fn a_second_database_on_the_same_stream_loses_no_event() {
    let prefix = unique("fprelay");
    let bus = nats_bus(&prefix).await;
    let mut events = bus.subscribe().await.unwrap_or_else(|e| panic!("{e}"));
    let mut installations = Vec::new();
    for round in 0..2 {
        let db = TestDb::new().await;
        let team = relay_team(&db).await;
        for i in 0..2 {
            resources::create(
                &db.ctx,
                &admin(),
                ResourceKind::Cluster,
                "",
                &cluster_body(&team, &format!("db{round}-c{i}"), 80),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(relay::publish_pending(&db.ctx, &bus).await.ok(), Some(2));
        let installation: String = sqlx::query_scalar("SELECT id::text FROM installation")
            .fetch_one(&db.ctx.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        installations.push(installation);
        db.drop_db().await;
    }
    assert_ne!(installations[0], installations[1]);
    let received: Vec<_> = receive(&mut events, 4)
        .await
        .into_iter()
        .map(|(event, change)| (event.origin.installation, event.revision, change.name))
        .collect();
    assert_eq!(
        received,
        vec![
            (installations[0].clone(), 1, "db0-c0".to_string()),
            (installations[0].clone(), 2, "db0-c1".to_string()),
            (installations[1].clone(), 1, "db1-c0".to_string()),
            (installations[1].clone(), 2, "db1-c1".to_string()),
        ]
    );
    delete_stream(&prefix).await;
}

/// A database restored from a backup re-uses revisions it had already published, within the
/// bus's duplicate window. The bus answers with the event it holds under that id; the relay
/// moves the database to a new epoch and the new change is delivered (before, JetStream
/// dropped it as a duplicate and replicas learnt of it only at their next re-sync). The change
/// after the restore here is the very change the restore lost, a delete whose event is the
/// same bytes: only the write's own id tells it apart. Publishing the same write again (a
/// relay crash) still delivers it once and keeps the epoch.
#[tokio::test]
async fn a_database_restored_from_a_backup_loses_no_change() {
    let db = TestDb::new().await;
    let prefix = unique("fprelay");
    let bus = nats_bus(&prefix).await;
    let mut events = bus.subscribe().await.unwrap_or_else(|e| panic!("{e}"));
    let team = relay_team(&db).await;
    for name in ["kept", "gone"] {
        resources::create(
            &db.ctx,
            &admin(),
            ResourceKind::Cluster,
            "",
            &cluster_body(&team, name, 80),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    // The backup is taken here: "gone" still exists, and the next revision is unused.
    let backed_up: serde_json::Value =
        sqlx::query_scalar("SELECT to_jsonb(r) FROM resources r WHERE name = 'gone'")
            .fetch_one(&db.ctx.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let delete_gone = || async {
        resources::delete(&db.ctx, &admin(), ResourceKind::Cluster, &team, "gone", 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    };
    delete_gone().await;
    assert_eq!(relay::publish_pending(&db.ctx, &bus).await.ok(), Some(3));
    let before = receive(&mut events, 3).await;
    let (lost, _) = &before[2];
    let old_epoch = lost.origin.epoch.clone();

    // Restored: the delete never happened.
    sqlx::query("INSERT INTO resources SELECT * FROM jsonb_populate_record(NULL::resources, $1)")
        .bind(&backed_up)
        .execute(&db.ctx.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for statement in [
        "DELETE FROM outbox WHERE revision >= $1",
        "UPDATE revision_counter SET value = $1 - 1",
    ] {
        sqlx::query(statement)
            .bind(lost.revision)
            .execute(&db.ctx.pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    delete_gone().await;
    assert_eq!(relay::publish_pending(&db.ctx, &bus).await.ok(), Some(1));
    let (event, change) = receive(&mut events, 1).await.remove(0);
    assert_eq!(
        (event.revision, change.name.as_str()),
        (lost.revision, "gone")
    );
    assert_eq!(
        event.payload, lost.payload,
        "the same change, byte for byte"
    );
    assert_eq!(event.origin.installation, lost.origin.installation);
    assert_ne!(event.origin.epoch, old_epoch, "a new epoch after the clash");
    let epoch: String = sqlx::query_scalar("SELECT epoch::text FROM installation")
        .fetch_one(&db.ctx.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(epoch, event.origin.epoch);

    // The same write again is a repeat, not a clash: delivered once, the epoch kept.
    sqlx::query("UPDATE outbox SET published_at = NULL WHERE revision = $1")
        .bind(lost.revision)
        .execute(&db.ctx.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(relay::publish_pending(&db.ctx, &bus).await.ok(), Some(1));
    let extra = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(extra.is_err(), "the repeated write was delivered twice");
    let kept: String = sqlx::query_scalar("SELECT epoch::text FROM installation")
        .fetch_one(&db.ctx.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept, epoch);
    delete_stream(&prefix).await;
    db.drop_db().await;
}
