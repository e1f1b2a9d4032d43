//! The outbox relay: publishes committed change events to the bus in revision order.
//!
//! Only one relay publishes at a time across config replicas (a transaction-scoped advisory
//! lock). A revision is marked published only after the bus acknowledged it; a crash in
//! between re-publishes it, and the bus drops the duplicate by its message id. Events carry the
//! installation and epoch of the database (`installation` table), so another database's
//! revision N is never taken for this one's.

use std::time::Duration;

use flowplane_runtime::bus::{Bus, Event};
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
    let mut tx = ctx.pool.begin().await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(0);
    }
    let origin = crate::state::origin(&mut tx).await?;
    let rows = sqlx::query(
        "SELECT revision, payload FROM outbox WHERE published_at IS NULL ORDER BY revision LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut published = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in rows {
        let revision: i64 = row.try_get("revision")?;
        let payload: Vec<u8> = row.try_get("payload")?;
        let event = Event::signed(&ctx.keys.events, origin.clone(), revision, payload);
        match bus.publish(event).await {
            Ok(()) => published.push(revision),
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
        None => Ok(published.len()),
    }
}
