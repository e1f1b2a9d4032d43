//! Organizations (each with its default team), which only platform admins create and list.

use chrono::{DateTime, Utc};
use flowplane_domain::ValidationErrors;
use flowplane_domain::names::name_problem;
use flowplane_proto::identity::v1 as pb;
use sqlx::Row;
use uuid::Uuid;

use crate::Context;
use crate::authz::{Caller, authorize_platform};
use crate::error::{ServiceError, violated_constraint};
use crate::store::{self, AuditEntry};

use super::sqlx_err;

pub async fn create_organization(
    ctx: &Context,
    caller: &Caller,
    name: &str,
    display_name: &str,
) -> Result<pb::CreateOrganizationResponse, ServiceError> {
    authorize_platform(&ctx.pool, caller).await?;
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
    authorize_platform(&ctx.pool, caller).await?;
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
