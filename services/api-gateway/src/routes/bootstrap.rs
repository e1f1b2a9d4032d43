//! First run: whether initialization is pending, and creating the first platform admin with
//! the one-time setup token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowplane_proto::identity::v1::{BootstrapStatusRequest, InitializeRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller::{Bearer, RequestMeta};
use crate::extract::JsonBody;
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapStatus {
    /// True until the first platform admin has been created.
    pub needs_initialization: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InitializeBody {
    #[serde(default)]
    #[schema(required = true)]
    pub email: String,
    #[serde(default)]
    #[schema(required = true, format = Password)]
    pub password: String,
    #[serde(default)]
    #[schema(required = true)]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Initialized {
    pub user_id: String,
    pub token_id: String,
    /// The admin's bearer token (`fp_pat_<id>.<secret>`). Returned this once.
    pub token: String,
    pub scopes: Vec<String>,
    /// RFC 3339; null for no expiry.
    pub expires_at: Option<String>,
}

/// Whether the control plane still waits for its first admin.
#[utoipa::path(
    get,
    path = "/api/v1/bootstrap/status",
    tag = "bootstrap",
    operation_id = "getBootstrapStatus",
    responses((status = 200, description = "Initialization state", body = BootstrapStatus))
)]
pub async fn status(State(state): State<AppState>) -> Result<Json<BootstrapStatus>, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .bootstrap_status(BootstrapStatusRequest {})
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(BootstrapStatus {
        needs_initialization: answer.needs_initialization,
    }))
}

/// Creates the first platform admin. Authenticate with the setup token the control plane
/// logged on first start; it works once.
#[utoipa::path(
    post,
    path = "/api/v1/bootstrap/initialize",
    tag = "bootstrap",
    operation_id = "initialize",
    request_body = InitializeBody,
    responses(
        (status = 201, description = "The admin was created; `token` is its bearer credential", body = Initialized),
        (status = 409, description = "Already initialized", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn initialize(
    State(state): State<AppState>,
    meta: RequestMeta,
    Bearer(setup_token): Bearer,
    JsonBody(body): JsonBody<InitializeBody>,
) -> Result<impl IntoResponse, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .initialize(InitializeRequest {
            setup_token,
            email: body.email,
            password: body.password,
            name: body.name,
            request_id: meta.request_id,
            client_address: meta.client_address,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    let token = answer.token.unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(Initialized {
            user_id: answer.user_id,
            token_id: token.id,
            token: answer.token_secret,
            scopes: token.scopes,
            expires_at: super::non_empty(token.expires_at),
        }),
    ))
}
