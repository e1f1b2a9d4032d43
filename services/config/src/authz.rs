//! Who is calling and what they may touch. Every resource operation goes through
//! [`authorize_team`] (one team) or [`Caller::list_scope`] (lists); both hand back values
//! that the data layer requires, so an unscoped query cannot be written.

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
