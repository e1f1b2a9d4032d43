//! Turning a personal access token into a principal config signs for api-gateway to cache
//! (sessions are in `crate::sessions`).

use chrono::{DateTime, Utc};
use flowplane_proto::common::v1::Principal;
use flowplane_proto::identity::v1 as pb;
use sqlx::Row;
use uuid::Uuid;

use crate::Context;
use crate::error::ServiceError;
use crate::secrets;
use crate::store::{self, AuditEntry};

use super::{PAT_PREFIX, sqlx_err};

pub async fn authenticate(
    ctx: &Context,
    req: pb::AuthenticateRequest,
) -> Result<pb::AuthenticateResponse, ServiceError> {
    if req.credential.starts_with(crate::sessions::SESSION_PREFIX) {
        return crate::sessions::authenticate(ctx, &req).await;
    }
    let refused = || ServiceError::Unauthenticated("invalid or expired credential".into());
    let (id, secret) = req
        .credential
        .strip_prefix(PAT_PREFIX)
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(refused)?;
    let id = Uuid::parse_str(id).map_err(|_| refused())?;
    let row = sqlx::query(
        "SELECT t.secret_hash, t.status, t.expires_at, t.scopes, t.org_id, t.user_id, u.email \
         FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(&ctx.pool)
    .await?
    .ok_or_else(refused)?;
    let status: String = row.try_get("status").map_err(sqlx_err)?;
    let expires_at: Option<DateTime<Utc>> = row.try_get("expires_at").map_err(sqlx_err)?;
    let user_id: Uuid = row.try_get("user_id").map_err(sqlx_err)?;
    let org_id: Option<Uuid> = row.try_get("org_id").map_err(sqlx_err)?;
    let now = Utc::now();
    // Someone holds this token's id: a refusal is audited in its organization, with why.
    let (request_id, client_address) = (&req.request_id, &req.client_address);
    let rejected = |reason: &'static str| async move {
        metrics::counter!("auth_authentications_total", "status" => "failure").increment(1);
        let after = serde_json::json!({ "reason": reason });
        let mut conn = ctx.pool.acquire().await?;
        store::audit(
            &mut conn,
            AuditEntry {
                action: "auth.token.rejected",
                actor_user_id: Some(user_id),
                actor_token_id: Some(id),
                org_id,
                after: Some(&after),
                request_id: Some(request_id),
                client_address: Some(client_address),
                ..Default::default()
            },
        )
        .await?;
        Err::<pb::AuthenticateResponse, _>(refused())
    };
    if status != "active" {
        return rejected("not active").await;
    }
    if expires_at.is_some_and(|e| e <= now) {
        return rejected("expired").await;
    }
    let hash: String = row.try_get("secret_hash").map_err(sqlx_err)?;
    if !secrets::verify(secret.to_string(), hash).await {
        return rejected("wrong secret").await;
    }
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("UPDATE tokens SET last_used_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    store::audit(
        &mut tx,
        AuditEntry {
            action: "auth.token.authenticated",
            actor_user_id: Some(user_id),
            actor_token_id: Some(id),
            org_id,
            request_id: Some(&req.request_id),
            client_address: Some(&req.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("auth_authentications_total", "status" => "success").increment(1);
    let principal = Principal {
        user_id: user_id.to_string(),
        token_id: id.to_string(),
        scopes: crate::sessions::within_membership(
            &ctx.pool,
            user_id,
            org_id,
            row.try_get("scopes").map_err(sqlx_err)?,
        )
        .await?,
        org_id: org_id.map(|o| o.to_string()).unwrap_or_default(),
        email: row.try_get("email").map_err(sqlx_err)?,
        session_id: String::new(),
    };
    Ok(authenticated(
        ctx,
        principal,
        now,
        expires_at,
        String::new(),
    ))
}

/// How long api-gateway may reuse a verified credential (token or session) before asking
/// again. Revocation, logout and membership changes evict at once through notices; this
/// bounds a lost notice.
const AUTH_CACHE_SECONDS: i64 = 30;
/// How much longer than the cache a signed principal lasts: a request authenticated from the
/// cache at its last moment still reaches config in time.
const PRINCIPAL_GRACE_SECONDS: i64 = 10;

/// The answer to a successful authentication: the principal, signed for as long as
/// api-gateway may cache it (never past the credential's own expiry).
pub(crate) fn authenticated(
    ctx: &Context,
    principal: Principal,
    now: DateTime<Utc>,
    credential_expires: Option<DateTime<Utc>>,
    csrf_token_sha256: String,
) -> pb::AuthenticateResponse {
    let cache_seconds = credential_expires
        .map(|e| (e - now).num_seconds().clamp(0, AUTH_CACHE_SECONDS))
        .unwrap_or(AUTH_CACHE_SECONDS);
    let mut signed_until = now + chrono::Duration::seconds(cache_seconds + PRINCIPAL_GRACE_SECONDS);
    if let Some(expires) = credential_expires {
        signed_until = signed_until.min(expires);
    }
    pb::AuthenticateResponse {
        signed_principal: Some(
            ctx.keys
                .sign_principal(principal.clone(), signed_until.timestamp_millis()),
        ),
        principal: Some(principal),
        cache_seconds: u32::try_from(cache_seconds).unwrap_or(0),
        csrf_token_sha256,
        installation_id: ctx.notices.installation().to_string(),
    }
}
