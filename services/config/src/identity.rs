//! Identity: the first-run setup token, bootstrap of the first platform admin, organizations
//! and their default teams, personal access tokens, and turning a bearer credential into a
//! principal.

use chrono::{DateTime, Utc};
use flowplane_domain::ValidationErrors;
use flowplane_domain::names::name_problem;
use flowplane_domain::scopes::{Scope, ScopeResource};
use flowplane_proto::common::v1::Principal;
use flowplane_proto::identity::v1 as pb;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::Context;
use crate::authz::Caller;
use crate::error::{ServiceError, violated_constraint};
use crate::secrets;
use crate::store::{self, AuditEntry};

pub const SETUP_PREFIX: &str = "fp_setup_";
pub const PAT_PREFIX: &str = "fp_pat_";

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

pub async fn create_organization(
    ctx: &Context,
    caller: &Caller,
    name: &str,
    display_name: &str,
) -> Result<pb::CreateOrganizationResponse, ServiceError> {
    require_platform_admin(ctx, caller).await?;
    let mut errors = ValidationErrors::new();
    if let Err(message) = name_problem(name) {
        errors.add("/name", message);
    } else if name.len() + "-default".len() > flowplane_domain::names::MAX_NAME_LEN {
        errors.add(
            "/name",
            "must leave room for the '-default' team suffix (at most 55 characters)",
        );
    }
    errors.into_result()?;
    let display_name = if display_name.trim().is_empty() {
        name
    } else {
        display_name.trim()
    };
    let team_name = format!("{name}-default");
    let org_id = Uuid::new_v4();
    let team_id = Uuid::new_v4();
    let mut tx = ctx.pool.begin().await?;
    let org_row = sqlx::query(
        "INSERT INTO organizations (id, name, display_name) VALUES ($1, $2, $3) RETURNING created_at",
    )
    .bind(org_id)
    .bind(name)
    .bind(display_name)
    .fetch_one(&mut *tx)
    .await;
    let org_row = match org_row {
        Err(e) if violated_constraint(&e) == Some("organizations_name_key") => {
            return Err(ServiceError::AlreadyExists(format!(
                "organization '{name}' already exists"
            )));
        }
        other => other?,
    };
    let team_row = sqlx::query(
        "INSERT INTO teams (id, org_id, name, display_name) VALUES ($1, $2, $3, $4) RETURNING created_at",
    )
    .bind(team_id)
    .bind(org_id)
    .bind(&team_name)
    .bind(format!("{display_name} (default)"))
    .fetch_one(&mut *tx)
    .await;
    let team_row = match team_row {
        Err(e) if violated_constraint(&e) == Some("teams_name_key") => {
            return Err(ServiceError::AlreadyExists(format!(
                "team '{team_name}' already exists"
            )));
        }
        other => other?,
    };
    for (action, team) in [
        ("org.created", None),
        ("team.created", Some(team_name.as_str())),
    ] {
        store::audit(
            &mut tx,
            AuditEntry {
                action,
                actor_user_id: caller.user_id,
                actor_token_id: caller.token_id,
                org_id: Some(org_id),
                team,
                request_id: Some(&caller.request_id),
                client_address: Some(&caller.client_address),
                ..Default::default()
            },
        )
        .await?;
    }
    tx.commit().await?;
    let org_created: DateTime<Utc> = org_row.try_get("created_at").map_err(sqlx_err)?;
    let team_created: DateTime<Utc> = team_row.try_get("created_at").map_err(sqlx_err)?;
    Ok(pb::CreateOrganizationResponse {
        organization: Some(pb::Organization {
            id: org_id.to_string(),
            name: name.to_string(),
            display_name: display_name.to_string(),
            created_at: org_created.to_rfc3339(),
        }),
        default_team: Some(pb::Team {
            id: team_id.to_string(),
            org_id: org_id.to_string(),
            name: team_name,
            display_name: format!("{display_name} (default)"),
            created_at: team_created.to_rfc3339(),
        }),
    })
}

pub async fn list_organizations(
    ctx: &Context,
    caller: &Caller,
) -> Result<pb::ListOrganizationsResponse, ServiceError> {
    require_platform_admin(ctx, caller).await?;
    let rows =
        sqlx::query("SELECT id, name, display_name, created_at FROM organizations ORDER BY name")
            .fetch_all(&ctx.pool)
            .await?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(pb::Organization {
                id: row.try_get::<Uuid, _>("id")?.to_string(),
                name: row.try_get("name")?,
                display_name: row.try_get("display_name")?,
                created_at: row.try_get::<DateTime<Utc>, _>("created_at")?.to_rfc3339(),
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(pb::ListOrganizationsResponse { items })
}

/// Platform administration: the break-glass `admin:all` scope, or a platform-admin user acting
/// through a session. A token is bounded by its scopes even when its owner is a platform admin,
/// so a narrowly scoped token never carries its owner's full power.
pub(crate) async fn require_platform_admin(
    ctx: &Context,
    caller: &Caller,
) -> Result<(), ServiceError> {
    if caller.grants.is_admin() {
        return Ok(());
    }
    // Only a session speaks for its user; a token never does.
    let is_admin: Option<bool> = match (caller.session_id, caller.token_id, caller.user_id) {
        (Some(_), None, Some(id)) => {
            sqlx::query_scalar("SELECT is_platform_admin FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&ctx.pool)
                .await?
        }
        _ => None,
    };
    if is_admin == Some(true) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "platform administration requires a platform admin".into(),
        ))
    }
}

const TOKEN_COLUMNS: &str =
    "id, name, description, scopes, status, expires_at, created_at, last_used_at, created_by";

fn token_from_row(row: &PgRow) -> Result<pb::Token, ServiceError> {
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

pub(crate) fn is_plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !email.contains(char::is_whitespace)
                && email.len() <= 254
        }
        None => false,
    }
}

fn sqlx_err(e: sqlx::Error) -> ServiceError {
    e.into()
}
