//! Login sessions: email and password in, a session credential and a CSRF token out.
//!
//! The session credential is `fp_session_<id>.<secret>`. Its secret and the CSRF token are
//! 256-bit random values stored only as SHA-256 digests. A session carries no scopes of its
//! own: each authentication derives them from the user's current membership
//! ([`flowplane_domain::membership`]), so a change of role or scopes applies to live sessions
//! as soon as the gateways' caches are told (the session ids are announced on the notice
//! channel). A platform admin's session without a membership holds no tenant scopes: it
//! governs organizations and users (see `authz::authorize_platform`), and reaching tenant
//! resources takes team scopes or the break-glass `admin:all` token.

use chrono::{DateTime, Utc};
use flowplane_domain::membership;
use flowplane_domain::scopes::Scope;
use flowplane_proto::common::v1::Principal;
use flowplane_proto::identity::v1 as pb;
use sqlx::Row;
use uuid::Uuid;

use crate::Context;
use crate::authz::Caller;
use crate::error::ServiceError;
use crate::membership::{StoredMembership, membership_of};
use crate::secrets;
use crate::store::{self, AuditEntry};

pub const SESSION_PREFIX: &str = "fp_session_";

fn invalid_login() -> ServiceError {
    // One message for an unknown email and a wrong password: no account oracle.
    ServiceError::Unauthenticated("invalid email or password".into())
}

/// Checks the password and opens a session. Failures are audited as `auth.login.failed`
/// (with the email tried, never the password). Throttling is api-gateway's job: it knows the
/// client address and counts failures in Redis across replicas.
pub async fn login(
    ctx: &Context,
    req: pb::LoginRequest,
) -> Result<pb::LoginResponse, ServiceError> {
    let email = req.email.trim().to_lowercase();
    let user = sqlx::query(
        "SELECT id, email, name, password_hash, is_platform_admin FROM users WHERE email = $1",
    )
    .bind(&email)
    .fetch_optional(&ctx.pool)
    .await?;
    let verified = match &user {
        Some(row) => {
            let hash: String = row.try_get("password_hash")?;
            secrets::verify(req.password, hash).await
        }
        None => {
            // Spend the same Argon2 time for an unknown email, so timing does not reveal which
            // emails have accounts.
            let _ = secrets::hash(req.password).await;
            false
        }
    };
    let user = match user {
        Some(row) if verified => row,
        other => {
            let user_id = match &other {
                Some(row) => Some(row.try_get::<Uuid, _>("id")?),
                None => None,
            };
            let after = serde_json::json!({ "email": email });
            let mut conn = ctx.pool.acquire().await?;
            store::audit(
                &mut conn,
                AuditEntry {
                    action: "auth.login.failed",
                    actor_user_id: user_id,
                    after: Some(&after),
                    request_id: Some(&req.request_id),
                    client_address: Some(&req.client_address),
                    ..Default::default()
                },
            )
            .await?;
            metrics::counter!("auth_login_failures_total").increment(1);
            return Err(invalid_login());
        }
    };
    let user_id: Uuid = user.try_get("id")?;
    let membership = membership_of(&ctx.pool, user_id).await?;
    let session_id = Uuid::new_v4();
    let secret = secrets::random_secret()?;
    let csrf_token = secrets::random_secret()?;
    let ttl = chrono::Duration::from_std(ctx.identity.session_ttl)
        .map_err(|e| ServiceError::Internal(e.into()))?;
    let expires_at = Utc::now() + ttl;
    let mut tx = ctx.pool.begin().await?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, secret_hash, csrf_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(secrets::digest(&secret))
    .bind(secrets::digest(&csrf_token))
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    let session_name = session_id.to_string();
    store::audit(
        &mut tx,
        AuditEntry {
            action: "auth.session.created",
            actor_user_id: Some(user_id),
            org_id: membership.as_ref().map(|m| m.org_id),
            resource_kind: Some("sessions"),
            resource_name: Some(&session_name),
            request_id: Some(&req.request_id),
            client_address: Some(&req.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("auth_sessions_created_total").increment(1);
    Ok(pb::LoginResponse {
        session_token: format!("{SESSION_PREFIX}{session_id}.{secret}"),
        csrf_token,
        session_id: session_name,
        expires_at: expires_at.to_rfc3339(),
        user: Some(user_from_row(&user)?),
        ttl_seconds: u32::try_from(ctx.identity.session_ttl.as_secs()).unwrap_or(u32::MAX),
    })
}

pub(crate) fn user_from_row(row: &sqlx::postgres::PgRow) -> Result<pb::User, ServiceError> {
    Ok(pb::User {
        id: row.try_get::<Uuid, _>("id")?.to_string(),
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        is_platform_admin: row.try_get("is_platform_admin")?,
    })
}

/// Turns a session credential into a principal whose scopes come from the user's membership.
pub async fn authenticate(
    ctx: &Context,
    req: &pb::AuthenticateRequest,
) -> Result<pb::AuthenticateResponse, ServiceError> {
    let refused = || ServiceError::Unauthenticated("invalid or expired credential".into());
    let (id, secret) = req
        .credential
        .strip_prefix(SESSION_PREFIX)
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(refused)?;
    let id = Uuid::parse_str(id).map_err(|_| refused())?;
    let row = sqlx::query(
        "SELECT s.secret_hash, s.csrf_hash, s.expires_at, s.revoked_at, s.user_id, u.email \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_optional(&ctx.pool)
    .await?
    .ok_or_else(refused)?;
    let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
    let revoked_at: Option<DateTime<Utc>> = row.try_get("revoked_at")?;
    let now = Utc::now();
    let stored: String = row.try_get("secret_hash")?;
    if revoked_at.is_some() || expires_at <= now || !secrets::digest_matches(secret, &stored) {
        metrics::counter!("auth_authentications_total", "status" => "failure").increment(1);
        return Err(refused());
    }
    let user_id: Uuid = row.try_get("user_id")?;
    let membership = membership_of(&ctx.pool, user_id).await?;
    metrics::counter!("auth_authentications_total", "status" => "success").increment(1);
    let principal = Principal {
        user_id: user_id.to_string(),
        token_id: String::new(),
        scopes: session_scopes(membership.as_ref()),
        org_id: membership
            .as_ref()
            .map(|m| m.org_id.to_string())
            .unwrap_or_default(),
        email: row.try_get("email")?,
        session_id: id.to_string(),
    };
    Ok(crate::identity::authenticated(
        ctx,
        principal,
        now,
        Some(expires_at),
        row.try_get("csrf_hash")?,
    ))
}

/// The scopes a session of this membership holds; none without a membership.
fn session_scopes(membership: Option<&StoredMembership>) -> Vec<String> {
    membership
        .map(|m| {
            membership::effective_scopes(m.role, &m.teams, &membership::parse_stored(&m.scopes))
                .iter()
                .map(Scope::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A member's tokens never hold more than the member does now: the scopes of `token_scopes`
/// that the membership's scopes cover in the token's organization. A user with no membership (a platform admin, the
/// bootstrap user) keeps what its tokens were created with.
pub(crate) async fn within_membership(
    pool: &sqlx::PgPool,
    user_id: Uuid,
    token_org: Option<Uuid>,
    token_scopes: Vec<String>,
) -> Result<Vec<String>, ServiceError> {
    let Some(member) = membership_of(pool, user_id).await? else {
        return Ok(token_scopes);
    };
    // A token of another organization (the member moved) holds nothing here.
    let token_org = token_org.map(|o| o.to_string()).unwrap_or_default();
    let ceiling = flowplane_domain::scopes::Grants::parse(
        &session_scopes(Some(&member)),
        Some(member.org_id.to_string()),
    );
    Ok(token_scopes
        .into_iter()
        .filter(|s| {
            s.parse::<Scope>()
                .is_ok_and(|scope| ceiling.covers(&scope, &token_org))
        })
        .collect())
}

/// Ends the caller's session everywhere: it is refused from now on, and every api-gateway is
/// told to drop it from its cache.
pub async fn logout(ctx: &Context, caller: &Caller) -> Result<pb::LogoutResponse, ServiceError> {
    let session_id = caller.session_id.ok_or_else(|| {
        ServiceError::validation(
            "",
            "logout ends a session; a token is revoked with DELETE /api/v1/tokens/{id}",
        )
    })?;
    let mut tx = ctx.pool.begin().await?;
    let ended =
        sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(session_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let name = session_id.to_string();
    if ended == 1 {
        store::audit(
            &mut tx,
            AuditEntry {
                action: "auth.session.ended",
                actor_user_id: caller.user_id,
                org_id: caller.grants.org_id().and_then(|o| Uuid::parse_str(o).ok()),
                resource_kind: Some("sessions"),
                resource_name: Some(&name),
                request_id: Some(&caller.request_id),
                client_address: Some(&caller.client_address),
                ..Default::default()
            },
        )
        .await?;
    }
    tx.commit().await?;
    ctx.notices.token_invalidated(&name).await;
    Ok(pb::LogoutResponse { session_id: name })
}

/// Ends every live session of a user (removed from an organization) and returns their ids,
/// to be announced after the transaction commits.
pub(crate) async fn end_user_sessions(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
) -> Result<Vec<String>, ServiceError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await?;
    Ok(ids.iter().map(Uuid::to_string).collect())
}

/// The live sessions and active tokens of a user, whose cached principals must be dropped when
/// its membership changes (the next authentication derives the new scopes).
pub(crate) async fn live_sessions(
    pool: &sqlx::PgPool,
    user_id: Uuid,
) -> Result<Vec<String>, ServiceError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() \
         UNION ALL SELECT id FROM tokens WHERE user_id = $1 AND status = 'active'",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    Ok(ids.iter().map(Uuid::to_string).collect())
}

/// Who the caller is: user, memberships, effective scopes and the teams they reach. Works for
/// sessions and tokens alike.
pub async fn whoami(ctx: &Context, caller: &Caller) -> Result<pb::WhoAmIResponse, ServiceError> {
    let user_id = caller
        .user_id
        .ok_or_else(|| ServiceError::Unauthenticated("no user behind this credential".into()))?;
    let user = sqlx::query("SELECT id, email, name, is_platform_admin FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&ctx.pool)
        .await?
        .ok_or_else(|| ServiceError::Unauthenticated("the user no longer exists".into()))?;
    let (auth_method, credential_id, expires_at) = match (caller.session_id, caller.token_id) {
        (Some(id), _) => {
            let at: Option<DateTime<Utc>> =
                sqlx::query_scalar("SELECT expires_at FROM sessions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&ctx.pool)
                    .await?;
            ("session", id.to_string(), at)
        }
        (None, Some(id)) => {
            let at: Option<Option<DateTime<Utc>>> =
                sqlx::query_scalar("SELECT expires_at FROM tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&ctx.pool)
                    .await?;
            ("token", id.to_string(), at.flatten())
        }
        (None, None) => ("token", String::new(), None),
    };
    let memberships = membership_of(&ctx.pool, user_id)
        .await?
        .map(|m| pb::Membership {
            org_id: m.org_id.to_string(),
            org_name: m.org_name,
            role: m.role.to_string(),
            teams: m.teams,
            scopes: m.scopes,
        })
        .into_iter()
        .collect();
    Ok(pb::WhoAmIResponse {
        user: Some(user_from_row(&user)?),
        auth_method: auth_method.into(),
        credential_id,
        scopes: caller
            .grants
            .scopes()
            .iter()
            .map(Scope::to_string)
            .collect(),
        memberships,
        teams: reachable_teams(ctx, caller).await?,
        expires_at: expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
    })
}

/// The teams the caller's scopes reach: all for `admin:all`, every team of its organization
/// for a resource-level scope, and the teams its team scopes name.
async fn reachable_teams(ctx: &Context, caller: &Caller) -> Result<Vec<String>, ServiceError> {
    let seen = crate::store::team_filter_binds(&caller.grants.visible_teams());
    let sql = format!(
        "SELECT t.name FROM teams t WHERE {} ORDER BY t.name",
        crate::store::team_filter_sql(1)
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(seen.all)
        .bind(seen.org_id)
        .bind(seen.whole_org)
        .bind(&seen.names)
        .fetch_all(&ctx.pool)
        .await?)
}
