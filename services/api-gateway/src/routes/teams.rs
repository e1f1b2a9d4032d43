//! The teams of an organization, managed by its admins: `admin:all`, a platform admin, or a
//! credential of that organization holding a resource-level scope (`{resource}:read|write`);
//! creating takes a resource-level `write` scope. A caller whose scopes name only some teams of
//! the organization lists just those; a caller with nothing there gets 404.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowplane_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::organizations::Team;
use crate::caller::Caller;
use crate::extract::{JsonBody, PathParams};
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTeamBody {
    /// Unique across Flowplane (scopes name teams without their organization).
    #[serde(default)]
    #[schema(required = true, example = "payments")]
    pub name: String,
    #[serde(default)]
    #[schema(example = "Payments")]
    pub display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamList {
    pub items: Vec<Team>,
}

/// Lists an organization's teams (those the caller may see).
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/teams",
    tag = "organizations",
    operation_id = "listTeams",
    params(("org" = String, Path, description = "Organization name")),
    responses(
        (status = 200, description = "The teams", body = TeamList),
        (status = 404, description = "No such organization visible to the caller", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<TeamList>, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .list_teams(pb::ListTeamsRequest {
            context: Some(caller.context()),
            org,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(TeamList {
        items: answer.items.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a team in an organization (organization admins).
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/teams",
    tag = "organizations",
    operation_id = "createTeam",
    params(("org" = String, Path, description = "Organization name")),
    request_body = CreateTeamBody,
    responses(
        (status = 201, description = "Created", body = Team),
        (status = 403, description = "The caller sees the organization but does not administer it", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such organization visible to the caller", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<CreateTeamBody>,
) -> Result<impl IntoResponse, Problem> {
    let team = state
        .config
        .identity
        .clone()
        .create_team(pb::CreateTeamRequest {
            context: Some(caller.context()),
            org,
            name: body.name,
            display_name: body.display_name,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok((StatusCode::CREATED, Json(Team::from(team))))
}
