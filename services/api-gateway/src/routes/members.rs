//! Invitations, registration and organization members. Organization admins invite (the invite
//! token is shown once, expires, and registers exactly one user); there is no open sign-up.
//! Nobody grants beyond their own scopes; config decides.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowplane_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sessions::User;
use crate::caller::{Caller, RequestMeta};
use crate::extract::{JsonBody, PathParams};
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInvitationBody {
    #[serde(default)]
    #[schema(required = true, example = "dev@example.com")]
    pub email: String,
    /// `admin` (resource-level scopes reach every team; administers the organization) or
    /// `member` (resource-level scopes are narrowed to `teams`).
    #[serde(default)]
    #[schema(required = true, example = "member")]
    pub role: String,
    /// Teams of this organization the member works in.
    #[serde(default)]
    #[schema(example = json!(["my-org-default"]))]
    pub teams: Vec<String>,
    /// Within the inviter's own scopes.
    #[serde(default)]
    #[schema(example = json!(["clusters:write", "routes:read"]))]
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub id: String,
    pub org: String,
    pub email: String,
    pub role: String,
    pub teams: Vec<String>,
    pub scopes: Vec<String>,
    pub expires_at: String,
    pub created_at: String,
    pub invited_by: Option<String>,
    /// `fp_invite_<id>.<secret>`, for `POST /api/v1/auth/register`. Returned only now;
    /// single-use.
    pub invite_token: String,
}

/// Invites a user into an organization (organization admins).
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/invitations",
    tag = "members",
    operation_id = "createInvitation",
    params(("org" = String, Path, description = "Organization name")),
    request_body = CreateInvitationBody,
    responses(
        (status = 201, description = "Invited; `inviteToken` is shown only now", body = Invitation),
        (status = 403, description = "The caller belongs to the organization but does not administer it", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A user with this email exists", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = []))
)]
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<CreateInvitationBody>,
) -> Result<impl IntoResponse, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .create_invitation(pb::CreateInvitationRequest {
            context: Some(caller.context()),
            org,
            email: body.email,
            role: body.role,
            teams: body.teams,
            scopes: body.scopes,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    let i = answer
        .invitation
        .ok_or_else(|| Problem::internal("config answered without an invitation"))?;
    Ok((
        StatusCode::CREATED,
        Json(Invitation {
            id: i.id,
            org: i.org,
            email: i.email,
            role: i.role,
            teams: i.teams,
            scopes: i.scopes,
            expires_at: i.expires_at,
            created_at: i.created_at,
            invited_by: super::non_empty(i.invited_by),
            invite_token: answer.invite_token,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterBody {
    #[serde(default)]
    #[schema(required = true)]
    pub invite_token: String,
    #[serde(default)]
    #[schema(required = true, example = "Dana Developer")]
    pub name: String,
    /// At least 12 characters.
    #[serde(default)]
    #[schema(required = true)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub teams: Vec<String>,
    pub scopes: Vec<String>,
    pub joined_at: String,
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Self {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role,
            teams: m.teams,
            scopes: m.scopes,
            joined_at: m.joined_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub user: User,
    pub org: String,
    pub member: Member,
}

/// Creates the invited user with the invite token (single-use). Then log in.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    operation_id = "register",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Registered", body = Registered),
        (status = 400, description = "Invalid, or the invite token is invalid, used or expired (`/inviteToken`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A user with this email exists", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<impl IntoResponse, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .register(pb::RegisterRequest {
            invite_token: body.invite_token,
            name: body.name,
            password: body.password,
            request_id: meta.request_id,
            client_address: meta.client_address,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    let missing = || Problem::internal("config answered an incomplete registration");
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            user: answer.user.ok_or_else(missing)?.into(),
            org: answer.org,
            member: answer.member.ok_or_else(missing)?.into(),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<Member>,
}

/// Lists an organization's members (organization admins).
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/members",
    tag = "members",
    operation_id = "listMembers",
    params(("org" = String, Path, description = "Organization name")),
    responses((status = 200, description = "The members", body = MemberList)),
    security(("bearerAuth" = []), ("sessionCookie" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org): PathParams<String>,
) -> Result<Json<MemberList>, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .list_members(pb::ListMembersRequest {
            context: Some(caller.context()),
            org,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(MemberList {
        items: answer.items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateMemberBody {
    /// `admin` or `member`; omit to keep.
    pub role: Option<String>,
    /// Replaces the teams; omit to keep.
    pub teams: Option<Vec<String>>,
    /// Replaces the scopes (within the caller's own); omit to keep.
    pub scopes: Option<Vec<String>>,
}

/// Changes a member's role, teams or scopes. Its live sessions pick the change up at once.
#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/members/{userId}",
    tag = "members",
    operation_id = "updateMember",
    params(
        ("org" = String, Path, description = "Organization name"),
        ("userId" = String, Path, description = "The member's user id"),
    ),
    request_body = UpdateMemberBody,
    responses(
        (status = 200, description = "The member", body = Member),
        (status = 403, description = "Not an organization admin, or the member holds scopes beyond the caller's", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org, user_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<UpdateMemberBody>,
) -> Result<Json<Member>, Problem> {
    let member = state
        .config
        .identity
        .clone()
        .update_member(pb::UpdateMemberRequest {
            context: Some(caller.context()),
            org,
            user_id,
            role: body.role,
            replace_teams: body.teams.is_some(),
            teams: body.teams.unwrap_or_default(),
            replace_scopes: body.scopes.is_some(),
            scopes: body.scopes.unwrap_or_default(),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(member.into()))
}

/// Removes a member: its sessions end and its tokens are revoked, on every gateway at once.
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/members/{userId}",
    tag = "members",
    operation_id = "removeMember",
    params(
        ("org" = String, Path, description = "Organization name"),
        ("userId" = String, Path, description = "The member's user id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an organization admin, or the member holds scopes beyond the caller's", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org, user_id)): PathParams<(String, String)>,
) -> Result<StatusCode, Problem> {
    state
        .config
        .identity
        .clone()
        .remove_member(pb::RemoveMemberRequest {
            context: Some(caller.context()),
            org,
            user_id,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?;
    Ok(StatusCode::NO_CONTENT)
}
