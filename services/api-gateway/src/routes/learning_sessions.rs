//! Learning sessions beyond their CRUD (which `resources` serves like every kind's): moving
//! one between pending, active and stopped, what it learned, and that as an OpenAPI 3.1
//! document that `from-openapi` imports back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use flowplane_domain::ResourceKind;
use flowplane_domain::learning::{LearnedEndpoint, openapi_document};
use flowplane_domain::learning_session::{LearningSessionSpec, SessionState};
use flowplane_proto::learning::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::extract::{PathParams, QueryParams};
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

/// Starts capturing: Envoys serving the session's listener copy the traffic under its path
/// prefix to the learning service. One session per listener may be active.
#[utoipa::path(post, path = "/api/v1/teams/{team}/learning-sessions/{name}/activate",
    tag = "learning-sessions", operation_id = "activateLearningSession",
    params(("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The session's name.")),
    responses(
        (status = 200, description = "The session, now active", body = serde_json::Value),
        (status = 400, description = "Another session is active on the listener", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such session in a team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
) -> Result<Response, Problem> {
    set_state(&state, &caller, team, name, SessionState::Active).await
}

/// Stops capturing; what was learned stays readable.
#[utoipa::path(post, path = "/api/v1/teams/{team}/learning-sessions/{name}/stop",
    tag = "learning-sessions", operation_id = "stopLearningSession",
    params(("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The session's name.")),
    responses(
        (status = 200, description = "The session, now stopped", body = serde_json::Value),
        (status = 404, description = "No such session in a team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
) -> Result<Response, Problem> {
    set_state(&state, &caller, team, name, SessionState::Stopped).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TeamQuery {
    /// The owning team; needed only when the caller can see several teams with a session of
    /// this name.
    pub team: Option<String>,
}

/// `activate`, at the canonical path (the team in `?team=` when needed).
#[utoipa::path(post, path = "/api/v1/learning-sessions/{name}/activate",
    tag = "learning-sessions", operation_id = "activateLearningSessionCanonical",
    params(("name" = String, Path, description = "The session's name."), TeamQuery),
    responses(
        (status = 200, description = "The session, now active", body = serde_json::Value),
        (status = 400, description = "Another session is active on the listener", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such session in a team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn activate_canonical(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<TeamQuery>,
) -> Result<Response, Problem> {
    let team = query.team.unwrap_or_default();
    set_state(&state, &caller, team, name, SessionState::Active).await
}

/// `stop`, at the canonical path (the team in `?team=` when needed).
#[utoipa::path(post, path = "/api/v1/learning-sessions/{name}/stop",
    tag = "learning-sessions", operation_id = "stopLearningSessionCanonical",
    params(("name" = String, Path, description = "The session's name."), TeamQuery),
    responses(
        (status = 200, description = "The session, now stopped", body = serde_json::Value),
        (status = 404, description = "No such session in a team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn stop_canonical(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<TeamQuery>,
) -> Result<Response, Problem> {
    let team = query.team.unwrap_or_default();
    set_state(&state, &caller, team, name, SessionState::Stopped).await
}

/// Writes the session back with a new state, conditional on the version read, so a
/// concurrent edit is not overwritten.
async fn set_state(
    state: &AppState,
    caller: &Caller,
    team: String,
    name: String,
    to: SessionState,
) -> Result<Response, Problem> {
    let kind = ResourceKind::LearningSession;
    let current = super::resources::fetch(state, caller, kind, team, name.clone()).await?;
    let mut spec: LearningSessionSpec =
        serde_json::from_str(&current.spec_json).map_err(Problem::internal)?;
    spec.state = to;
    let body = serde_json::to_string(&spec).map_err(Problem::internal)?;
    // The team the session was found in (the canonical path may not name it).
    let team = current.team.clone();
    let updated =
        super::resources::write(state, caller, kind, team, name, body, current.revision).await?;
    super::resources::respond(StatusCode::OK, &updated)
}

/// One endpoint a session learned.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LearnedEndpointView {
    pub method: String,
    /// The path template: variable segments are `{parameters}`.
    pub path: String,
    /// Exchanges seen.
    pub samples: u64,
    /// JSON Schema (2020-12) of the JSON request bodies seen, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_schema: Option<serde_json::Value>,
    pub responses: Vec<LearnedResponseView>,
    /// Path and query parameters as OpenAPI parameter objects (`name`, `in`, `required`,
    /// `schema`), typed from the values seen; the values themselves are never kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LearnedResponseView {
    pub status: u16,
    pub samples: u64,
    /// JSON Schema (2020-12) of the JSON bodies seen with this status, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LearnedEndpointList {
    pub items: Vec<LearnedEndpointView>,
}

impl From<&LearnedEndpoint> for LearnedEndpointView {
    fn from(e: &LearnedEndpoint) -> Self {
        Self {
            method: e.method.clone(),
            path: e.path.clone(),
            samples: e.samples,
            request_schema: e.request_body.as_ref().map(|s| s.to_json_schema()),
            parameters: e.parameters(),
            responses: e
                .responses
                .iter()
                .map(|(status, r)| LearnedResponseView {
                    status: *status,
                    samples: r.samples,
                    schema: r.body.as_ref().map(|s| s.to_json_schema()),
                })
                .collect(),
        }
    }
}

/// What the session learned so far, by path then method.
#[utoipa::path(get, path = "/api/v1/teams/{team}/learning-sessions/{name}/endpoints",
    tag = "learning-sessions", operation_id = "listLearnedEndpoints",
    params(("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The session's name.")),
    responses(
        (status = 200, description = "The endpoints learned, with their schemas", body = LearnedEndpointList),
        (status = 404, description = "No such session in a team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn endpoints(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
) -> Result<Json<LearnedEndpointList>, Problem> {
    // As requests arrived at the listener.
    let learned = learned(&state, &caller, team, name, true).await?;
    Ok(Json(LearnedEndpointList {
        items: learned.iter().map(LearnedEndpointView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OpenApiQuery {
    /// The server URL to write into the document (`servers`), so importing it back knows
    /// where the API lives.
    #[serde(rename = "serverUrl")]
    pub server_url: Option<String>,
    /// `upstream` (default): paths as the upstream receives them, after the route's
    /// `prefixRewrite` or `regexRewrite`, so the document imports in front of that upstream;
    /// `gateway`: paths as requests arrive at the listener.
    #[param(inline)]
    pub paths: Option<PathsView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PathsView {
    Upstream,
    Gateway,
}

/// What the session learned as an OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/v1/teams/{team}/learning-sessions/{name}/openapi",
    tag = "learning-sessions", operation_id = "exportLearnedOpenApi",
    params(("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The session's name."), OpenApiQuery),
    responses(
        (status = 200, description = "An OpenAPI 3.1 document of the learned endpoints", body = serde_json::Value),
        (status = 404, description = "No such session in a team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn openapi(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<OpenApiQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let title = format!("{name} (learned)");
    let gateway = query.paths == Some(PathsView::Gateway);
    let learned = learned(&state, &caller, team, name, gateway).await?;
    Ok(Json(openapi_document(
        &title,
        query.server_url.as_deref(),
        &learned,
    )))
}

async fn learned(
    state: &AppState,
    caller: &Caller,
    team: String,
    session: String,
    gateway_paths: bool,
) -> Result<Vec<LearnedEndpoint>, Problem> {
    let answer = state
        .config
        .learning
        .clone()
        .list_learned(pb::ListLearnedRequest {
            context: Some(caller.context()),
            team,
            session,
            gateway_paths,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    answer
        .endpoints_json
        .iter()
        .map(|json| serde_json::from_str(json).map_err(Problem::internal))
        .collect()
}
