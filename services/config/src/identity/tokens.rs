//! Personal access tokens: create, list, read, update, rotate, revoke.

use chrono::{DateTime, Utc};
use flowplane_domain::ValidationErrors;
use flowplane_domain::names::name_problem;
use flowplane_domain::scopes::{Scope, ScopeResource};
use flowplane_proto::identity::v1 as pb;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::Context;
use crate::authz::Caller;
use crate::error::ServiceError;
use crate::secrets;
use crate::store::{self, AuditEntry};

use super::{PAT_PREFIX, sqlx_err};

pub(super) const TOKEN_COLUMNS: &str =
    "id, name, description, scopes, status, expires_at, created_at, last_used_at, created_by";

pub(super) fn token_from_row(row: &PgRow) -> Result<pb::Token, ServiceError> {
    let ts = |v: Option<DateTime<Utc>>| v.map(|t| t.to_rfc3339()).unwrap_or_default();
    Ok(pb::Token {
        id: row.try_get::<Uuid, _>("id").map_err(sqlx_err)?.to_string(),
        name: row.try_get("name").map_err(sqlx_err)?,
        description: row.try_get("description").map_err(sqlx_err)?,
        scopes: row.try_get("scopes").map_err(sqlx_err)?,
        status: effective_status(
            row.try_get("status").map_err(sqlx_err)?,
            row.try_get("expires_at").map_err(sqlx_err)?,
        ),
        expires_at: ts(row.try_get("expires_at").map_err(sqlx_err)?),
        created_at: ts(Some(row.try_get("created_at").map_err(sqlx_err)?)),
        last_used_at: ts(row.try_get("last_used_at").map_err(sqlx_err)?),
        created_by: row
            .try_get::<Option<Uuid>, _>("created_by")
            .map_err(sqlx_err)?
            .map(|u| u.to_string())
            .unwrap_or_default(),
    })
}

/// An active token past its expiry reads as expired even before a sweeper marks it.
fn effective_status(status: String, expires_at: Option<DateTime<Utc>>) -> String {
    if status == "active" && expires_at.is_some_and(|e| e <= Utc::now()) {
        "expired".into()
    } else {
        status
    }
}

pub async fn create_token(
    ctx: &Context,
    caller: &Caller,
    req: pb::CreateTokenRequest,
) -> Result<pb::CreateTokenResponse, ServiceError> {
    require_token_admin(caller)?;
    let user_id = caller.user_id.ok_or_else(|| {
        ServiceError::Forbidden("only a user's credential can create tokens".into())
    })?;
    let mut errors = ValidationErrors::new();
    if let Err(message) = name_problem(&req.name) {
        errors.add("/name", message);
    }
    if req.description.len() > 1024 {
        errors.add("/description", "must be at most 1024 characters");
    }
    if req.scopes.is_empty() {
        errors.add("/scopes", "at least one scope is required");
    }
    // A token lives in its creator's organization; a platform credential's token lives in the
    // organization its team scopes name.
    let creator_org = caller.grants.org_id().and_then(|o| Uuid::parse_str(o).ok());
    let org_id = check_scopes(ctx, caller, &req.scopes, creator_org, &mut errors).await?;
    let expires_at = check_expiry(&req.expires_at, &mut errors);
    errors.into_result()?;

    let secret = secrets::random_secret()?;
    let secret_hash = secrets::hash(secret.clone()).await?;
    let token_id = Uuid::new_v4();
    let mut tx = ctx.pool.begin().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO tokens (id, user_id, org_id, name, description, scopes, secret_hash, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $2) RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(token_id)
    .bind(user_id)
    .bind(org_id)
    .bind(&req.name)
    .bind(&req.description)
    .bind(&req.scopes)
    .bind(secret_hash)
    .bind(expires_at)
    .fetch_one(&mut *tx)
    .await?;
    let token = token_from_row(&row)?;
    let after = serde_json::json!({ "name": req.name, "scopes": req.scopes, "expiresAt": token.expires_at });
    store::audit(
        &mut tx,
        AuditEntry {
            action: "auth.token.created",
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id,
            resource_kind: Some("tokens"),
            resource_name: Some(&token.id),
            after: Some(&after),
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("auth_tokens_created_total").increment(1);
    crate::sweeper::refresh_active_gauge(ctx).await?;
    Ok(pb::CreateTokenResponse {
        token: Some(token),
        token_secret: format!("{PAT_PREFIX}{token_id}.{secret}"),
    })
}

/// Parses requested scopes for a token of `token_org` (`None`: the organization its team
/// scopes name), each naming an existing team of that one organization and within the
/// caller's own scopes there (a token never exceeds its creator). Returns the token's
/// organization.
async fn check_scopes(
    ctx: &Context,
    caller: &Caller,
    scopes: &[String],
    token_org: Option<Uuid>,
    errors: &mut ValidationErrors,
) -> Result<Option<Uuid>, ServiceError> {
    let mut parsed = Vec::with_capacity(scopes.len());
    for (i, raw) in scopes.iter().enumerate() {
        match raw.parse::<Scope>() {
            Err(e) => errors.add(format!("/scopes/{i}"), e.to_string()),
            Ok(scope) => {
                let team_org = match &scope {
                    Scope::Team { team, .. } => store::team_by_name(&ctx.pool, team)
                        .await?
                        .map(|row| row.org_id),
                    _ => None,
                };
                parsed.push((i, scope, team_org));
            }
        }
    }
    let org = token_org.or_else(|| parsed.iter().find_map(|(_, _, org)| *org));
    let org_text = org.map(|o| o.to_string()).unwrap_or_default();
    for (i, scope, team_org) in parsed {
        let field = format!("/scopes/{i}");
        if let Scope::Team { team, .. } = &scope {
            match team_org {
                Some(team_org) if Some(team_org) == org => {}
                // A caller bound to an organization learns nothing of other organizations'
                // teams; a platform admin is told why.
                Some(_) if caller.grants.is_admin() => {
                    errors.add(
                        field,
                        format!(
                            "team '{team}' is in another organization: a token's scopes all belong to one organization"
                        ),
                    );
                    continue;
                }
                _ => {
                    errors.add(field, format!("team '{team}' not found"));
                    continue;
                }
            }
        }
        if !caller.grants.covers(&scope, &org_text) {
            errors.add(field, "exceeds the scopes of the credential creating it");
        }
    }
    Ok(org)
}

/// An RFC 3339 expiry in the future; empty for none.
fn check_expiry(raw: &str, errors: &mut ValidationErrors) -> Option<DateTime<Utc>> {
    match raw {
        "" => None,
        raw => match DateTime::parse_from_rfc3339(raw) {
            Ok(t) if t.with_timezone(&Utc) > Utc::now() => Some(t.with_timezone(&Utc)),
            Ok(_) => {
                errors.add("/expiresAt", "must be in the future");
                None
            }
            Err(_) => {
                errors.add("/expiresAt", "must be an RFC 3339 timestamp");
                None
            }
        },
    }
}

/// Changes a token's name, description, scopes (never beyond the caller's own) or expiry.
/// Only an active token can change: reviving a revoked or expired one takes a new token.
pub async fn update_token(
    ctx: &Context,
    caller: &Caller,
    req: pb::UpdateTokenRequest,
) -> Result<pb::Token, ServiceError> {
    require_token_admin(caller)?;
    let (all, user) = visible_tokens_clause(caller);
    let not_found = || ServiceError::NotFound(format!("token '{}' not found", req.id));
    let id = Uuid::parse_str(&req.id).map_err(|_| not_found())?;
    let mut errors = ValidationErrors::new();
    if let Some(name) = &req.name
        && let Err(message) = name_problem(name)
    {
        errors.add("/name", message);
    }
    if req.description.as_ref().is_some_and(|d| d.len() > 1024) {
        errors.add("/description", "must be at most 1024 characters");
    }
    if req.replace_scopes && req.scopes.is_empty() {
        errors.add("/scopes", "at least one scope is required");
    }
    let expires_at = req
        .expires_at
        .as_deref()
        .map(|raw| check_expiry(raw, &mut errors));

    let mut tx = ctx.pool.begin().await?;
    let current = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS}, org_id FROM tokens WHERE id = $1 AND ($2 OR user_id = $3) FOR UPDATE"
    ))
    .bind(id)
    .bind(all)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(not_found)?;
    let before = token_from_row(&current)?;
    let stored_org: Option<Uuid> = current.try_get("org_id").map_err(sqlx_err)?;
    require_covers_token(caller, &before, stored_org)?;
    // A token stays in its organization: new scopes are checked there.
    let org_id = if req.replace_scopes {
        let token_org =
            stored_org.or_else(|| caller.grants.org_id().and_then(|o| Uuid::parse_str(o).ok()));
        check_scopes(ctx, caller, &req.scopes, token_org, &mut errors).await?
    } else {
        stored_org
    };
    errors.into_result()?;
    if before.status != "active" {
        return Err(ServiceError::Conflict {
            message: format!(
                "token '{}' is {}; only an active token can change",
                before.id, before.status
            ),
            referrers: Vec::new(),
        });
    }
    let row = sqlx::query(&format!(
        "UPDATE tokens SET name = coalesce($2, name), description = coalesce($3, description),          scopes = CASE WHEN $4 THEN $5 ELSE scopes END,          expires_at = CASE WHEN $6 THEN $7 ELSE expires_at END, org_id = $8          WHERE id = $1 RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(id)
    .bind(&req.name)
    .bind(&req.description)
    .bind(req.replace_scopes)
    .bind(&req.scopes)
    .bind(expires_at.is_some())
    .bind(expires_at.flatten())
    .bind(org_id)
    .fetch_one(&mut *tx)
    .await?;
    let token = token_from_row(&row)?;
    let view = |t: &pb::Token| serde_json::json!({ "name": t.name, "description": t.description, "scopes": t.scopes, "expiresAt": t.expires_at });
    let (before_json, after_json) = (view(&before), view(&token));
    store::audit(
        &mut tx,
        AuditEntry {
            action: "auth.token.updated",
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id,
            resource_kind: Some("tokens"),
            resource_name: Some(&token.id),
            before: Some(&before_json),
            after: Some(&after_json),
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    // Cached principals carry the old scopes and expiry.
    ctx.notices.token_invalidated(&token.id).await;
    crate::sweeper::refresh_active_gauge(ctx).await?;
    Ok(token)
}

/// Gives an active token a new secret, returned this once. The old secret stops working at
/// once: its hash is gone, and every api-gateway is told to drop it from its cache.
pub async fn rotate_token(
    ctx: &Context,
    caller: &Caller,
    id: &str,
) -> Result<pb::RotateTokenResponse, ServiceError> {
    require_token_admin(caller)?;
    let (all, user) = visible_tokens_clause(caller);
    let not_found = || ServiceError::NotFound(format!("token '{id}' not found"));
    let token_id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let secret = secrets::random_secret()?;
    let secret_hash = secrets::hash(secret.clone()).await?;
    let mut tx = ctx.pool.begin().await?;
    let current = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS}, org_id FROM tokens WHERE id = $1 AND ($2 OR user_id = $3) FOR UPDATE"
    ))
    .bind(token_id)
    .bind(all)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(not_found)?;
    let before = token_from_row(&current)?;
    let org_id: Option<Uuid> = current.try_get("org_id").map_err(sqlx_err)?;
    require_covers_token(caller, &before, org_id)?;
    if before.status != "active" {
        return Err(ServiceError::Conflict {
            message: format!(
                "token '{id}' is {}; only an active token can be rotated",
                before.status
            ),
            referrers: Vec::new(),
        });
    }
    let row = sqlx::query(&format!(
        "UPDATE tokens SET secret_hash = $2 WHERE id = $1 RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(token_id)
    .bind(secret_hash)
    .fetch_one(&mut *tx)
    .await?;
    let token = token_from_row(&row)?;
    store::audit(
        &mut tx,
        AuditEntry {
            action: "auth.token.rotated",
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id,
            resource_kind: Some("tokens"),
            resource_name: Some(&token.id),
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("auth_tokens_rotated_total").increment(1);
    ctx.notices.token_invalidated(&token.id).await;
    Ok(pb::RotateTokenResponse {
        token: Some(token),
        token_secret: format!("{PAT_PREFIX}{token_id}.{secret}"),
    })
}

/// Rotating or changing a token hands its power to the caller (a fresh secret, a longer life),
/// so the caller must hold every scope the token holds, just as when creating one.
fn require_covers_token(
    caller: &Caller,
    token: &pb::Token,
    token_org: Option<Uuid>,
) -> Result<(), ServiceError> {
    let org = token_org.map(|o| o.to_string()).unwrap_or_default();
    let covered = token.scopes.iter().all(|raw| {
        raw.parse::<Scope>()
            .is_ok_and(|scope| caller.grants.covers(&scope, &org))
    });
    if covered {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(format!(
            "token '{}' holds scopes beyond this credential's own",
            token.id
        )))
    }
}

/// Token management needs `admin:all` or a `tokens` scope.
fn require_token_admin(caller: &Caller) -> Result<(), ServiceError> {
    if caller.grants.holds_any(ScopeResource::Tokens) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "managing tokens requires a tokens scope".into(),
        ))
    }
}

/// Tokens the caller may see: every token for `admin:all`, otherwise the caller's own.
fn visible_tokens_clause(caller: &Caller) -> (bool, Option<Uuid>) {
    (caller.grants.is_admin(), caller.user_id)
}

pub async fn list_tokens(
    ctx: &Context,
    caller: &Caller,
    limit: u32,
    offset: u32,
) -> Result<pb::ListTokensResponse, ServiceError> {
    require_token_admin(caller)?;
    let (all, user) = visible_tokens_clause(caller);
    let limit = if limit == 0 { 50 } else { limit.min(500) };
    let rows = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS}, count(*) OVER () AS total FROM tokens WHERE ($1 OR user_id = $2) \
         ORDER BY created_at, id LIMIT $3 OFFSET $4"
    ))
    .bind(all)
    .bind(user)
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(&ctx.pool)
    .await?;
    let total: i64 = match rows.first() {
        Some(row) => row.try_get("total").map_err(sqlx_err)?,
        None => {
            sqlx::query_scalar("SELECT count(*) FROM tokens WHERE ($1 OR user_id = $2)")
                .bind(all)
                .bind(user)
                .fetch_one(&ctx.pool)
                .await?
        }
    };
    Ok(pb::ListTokensResponse {
        items: rows.iter().map(token_from_row).collect::<Result<_, _>>()?,
        total: u64::try_from(total).unwrap_or(0),
    })
}

pub async fn get_token(
    ctx: &Context,
    caller: &Caller,
    id: &str,
) -> Result<pb::Token, ServiceError> {
    require_token_admin(caller)?;
    let (all, user) = visible_tokens_clause(caller);
    let not_found = || ServiceError::NotFound(format!("token '{id}' not found"));
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1 AND ($2 OR user_id = $3)"
    ))
    .bind(id)
    .bind(all)
    .bind(user)
    .fetch_optional(&ctx.pool)
    .await?
    .ok_or_else(not_found)?;
    token_from_row(&row)
}

pub async fn revoke_token(
    ctx: &Context,
    caller: &Caller,
    id: &str,
) -> Result<pb::Token, ServiceError> {
    require_token_admin(caller)?;
    let (all, user) = visible_tokens_clause(caller);
    let not_found = || ServiceError::NotFound(format!("token '{id}' not found"));
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let mut tx = ctx.pool.begin().await?;
    let row = sqlx::query(&format!(
        "UPDATE tokens SET status = 'revoked' WHERE id = $1 AND ($2 OR user_id = $3) RETURNING {TOKEN_COLUMNS}, org_id"
    ))
    .bind(id)
    .bind(all)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(not_found)?;
    let token = token_from_row(&row)?;
    store::audit(
        &mut tx,
        AuditEntry {
            action: "auth.token.revoked",
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id: row.try_get("org_id").map_err(sqlx_err)?,
            resource_kind: Some("tokens"),
            resource_name: Some(&token.id),
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("auth_tokens_revoked_total").increment(1);
    ctx.notices.token_invalidated(&token.id).await;
    crate::sweeper::refresh_active_gauge(ctx).await?;
    Ok(token)
}
