//! Invitations, registration and organization members.
//!
//! Organization admins (a platform admin, `admin:all`, or a member of the organization whose
//! effective scopes include a resource-level scope: [`OrgAccess::administers`]) invite by
//! email with a role, teams and scopes. The invite token `fp_invite_<id>.<secret>` is returned
//! once, stored as a SHA-256 digest, expires, and is claimed by exactly one registration; there
//! is no open sign-up. Nobody grants beyond their own reach: every scope a membership yields
//! must be covered by the caller's grants (`Grants::covers`), both the ones being granted and,
//! on changes, the ones the member already holds. Platform admins govern organizations and
//! users, so their sessions may grant any tenant scope in an organization without holding it.

use chrono::{DateTime, Utc};
use flowplane_domain::ValidationErrors;
use flowplane_domain::membership::{self, MembershipGrant, Role};
use flowplane_domain::scopes::{Action, Scope};
use flowplane_proto::identity::v1 as pb;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::Context;
use crate::authz::{Caller, OrgAccess, authorize_org};
use crate::error::{ServiceError, violated_constraint};
use crate::identity::is_plausible_email;
use crate::secrets;
use crate::sessions::{end_user_sessions, live_sessions, user_from_row};
use crate::store::{self, AuditEntry};

pub const INVITE_PREFIX: &str = "fp_invite_";

/// A user's membership as stored.
#[derive(Debug, Clone)]
pub struct StoredMembership {
    pub org_id: Uuid,
    pub org_name: String,
    pub role: Role,
    pub teams: Vec<String>,
    pub scopes: Vec<String>,
    pub joined_at: DateTime<Utc>,
}

impl StoredMembership {
    fn effective_scopes(&self) -> Vec<Scope> {
        membership::effective_scopes(
            self.role,
            &self.teams,
            &membership::parse_stored(&self.scopes),
        )
    }
}

fn membership_from_row(row: &PgRow) -> Result<StoredMembership, ServiceError> {
    let role: String = row.try_get("role")?;
    Ok(StoredMembership {
        org_id: row.try_get("org_id")?,
        org_name: row.try_get("org_name")?,
        // The column's CHECK constraint admits only the two roles.
        role: role.parse().unwrap_or(Role::Member),
        teams: row.try_get("teams")?,
        scopes: row.try_get("scopes")?,
        joined_at: row.try_get("created_at")?,
    })
}

const MEMBERSHIP_SELECT: &str = "SELECT m.org_id, o.name AS org_name, m.role, m.teams, m.scopes, \
     m.created_at FROM memberships m JOIN organizations o ON o.id = m.org_id";

pub async fn membership_of(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Option<StoredMembership>, ServiceError> {
    sqlx::query(&format!("{MEMBERSHIP_SELECT} WHERE m.user_id = $1"))
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(membership_from_row)
        .transpose()
}

/// Resolves `org` and checks that the caller administers it for `action`: 404 for an
/// organization the caller has nothing in, 403 for one it belongs to without admin rights.
async fn require_org_admin(
    ctx: &Context,
    caller: &Caller,
    org: &str,
    action: Action,
) -> Result<OrgAccess, ServiceError> {
    let org = authorize_org(&ctx.pool, caller, org).await?;
    org.require_admin(action, "managing the members of")?;
    Ok(org)
}

/// Checks the parsed grant against storage (its teams exist in the organization) and the
/// caller's ceiling (each granted scope, as it applies to this role and these teams).
async fn check_grant(
    ctx: &Context,
    caller: &Caller,
    org: &OrgAccess,
    grant: &MembershipGrant,
    raw_scopes: &[String],
    errors: &mut ValidationErrors,
) -> Result<(), ServiceError> {
    let known = store::teams_in_org(&ctx.pool, org.id(), &grant.teams).await?;
    for (i, team) in grant.teams.iter().enumerate() {
        if !known.contains(team) {
            errors.add(
                format!("/teams/{i}"),
                format!("team '{team}' not found in this organization"),
            );
        }
    }
    if org.is_platform() {
        return Ok(());
    }
    for (i, raw) in raw_scopes.iter().enumerate() {
        let Ok(scope) = raw.parse::<Scope>() else {
            continue;
        };
        let yields = membership::effective_scopes(grant.role, &grant.teams, &[scope]);
        let org_id = org.id().to_string();
        if !yields.iter().all(|s| caller.grants.covers(s, &org_id)) {
            errors.add(
                format!("/scopes/{i}"),
                "exceeds the scopes of the credential granting it",
            );
        }
    }
    Ok(())
}

fn invitation_view(grant: &MembershipGrant, email: &str) -> serde_json::Value {
    serde_json::json!({
        "email": email,
        "role": grant.role.as_str(),
        "teams": grant.teams,
        "scopes": grant.scopes.iter().map(Scope::to_string).collect::<Vec<_>>(),
    })
}

pub async fn create_invitation(
    ctx: &Context,
    caller: &Caller,
    req: pb::CreateInvitationRequest,
) -> Result<pb::CreateInvitationResponse, ServiceError> {
    let org = require_org_admin(ctx, caller, &req.org, Action::Write).await?;
    let org_id = org.id();
    let email = req.email.trim().to_lowercase();
    let mut errors = ValidationErrors::new();
    if !is_plausible_email(&email) {
        errors.add("/email", "must be an email address");
    }
    let grant = match MembershipGrant::parse(&req.role, &req.teams, &req.scopes) {
        Ok(grant) => Some(grant),
        Err(found) => {
            for e in found.errors() {
                errors.add(e.field.clone(), e.message.clone());
            }
            None
        }
    };
    if let Some(grant) = &grant {
        check_grant(ctx, caller, &org, grant, &req.scopes, &mut errors).await?;
    }
    errors.into_result()?;
    let Some(grant) = grant else {
        return Err(ServiceError::validation("", "the invitation is invalid"));
    };
    let taken: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)")
        .bind(&email)
        .fetch_one(&ctx.pool)
        .await?;
    if taken {
        return Err(ServiceError::AlreadyExists(format!(
            "a user with email '{email}' already exists"
        )));
    }
    let id = Uuid::new_v4();
    let secret = secrets::random_secret()?;
    let ttl = chrono::Duration::from_std(ctx.identity.invite_ttl)
        .map_err(|e| ServiceError::Internal(e.into()))?;
    let scopes: Vec<String> = grant.scopes.iter().map(Scope::to_string).collect();
    let mut tx = ctx.pool.begin().await?;
    let row = sqlx::query(
        "INSERT INTO invitations (id, org_id, email, role, teams, scopes, secret_hash, invited_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING created_at, expires_at",
    )
    .bind(id)
    .bind(org_id)
    .bind(&email)
    .bind(grant.role.as_str())
    .bind(&grant.teams)
    .bind(&scopes)
    .bind(secrets::digest(&secret))
    .bind(caller.user_id)
    .bind(Utc::now() + ttl)
    .fetch_one(&mut *tx)
    .await?;
    let after = invitation_view(&grant, &email);
    let name = id.to_string();
    store::audit(
        &mut tx,
        AuditEntry {
            action: "org.invitation.created",
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id: Some(org_id),
            resource_kind: Some("invitations"),
            resource_name: Some(&name),
            after: Some(&after),
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    let ts = |c: &str| -> Result<String, ServiceError> {
        Ok(row.try_get::<DateTime<Utc>, _>(c)?.to_rfc3339())
    };
    Ok(pb::CreateInvitationResponse {
        invitation: Some(pb::Invitation {
            id: name,
            org: req.org,
            email,
            role: grant.role.to_string(),
            teams: grant.teams,
            scopes,
            expires_at: ts("expires_at")?,
            created_at: ts("created_at")?,
            invited_by: caller.user_id.map(|u| u.to_string()).unwrap_or_default(),
        }),
        invite_token: format!("{INVITE_PREFIX}{id}.{secret}"),
    })
}

/// Creates the invited user and its membership, claiming the invitation in the same
/// transaction so it can be used once, even by two racing requests.
pub async fn register(
    ctx: &Context,
    req: pb::RegisterRequest,
) -> Result<pb::RegisterResponse, ServiceError> {
    let mut errors = ValidationErrors::new();
    if req.name.trim().is_empty() || req.name.len() > 256 {
        errors.add("/name", "is required (at most 256 characters)");
    }
    if req.password.chars().count() < 12 {
        errors.add("/password", "must be at least 12 characters");
    }
    let refused =
        || ServiceError::validation("/inviteToken", "is invalid, already used or expired");
    let (id, secret) = req
        .invite_token
        .strip_prefix(INVITE_PREFIX)
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(refused)?;
    let id = Uuid::parse_str(id).map_err(|_| refused())?;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT secret_hash FROM invitations WHERE id = $1")
            .bind(id)
            .fetch_optional(&ctx.pool)
            .await?;
    if !stored.is_some_and(|hash| secrets::digest_matches(secret, &hash)) {
        return Err(refused());
    }
    errors.into_result()?;
    let password_hash = secrets::hash(req.password).await?;
    let mut tx = ctx.pool.begin().await?;
    let invitation = sqlx::query(
        "UPDATE invitations SET accepted_at = now() \
         WHERE id = $1 AND accepted_at IS NULL AND expires_at > now() \
         RETURNING org_id, email, role, teams, scopes",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(refused)?;
    let org_id: Uuid = invitation.try_get("org_id")?;
    let email: String = invitation.try_get("email")?;
    let user_id = Uuid::new_v4();
    let user = sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, org_id) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, email, name, is_platform_admin",
    )
    .bind(user_id)
    .bind(&email)
    .bind(req.name.trim())
    .bind(password_hash)
    .bind(org_id)
    .fetch_one(&mut *tx)
    .await;
    let user = match user {
        Err(e) if violated_constraint(&e) == Some("users_email_key") => {
            return Err(ServiceError::AlreadyExists(format!(
                "a user with email '{email}' already exists"
            )));
        }
        other => other?,
    };
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, teams, scopes) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(invitation.try_get::<String, _>("role")?)
    .bind(invitation.try_get::<Vec<String>, _>("teams")?)
    .bind(invitation.try_get::<Vec<String>, _>("scopes")?)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE invitations SET accepted_by = $2 WHERE id = $1")
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let name = user_id.to_string();
    store::audit(
        &mut tx,
        AuditEntry {
            action: "org.member.joined",
            actor_user_id: Some(user_id),
            org_id: Some(org_id),
            resource_kind: Some("members"),
            resource_name: Some(&name),
            request_id: Some(&req.request_id),
            client_address: Some(&req.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    let membership = membership_of(&ctx.pool, user_id)
        .await?
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("membership vanished")))?;
    let user = user_from_row(&user)?;
    Ok(pb::RegisterResponse {
        org: membership.org_name.clone(),
        member: Some(member_message(&user, &membership)),
        user: Some(user),
    })
}

fn member_message(user: &pb::User, m: &StoredMembership) -> pb::Member {
    pb::Member {
        user_id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
        role: m.role.to_string(),
        teams: m.teams.clone(),
        scopes: m.scopes.clone(),
        joined_at: m.joined_at.to_rfc3339(),
    }
}

const MEMBER_SELECT: &str = "SELECT m.org_id, o.name AS org_name, m.role, m.teams, m.scopes, \
     m.created_at, u.id, u.email, u.name, u.is_platform_admin \
     FROM memberships m JOIN organizations o ON o.id = m.org_id JOIN users u ON u.id = m.user_id";

fn member_from_row(row: &PgRow) -> Result<(pb::User, StoredMembership), ServiceError> {
    Ok((user_from_row(row)?, membership_from_row(row)?))
}

pub async fn list_members(
    ctx: &Context,
    caller: &Caller,
    org: &str,
) -> Result<pb::ListMembersResponse, ServiceError> {
    let org_id = require_org_admin(ctx, caller, org, Action::Read)
        .await?
        .id();
    let rows = sqlx::query(&format!(
        "{MEMBER_SELECT} WHERE m.org_id = $1 ORDER BY u.email"
    ))
    .bind(org_id)
    .fetch_all(&ctx.pool)
    .await?;
    let items = rows
        .iter()
        .map(|row| member_from_row(row).map(|(u, m)| member_message(&u, &m)))
        .collect::<Result<_, _>>()?;
    Ok(pb::ListMembersResponse { items })
}

/// Loads a member of `org` for a change, locked, and checks the caller's ceiling covers
/// what the member holds now (a narrower admin cannot take over or strip a broader one).
async fn lock_member(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    org: &OrgAccess,
    user_id: &str,
) -> Result<(pb::User, StoredMembership), ServiceError> {
    let not_found = || ServiceError::NotFound(format!("member '{user_id}' not found"));
    let id = Uuid::parse_str(user_id).map_err(|_| not_found())?;
    let row = sqlx::query(&format!(
        "{MEMBER_SELECT} WHERE m.org_id = $1 AND m.user_id = $2 FOR UPDATE OF m"
    ))
    .bind(org.id())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(not_found)?;
    let (user, member) = member_from_row(&row)?;
    let org_id = org.id().to_string();
    if !org.is_platform()
        && !member
            .effective_scopes()
            .iter()
            .all(|s| caller.grants.covers(s, &org_id))
    {
        return Err(ServiceError::Forbidden(format!(
            "member '{user_id}' holds scopes beyond this credential's own"
        )));
    }
    Ok((user, member))
}

fn member_view(m: &StoredMembership) -> serde_json::Value {
    serde_json::json!({ "role": m.role.as_str(), "teams": m.teams, "scopes": m.scopes })
}

pub async fn update_member(
    ctx: &Context,
    caller: &Caller,
    req: pb::UpdateMemberRequest,
) -> Result<pb::Member, ServiceError> {
    let org = require_org_admin(ctx, caller, &req.org, Action::Write).await?;
    let org_id = org.id();
    let mut tx = ctx.pool.begin().await?;
    let (user, before) = lock_member(&mut tx, caller, &org, &req.user_id).await?;
    let role = req.role.clone().unwrap_or_else(|| before.role.to_string());
    let teams = if req.replace_teams {
        req.teams.clone()
    } else {
        before.teams.clone()
    };
    let scopes = if req.replace_scopes {
        req.scopes.clone()
    } else {
        before.scopes.clone()
    };
    let grant = MembershipGrant::parse(&role, &teams, &scopes)?;
    let mut errors = ValidationErrors::new();
    check_grant(ctx, caller, &org, &grant, &scopes, &mut errors).await?;
    errors.into_result()?;
    let stored_scopes: Vec<String> = grant.scopes.iter().map(Scope::to_string).collect();
    let row = sqlx::query(
        "UPDATE memberships SET role = $3, teams = $4, scopes = $5, updated_at = now() \
         WHERE org_id = $1 AND user_id = $2 RETURNING created_at",
    )
    .bind(org_id)
    .bind(Uuid::parse_str(&user.id).map_err(|e| ServiceError::Internal(e.into()))?)
    .bind(grant.role.as_str())
    .bind(&grant.teams)
    .bind(&stored_scopes)
    .fetch_one(&mut *tx)
    .await?;
    let after = StoredMembership {
        role: grant.role,
        teams: grant.teams,
        scopes: stored_scopes,
        joined_at: row.try_get("created_at")?,
        ..before.clone()
    };
    let (before_json, after_json) = (member_view(&before), member_view(&after));
    store::audit(
        &mut tx,
        AuditEntry {
            action: "org.member.updated",
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id: Some(org_id),
            resource_kind: Some("members"),
            resource_name: Some(&user.id),
            before: Some(&before_json),
            after: Some(&after_json),
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    // Cached session and token principals carry the old scopes; the next authentication
    // derives new ones.
    let user_id = Uuid::parse_str(&user.id).map_err(|e| ServiceError::Internal(e.into()))?;
    for id in live_sessions(&ctx.pool, user_id).await? {
        ctx.notices.token_invalidated(&id).await;
    }
    Ok(member_message(&user, &after))
}

/// Removes a member: its membership goes, its sessions end and its tokens are revoked (a
/// token minted while it was a member must not outlive the membership).
pub async fn remove_member(
    ctx: &Context,
    caller: &Caller,
    req: pb::RemoveMemberRequest,
) -> Result<pb::RemoveMemberResponse, ServiceError> {
    let org = require_org_admin(ctx, caller, &req.org, Action::Write).await?;
    let org_id = org.id();
    let mut tx = ctx.pool.begin().await?;
    let (user, before) = lock_member(&mut tx, caller, &org, &req.user_id).await?;
    let user_id = Uuid::parse_str(&user.id).map_err(|e| ServiceError::Internal(e.into()))?;
    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE users SET org_id = NULL WHERE id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let mut ended = end_user_sessions(&mut tx, user_id).await?;
    let tokens: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tokens SET status = 'revoked' WHERE user_id = $1 AND status = 'active' RETURNING id",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    ended.extend(tokens.iter().map(Uuid::to_string));
    let before_json = member_view(&before);
    store::audit(
        &mut tx,
        AuditEntry {
            action: "org.member.removed",
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id: Some(org_id),
            resource_kind: Some("members"),
            resource_name: Some(&user.id),
            before: Some(&before_json),
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    for id in ended {
        ctx.notices.token_invalidated(&id).await;
    }
    if !tokens.is_empty() {
        metrics::counter!("auth_tokens_revoked_total").increment(tokens.len() as u64);
        crate::sweeper::refresh_active_gauge(ctx).await?;
    }
    Ok(pb::RemoveMemberResponse {})
}
