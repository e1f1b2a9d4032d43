//! First run: the setup token, and initialization of the first platform admin with its
//! bootstrap token.

use chrono::{DateTime, Utc};
use flowplane_domain::ValidationErrors;
use flowplane_domain::scopes::Scope;
use flowplane_proto::identity::v1 as pb;
use uuid::Uuid;

use crate::Context;
use crate::error::ServiceError;
use crate::secrets;
use crate::store::{self, AuditEntry};

use super::tokens::{TOKEN_COLUMNS, token_from_row};
use super::{PAT_PREFIX, SETUP_PREFIX, is_plausible_email};

/// On a database with no users, makes sure a setup token exists and logs it once. Each start
/// while initialization is pending issues a fresh token (only its hash is stored, so the old
/// one cannot be shown again).
pub async fn announce_setup_token(ctx: &Context, preset: Option<&str>) -> anyhow::Result<()> {
    if !needs_initialization(ctx).await? {
        return Ok(());
    }
    let token = match preset {
        Some(t) if t.starts_with(SETUP_PREFIX) => t.to_string(),
        Some(_) => anyhow::bail!("FLOWPLANE_SETUP_TOKEN must start with {SETUP_PREFIX}"),
        None => format!("{SETUP_PREFIX}{}", secrets::random_secret()?),
    };
    let hash = secrets::hash(token.clone()).await?;
    sqlx::query(
        "INSERT INTO setup_token (id, secret_hash) VALUES (true, $1) \
         ON CONFLICT (id) DO UPDATE SET secret_hash = $1, created_at = now(), used_at = NULL",
    )
    .bind(hash)
    .execute(&ctx.pool)
    .await?;
    if preset.is_some() {
        tracing::warn!(
            "Flowplane is not initialized; use the setup token from FLOWPLANE_SETUP_TOKEN with POST /api/v1/bootstrap/initialize"
        );
    } else {
        // Deliberately logged: this is how the operator receives it. It is single-use.
        tracing::warn!(setup_token = %token, "Flowplane is not initialized; use this one-time setup token with POST /api/v1/bootstrap/initialize");
    }
    Ok(())
}

pub async fn needs_initialization(ctx: &Context) -> Result<bool, ServiceError> {
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&ctx.pool)
        .await?;
    Ok(users == 0)
}

pub async fn initialize(
    ctx: &Context,
    req: pb::InitializeRequest,
) -> Result<pb::InitializeResponse, ServiceError> {
    let mut errors = ValidationErrors::new();
    let email = req.email.trim().to_lowercase();
    if !is_plausible_email(&email) {
        errors.add("/email", "must be an email address");
    }
    if req.password.chars().count() < 12 {
        errors.add("/password", "must be at least 12 characters");
    }
    if req.name.trim().is_empty() {
        errors.add("/name", "is required");
    }
    let stored: Option<(String, Option<DateTime<Utc>>, DateTime<Utc>)> =
        sqlx::query_as("SELECT secret_hash, used_at, created_at FROM setup_token WHERE id")
            .fetch_optional(&ctx.pool)
            .await?;
    let refused = || ServiceError::Unauthenticated("invalid or already used setup token".into());
    let Some((hash, None, created_at)) = stored else {
        return Err(refused());
    };
    // A setup token left lying in a log is not a standing way to become platform admin.
    let ttl =
        chrono::Duration::from_std(ctx.identity.setup_token_ttl).unwrap_or(chrono::Duration::MAX);
    if created_at + ttl <= Utc::now() {
        return Err(ServiceError::Unauthenticated(
            "the setup token expired; restart the config service to issue a new one".into(),
        ));
    }
    if !req.setup_token.starts_with(SETUP_PREFIX) || !secrets::verify(req.setup_token, hash).await {
        return Err(refused());
    }
    errors.into_result()?;

    let password_hash = secrets::hash(req.password).await?;
    let secret = secrets::random_secret()?;
    let secret_hash = secrets::hash(secret.clone()).await?;
    let mut tx = ctx.pool.begin().await?;
    // Claiming the setup token in the same transaction makes a second initialize fail even if
    // two race.
    let claimed =
        sqlx::query("UPDATE setup_token SET used_at = now() WHERE id AND used_at IS NULL")
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if claimed != 1 {
        return Err(refused());
    }
    let user_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, is_platform_admin) VALUES ($1, $2, $3, $4, true)",
    )
    .bind(user_id)
    .bind(&email)
    .bind(req.name.trim())
    .bind(password_hash)
    .execute(&mut *tx)
    .await?;
    let token_id = Uuid::new_v4();
    let row = sqlx::query(&format!(
        "INSERT INTO tokens (id, user_id, name, description, scopes, secret_hash, created_by) \
         VALUES ($1, $2, 'bootstrap', 'Created by bootstrap initialization', $3, $4, $2) RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(token_id)
    .bind(user_id)
    .bind(vec![Scope::AdminAll.to_string()])
    .bind(secret_hash)
    .fetch_one(&mut *tx)
    .await?;
    let token = token_from_row(&row)?;
    store::audit(
        &mut tx,
        AuditEntry {
            action: "auth.token.seeded",
            actor_user_id: Some(user_id),
            actor_token_id: Some(token_id),
            request_id: Some(&req.request_id),
            client_address: Some(&req.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(pb::InitializeResponse {
        user_id: user_id.to_string(),
        token: Some(token),
        token_secret: format!("{PAT_PREFIX}{token_id}.{secret}"),
    })
}
