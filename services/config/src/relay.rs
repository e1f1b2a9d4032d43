//! The outbox relay: publishes committed change events to the bus in revision order.
//!
//! Only one relay publishes at a time across config replicas (a transaction-scoped advisory
//! lock). A revision is marked published only after the bus acknowledged it; a crash in
//! between re-publishes it, and the bus drops the duplicate by its message id. Events carry the
//! installation and epoch of the database (`installation` table), so another database's
//! revision N is never taken for this one's. A database restored from a backup re-uses
//! revisions it published before; the bus answers such a revision with the event it already
//! holds, of another write (`outbox.write_id`), and the relay then moves the database to a new
//! epoch and publishes again.

use std::time::Duration;
use tracing::Instrument;

use flowplane_runtime::bus::{Bus, Event, Published};
use flowplane_runtime::shutdown::Shutdown;
use sqlx::Row;

use crate::Context;

/// Arbitrary constant naming the relay's advisory lock.
const RELAY_LOCK: i64 = 0x666c_6f77_706c_616e;
const BATCH: i64 = 256;
const POLL: Duration = Duration::from_millis(500);
const RETENTION: &str = "1 day";

pub async fn run(ctx: Context, bus: Bus, shutdown: Shutdown) {
    let mut last_prune = tokio::time::Instant::now();
    let mut failures = 0u32;
    loop {
        match publish_pending(&ctx, &bus).await {
            Ok(published) => {
                failures = 0;
                if published as i64 == BATCH {
                    continue;
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, failures, "outbox relay could not publish; will retry");
                }
            }
        }
        if last_prune.elapsed() > Duration::from_secs(600) {
            last_prune = tokio::time::Instant::now();
            let pruned = sqlx::query(&format!(
                "DELETE FROM outbox WHERE published_at < now() - interval '{RETENTION}'"
            ))
            .execute(&ctx.pool)
            .await;
            if let Err(e) = pruned {
                tracing::warn!(error = %e, "pruning the outbox failed");
            }
        }
        let backoff = if failures > 0 {
            Duration::from_secs(1)
        } else {
            POLL
        };
        tokio::select! {
            _ = ctx.outbox_ready.notified() => {}
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.clone().wait() => return,
        }
    }
}

/// Publishes up to one batch; returns how many went out.
pub async fn publish_pending(ctx: &Context, bus: &Bus) -> anyhow::Result<usize> {
    loop {
        match publish_batch(ctx, bus).await? {
            Batch::Done(count) => return Ok(count),
            // Under the new epoch, the clashing revision and the rest are new messages.
            Batch::NewEpoch => continue,
        }
    }
}

enum Batch {
    Done(usize),
    /// The bus held another event under one of this database's revisions; the epoch changed.
    NewEpoch,
}

async fn publish_batch(ctx: &Context, bus: &Bus) -> anyhow::Result<Batch> {
    let mut tx = ctx.pool.begin().await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(Batch::Done(0));
    }
    let origin = crate::state::origin(&mut tx).await?;
    let rows = sqlx::query(
        "SELECT revision, payload, write_id::text AS write_id, traceparent FROM outbox \
         WHERE published_at IS NULL ORDER BY revision LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut published = Vec::with_capacity(rows.len());
    let mut failure = None;
    let mut clashed = false;
    for row in rows {
        let revision: i64 = row.try_get("revision")?;
        let payload: Vec<u8> = row.try_get("payload")?;
        let write: String = row.try_get("write_id")?;
        let mut event = Event::signed(&ctx.keys.events, origin.clone(), revision, payload, write);
        event.trace = row.try_get("traceparent")?;
        let span = tracing::info_span!("relay.publish", otel.kind = "producer", revision);
        flowplane_runtime::telemetry::set_parent(&span, &event.trace);
        match bus.publish(event).instrument(span).await {
            Ok(Published::New | Published::Repeated) => published.push(revision),
            Ok(Published::Clashed) => {
                // This database published another write as revision `revision` before: it was
                // restored from a backup. A new epoch makes every revision from here a new
                // message, and replicas that see it re-sync in full.
                let epoch: String = sqlx::query_scalar(
                    "UPDATE installation SET epoch = gen_random_uuid() RETURNING epoch::text",
                )
                .fetch_one(&mut *tx)
                .await?;
                metrics::counter!("config_epoch_changes_total").increment(1);
                tracing::warn!(
                    revision,
                    old_epoch = %origin.epoch,
                    epoch = %epoch,
                    "the bus already holds another change under this revision (a database restored from a backup?): publishing under a new epoch"
                );
                clashed = true;
                break;
            }
            Err(e) => {
                // Stop at the first failure so later revisions never overtake this one.
                failure = Some(e);
                break;
            }
        }
    }
    if !published.is_empty() {
        sqlx::query("UPDATE outbox SET published_at = now() WHERE revision = ANY($1)")
            .bind(&published)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    match failure {
        Some(e) => Err(e),
        None if clashed => Ok(Batch::NewEpoch),
        None => Ok(Batch::Done(published.len())),
    }
}
