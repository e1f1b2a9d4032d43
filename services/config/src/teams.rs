//! The teams of an organization. Managed by its admins: the break-glass `admin:all`, a
//! platform admin's session, or a credential of that organization holding a resource-level
//! scope (`{resource}:read|write`, which already reaches every team of the organization).
//! Listing needs any resource-level scope; creating needs a resource-level `write` scope.
//! A caller whose scopes name only some teams of the organization sees just those teams and
//! gets 403 on create; a caller with nothing in the organization gets 404, as if it did not
//! exist.

use chrono::{DateTime, Utc};
use flowplane_domain::ValidationErrors;
use flowplane_domain::names::name_problem;
use flowplane_domain::scopes::Action;
use flowplane_proto::identity::v1 as pb;
use sqlx::Row;
use uuid::Uuid;

use crate::Context;
use crate::authz::{Caller, OrgStanding, authorize_org};
use crate::error::{ServiceError, violated_constraint};
use crate::store::{self, AuditEntry};

fn team_from_row(row: &sqlx::postgres::PgRow) -> Result<pb::Team, sqlx::Error> {
    Ok(pb::Team {
        id: row.try_get::<Uuid, _>("id")?.to_string(),
        org_id: row.try_get::<Uuid, _>("org_id")?.to_string(),
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        created_at: row.try_get::<DateTime<Utc>, _>("created_at")?.to_rfc3339(),
    })
}

pub async fn list(
    ctx: &Context,
    caller: &Caller,
    org: &str,
) -> Result<pb::ListTeamsResponse, ServiceError> {
    let org = authorize_org(&ctx.pool, caller, org).await?;
    let (all, names) = match org.standing() {
        OrgStanding::Platform | OrgStanding::Admin { .. } => (true, &[][..]),
        OrgStanding::Teams(names) => (false, &names[..]),
    };
    let rows = sqlx::query(
        "SELECT id, org_id, name, display_name, created_at FROM teams \
         WHERE org_id = $1 AND ($2 OR name = ANY($3)) ORDER BY name",
    )
    .bind(org.id())
    .bind(all)
    .bind(names)
    .fetch_all(&ctx.pool)
    .await?;
    Ok(pb::ListTeamsResponse {
        items: rows
            .iter()
            .map(team_from_row)
            .collect::<Result<_, sqlx::Error>>()?,
    })
}

pub async fn create(
    ctx: &Context,
    caller: &Caller,
    req: pb::CreateTeamRequest,
) -> Result<pb::Team, ServiceError> {
    let org = authorize_org(&ctx.pool, caller, &req.org).await?;
    org.require_admin(Action::Write, "creating teams in")?;
    let org_id = org.id();
    let mut errors = ValidationErrors::new();
    if let Err(message) = name_problem(&req.name) {
        errors.add("/name", message);
    }
    if req.display_name.len() > 256 {
        errors.add("/displayName", "must be at most 256 characters");
    }
    errors.into_result()?;
    let display_name = match req.display_name.trim() {
        "" => req.name.as_str(),
        d => d,
    };
    let mut tx = ctx.pool.begin().await?;
    let row = sqlx::query(
        "INSERT INTO teams (id, org_id, name, display_name) VALUES ($1, $2, $3, $4) \
         RETURNING id, org_id, name, display_name, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(org_id)
    .bind(&req.name)
    .bind(display_name)
    .fetch_one(&mut *tx)
    .await;
    let row = match row {
        Err(e) if violated_constraint(&e) == Some("teams_name_key") => {
            return Err(ServiceError::AlreadyExists(format!(
                "team '{}' already exists",
                req.name
            )));
        }
        other => other?,
    };
    let team = team_from_row(&row)?;
    let after = serde_json::json!({ "name": team.name, "displayName": team.display_name });
    store::audit(
        &mut tx,
        AuditEntry {
            action: "team.created",
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id: Some(org_id),
            team: Some(&team.name),
            resource_kind: Some("teams"),
            resource_name: Some(&team.name),
            after: Some(&after),
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(team)
}
