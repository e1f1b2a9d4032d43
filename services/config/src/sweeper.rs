//! Marks tokens past their expiry as `expired`, and keeps `auth_tokens_active_total` current;
//! on the same beat, prunes usage counts past their retention.
//!
//! Authentication already refuses a token past its expiry on its own; the sweep makes the
//! stored status say so (lists, audit, the gauge) and tells every api-gateway to drop it.

use std::time::Duration;

use flowplane_runtime::shutdown::Shutdown;
use sqlx::Row;
use uuid::Uuid;

use crate::Context;
use crate::error::ServiceError;
use crate::store::{self, AuditEntry};

/// Registers every token metric, so each is exported on `/metrics` from the start (a series
/// that was never touched would otherwise be missing, not zero).
pub fn describe_metrics() {
    metrics::describe_counter!(
        "auth_tokens_created_total",
        "Personal access tokens created"
    );
    metrics::describe_counter!("auth_tokens_revoked_total", "Tokens revoked");
    metrics::describe_counter!("auth_tokens_rotated_total", "Token secrets rotated");
    metrics::describe_counter!(
        "auth_tokens_expired_total",
        "Tokens marked expired by the sweeper"
    );
    metrics::describe_gauge!(
        "auth_tokens_active_total",
        "Tokens that are active and not past their expiry"
    );
    metrics::describe_counter!(
        "auth_authentications_total",
        "Bearer authentications by outcome"
    );
    metrics::describe_counter!("auth_sessions_created_total", "Login sessions opened");
    metrics::describe_counter!(
        "auth_login_failures_total",
        "Logins refused for a wrong email or password"
    );
    for name in [
        "auth_tokens_created_total",
        "auth_tokens_revoked_total",
        "auth_tokens_rotated_total",
        "auth_tokens_expired_total",
        "auth_sessions_created_total",
        "auth_login_failures_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for status in ["success", "failure"] {
        metrics::counter!("auth_authentications_total", "status" => status).increment(0);
    }
    metrics::gauge!("auth_tokens_active_total").set(0.0);
}

/// Sweeps now and then every `interval` until `shutdown`.
pub async fn run(ctx: Context, interval: Duration, shutdown: Shutdown) {
    loop {
        match sweep(&ctx).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "marked expired tokens"),
            Err(e) => tracing::warn!(error = %e, "token sweep failed"),
        }
        match crate::reports::prune_usage(&ctx).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(minutes = n, "pruned old usage counts"),
            Err(e) => tracing::warn!(error = %e, "usage pruning failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.clone().wait() => return,
        }
    }
}

/// One sweep: every active token past its expiry becomes `expired` (audited as
/// `auth.token.expired`), and the active gauge is refreshed. Returns how many expired.
pub async fn sweep(ctx: &Context) -> Result<u64, ServiceError> {
    let mut tx = ctx.pool.begin().await?;
    let rows = sqlx::query(
        "UPDATE tokens SET status = 'expired' \
         WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at <= now() \
         RETURNING id, org_id, user_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut expired = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Uuid = row.try_get("id")?;
        let org_id: Option<Uuid> = row.try_get("org_id")?;
        let user_id: Uuid = row.try_get("user_id")?;
        let id_text = id.to_string();
        store::audit(
            &mut tx,
            AuditEntry {
                action: "auth.token.expired",
                actor_user_id: Some(user_id),
                org_id,
                resource_kind: Some("tokens"),
                resource_name: Some(&id_text),
                ..Default::default()
            },
        )
        .await?;
        expired.push(id_text);
    }
    tx.commit().await?;
    for id in &expired {
        ctx.notices.token_invalidated(id).await;
    }
    let count = u64::try_from(expired.len()).unwrap_or(u64::MAX);
    metrics::counter!("auth_tokens_expired_total").increment(count);
    refresh_active_gauge(ctx).await?;
    Ok(count)
}

/// Sets `auth_tokens_active_total` from the database, so every replica and restart agrees.
pub async fn refresh_active_gauge(ctx: &Context) -> Result<i64, ServiceError> {
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tokens WHERE status = 'active' \
         AND (expires_at IS NULL OR expires_at > now())",
    )
    .fetch_one(&ctx.pool)
    .await?;
    // A gauge is a float; token counts stay far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("auth_tokens_active_total").set(active as f64);
    Ok(active)
}
