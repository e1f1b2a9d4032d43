//! Who is calling and what they may touch: one decision per level. Every resource operation
//! goes through [`authorize_team`] (one team) or [`Caller::list_scope`] (lists), every
//! organization operation (its teams, members, invitations) through [`authorize_org`], and
//! platform administration through [`authorize_platform`]. Each hands back a value only it
//! makes ([`TeamAccess`], [`OrgAccess`], [`PlatformAccess`]), which the operation then needs,
//! so an unauthorized query cannot be written.

use flowplane_domain::scopes::{Access, Action, Grants, ScopeResource, TeamFilter, TeamRef};
use flowplane_proto::common::v1::RequestContext;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ServiceError;
use crate::service_auth::Keys;
use crate::store;

/// The authenticated caller of one request: the principal config signed when it
/// authenticated the credential, passed back by api-gateway unaltered.
#[derive(Debug, Clone)]
pub struct Caller {
    pub grants: Grants,
    pub user_id: Option<Uuid>,
    pub token_id: Option<Uuid>,
    /// Set when the caller authenticated with a login session rather than a token.
    pub session_id: Option<Uuid>,
    pub request_id: String,
    pub client_address: String,
}

impl Caller {
    pub fn from_context(
        keys: &Keys,
        context: Option<RequestContext>,
    ) -> Result<Self, ServiceError> {
        let context = context.ok_or_else(|| ServiceError::Unauthenticated("no caller".into()))?;
        let signed = context
            .signed_principal
            .ok_or_else(|| ServiceError::Unauthenticated("no principal".into()))?;
        let principal = keys
            .verify_principal(&signed, chrono::Utc::now().timestamp_millis())
            .map_err(|e| {
                metrics::counter!("config_principals_refused_total").increment(1);
                ServiceError::Unauthenticated(e.into())
            })?;
        let org_id = Some(principal.org_id).filter(|s| !s.is_empty());
        Ok(Self {
            grants: Grants::parse(&principal.scopes, org_id),
            user_id: Uuid::parse_str(&principal.user_id).ok(),
            token_id: Uuid::parse_str(&principal.token_id).ok(),
            session_id: Uuid::parse_str(&principal.session_id).ok(),
            request_id: context.request_id,
            client_address: context.client_address,
        })
    }

    /// The teams a list of `resource` may include, narrowed to `team` when one is given (which
    /// must then be readable, or the list is `not_found`). A list across every tenant reached
    /// through `admin:all` is break-glass access, and audited.
    pub async fn list_scope(
        &self,
        pool: &PgPool,
        resource: ScopeResource,
        team: Option<&str>,
    ) -> Result<TeamFilter, ServiceError> {
        match team {
            Some(team) => {
                authorize_team(pool, self, team, resource, Action::Read, || {
                    format!("team '{team}' not found")
                })
                .await?;
            }
            None if self.grants.is_admin() => {
                audit_break_glass(pool, self, None, resource, Action::Read).await?;
            }
            None => {}
        }
        Ok(self.grants.readable_teams(resource))
    }
}

/// A team the caller was authorized for. Only [`authorize_team`] makes one.
#[derive(Debug, Clone)]
pub struct TeamAccess {
    id: Uuid,
    name: String,
    org_id: Uuid,
}

impl TeamAccess {
    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn org_id(&self) -> Uuid {
        self.org_id
    }
}

/// The one authorization decision for team-owned resources. A team the caller cannot see is
/// reported exactly like a missing one (`not_found`), so responses never reveal existence.
pub async fn authorize_team(
    pool: &PgPool,
    caller: &Caller,
    team: &str,
    resource: ScopeResource,
    action: Action,
    not_found: impl FnOnce() -> String,
) -> Result<TeamAccess, ServiceError> {
    let Some(row) = store::team_by_name(pool, team).await? else {
        return Err(ServiceError::NotFound(not_found()));
    };
    let org = row.org_id.to_string();
    let team_ref = TeamRef {
        name: &row.name,
        org_id: &org,
    };
    match caller.grants.decide(team_ref, resource, action) {
        Access::Allowed => {
            if caller.grants.only_admin_allows(team_ref, resource, action) {
                audit_break_glass(
                    pool,
                    caller,
                    Some((&row.name, row.org_id)),
                    resource,
                    action,
                )
                .await?;
            }
            Ok(TeamAccess {
                id: row.id,
                name: row.name,
                org_id: row.org_id,
            })
        }
        Access::Forbidden => Err(ServiceError::Forbidden(format!(
            "this credential may not {} {} in team '{}'",
            action.as_str(),
            resource.as_str(),
            row.name
        ))),
        Access::Hidden => Err(ServiceError::NotFound(not_found())),
    }
}

/// Proof that the caller administers the platform. Only [`authorize_platform`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct PlatformAccess(());

/// Platform administration: the break-glass `admin:all` scope, or a platform-admin user acting
/// through a session. A token is bounded by its scopes even when its owner is a platform admin,
/// so a narrowly scoped token never carries its owner's full power.
pub async fn authorize_platform(
    pool: &PgPool,
    caller: &Caller,
) -> Result<PlatformAccess, ServiceError> {
    if caller.grants.is_admin() {
        return Ok(PlatformAccess(()));
    }
    // Only a session speaks for its user; a token never does.
    let admin_session = match (caller.session_id, caller.token_id, caller.user_id) {
        (Some(_), None, Some(user)) => store::is_platform_admin(pool, user).await?,
        _ => false,
    };
    if admin_session {
        Ok(PlatformAccess(()))
    } else {
        Err(ServiceError::Forbidden(
            "platform administration requires a platform admin".into(),
        ))
    }
}

/// How the caller stands in one organization. Only [`authorize_org`] makes one.
#[derive(Debug, Clone)]
pub struct OrgAccess {
    id: Uuid,
    name: String,
    standing: OrgStanding,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgStanding {
    /// A platform admin: every team, every action, and no ceiling on what it grants.
    Platform,
    /// Organization-level (resource) scopes: every team; `write` when one of them writes.
    Admin { write: bool },
    /// Team scopes only: these teams of the organization and nothing else.
    Teams(Vec<String>),
}

impl OrgAccess {
    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn standing(&self) -> &OrgStanding {
        &self.standing
    }

    /// Whether the caller administers the organization (its teams, members and invitations)
    /// for `action`: reading takes an organization-level scope, writing a writing one.
    pub fn administers(&self, action: Action) -> bool {
        match self.standing {
            OrgStanding::Platform => true,
            OrgStanding::Admin { write } => write || action == Action::Read,
            OrgStanding::Teams(_) => false,
        }
    }

    /// 403 unless the caller administers the organization for `action`; `what` names the
    /// operation ("creating teams in").
    pub fn require_admin(&self, action: Action, what: &str) -> Result<(), ServiceError> {
        if self.administers(action) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "{what} organization '{}' takes an organization admin",
                self.name
            )))
        }
    }

    /// Whether the caller is a platform admin (who grants without a ceiling).
    pub fn is_platform(&self) -> bool {
        self.standing == OrgStanding::Platform
    }
}

/// The one authorization decision for an organization. An organization the caller has
/// nothing in is reported exactly like a missing one (`not_found`); every scope but
/// `admin:all` applies only in the credential's own organization ([`Grants`]).
pub async fn authorize_org(
    pool: &PgPool,
    caller: &Caller,
    org: &str,
) -> Result<OrgAccess, ServiceError> {
    let not_found = || ServiceError::NotFound(format!("organization '{org}' not found"));
    let id = store::org_id_by_name(pool, org)
        .await?
        .ok_or_else(not_found)?;
    let access = |standing| OrgAccess {
        id,
        name: org.to_string(),
        standing,
    };
    if authorize_platform(pool, caller).await.is_ok() {
        return Ok(access(OrgStanding::Platform));
    }
    if !caller.grants.in_org(&id.to_string()) {
        return Err(not_found());
    }
    if let Some(action) = caller.grants.org_level() {
        return Ok(access(OrgStanding::Admin {
            write: action == Action::Write,
        }));
    }
    let named = match caller.grants.visible_teams() {
        TeamFilter::InOrg { names, .. } => names,
        TeamFilter::All | TeamFilter::None => Vec::new(),
    };
    let teams = store::teams_in_org(pool, id, &named).await?;
    if teams.is_empty() {
        return Err(not_found());
    }
    Ok(access(OrgStanding::Teams(teams)))
}

/// Records one use of `admin:all` on tenant resources (`auth.admin_all.used`): the resource
/// kind and whether it read or wrote, with the team when one team was addressed.
async fn audit_break_glass(
    pool: &PgPool,
    caller: &Caller,
    team: Option<(&str, Uuid)>,
    resource: ScopeResource,
    action: Action,
) -> Result<(), ServiceError> {
    let mut conn = pool.acquire().await?;
    let detail = serde_json::json!({ "access": action.as_str() });
    store::audit(
        &mut conn,
        store::AuditEntry {
            action: "auth.admin_all.used",
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id: team.map(|(_, org)| org),
            team: team.map(|(name, _)| name),
            resource_kind: Some(resource.as_str()),
            after: Some(&detail),
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}
