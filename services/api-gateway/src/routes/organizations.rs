//! Organizations, each created with its default team `<org>-default` (platform admins).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowplane_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::extract::JsonBody;
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrganizationBody {
    /// Lowercase letters, digits, `-`, `_`, `.`; also the prefix of the default team's name.
    #[serde(default)]
    #[schema(required = true, example = "my-org")]
    pub name: String,
    #[serde(default)]
    #[schema(example = "My Organization")]
    pub display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub display_name: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedOrganization {
    #[serde(flatten)]
    pub organization: Organization,
    /// The team `<org>-default`, created with the organization.
    pub default_team: Option<Team>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationList {
    pub items: Vec<Organization>,
}

impl From<pb::Organization> for Organization {
    fn from(o: pb::Organization) -> Self {
        Self {
            id: o.id,
            name: o.name,
            display_name: o.display_name,
            created_at: o.created_at,
        }
    }
}

impl From<pb::Team> for Team {
    fn from(t: pb::Team) -> Self {
        Self {
            id: t.id,
            org_id: t.org_id,
            name: t.name,
            display_name: t.display_name,
            created_at: t.created_at,
        }
    }
}

/// Creates an organization and its default team.
#[utoipa::path(
    post,
    path = "/api/v1/admin/organizations",
    tag = "organizations",
    operation_id = "createOrganization",
    request_body = CreateOrganizationBody,
    responses(
        (status = 201, description = "Created, with its default team", body = CreatedOrganization),
        (status = 403, description = "Only platform admins manage organizations", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateOrganizationBody>,
) -> Result<impl IntoResponse, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .create_organization(pb::CreateOrganizationRequest {
            context: Some(caller.context()),
            name: body.name,
            display_name: body.display_name,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    let organization = answer
        .organization
        .ok_or_else(|| Problem::internal("config created an organization but returned none"))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrganization {
            organization: organization.into(),
            default_team: answer.default_team.map(Into::into),
        }),
    ))
}

/// Lists organizations.
#[utoipa::path(
    get,
    path = "/api/v1/admin/organizations",
    tag = "organizations",
    operation_id = "listOrganizations",
    responses(
        (status = 200, description = "Every organization the caller may see", body = OrganizationList),
        (status = 403, description = "Only platform admins manage organizations", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OrganizationList>, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .list_organizations(pb::ListOrganizationsRequest {
            context: Some(caller.context()),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(OrganizationList {
        items: answer.items.into_iter().map(Into::into).collect(),
    }))
}
