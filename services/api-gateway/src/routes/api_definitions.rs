//! The Platform API: API definitions at `/api/v1/api-definitions` and
//! `/api/v1/teams/{team}/api-definitions`, OpenAPI import, and `expose`.
//!
//! As with native resources, bodies pass through to config as text: config parses, validates
//! and compiles them, so its field paths reach the caller unchanged.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowplane_domain::ErrorCode;
use flowplane_domain::api_definition::ApiDefinitionSpec;
use flowplane_domain::api_definition::expose::ExposeRequest;
use flowplane_proto::resources::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::conditional;
use crate::extract::{PathParams, QueryParams, RawBody};
use crate::paging;
use crate::problem::{Problem, ProblemDocument};
use crate::resource_json::{DataplaneStatusView, etag};
use crate::state::AppState;

/// The largest OpenAPI document an import takes.
pub const IMPORT_BODY_LIMIT_BYTES: usize = 48 * 1024 * 1024;

// ---- wire shapes ----

/// A stored API definition: the envelope, the spec's fields, and what it generated.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiDefinitionView {
    pub id: String,
    pub team: String,
    pub name: String,
    /// Position in the global change sequence; the `ETag`.
    pub revision: i64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(flatten)]
    pub spec: ApiDefinitionSpec,
    /// The native resources this definition generated (`shared`: the team's gateway listener
    /// and route config, which other shared definitions contribute to as well), with each
    /// one's status per dataplane.
    pub generated_resources: Vec<GeneratedResourceView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedResourceView {
    /// `clusters`, `route-configs` or `listeners`.
    pub kind: String,
    pub name: String,
    pub shared: bool,
    pub status: Vec<DataplaneStatusView>,
}

/// A create or replace body: `team` (canonical path only) and `name` beside the spec.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ApiDefinitionInput {
    pub team: Option<String>,
    pub name: String,
    #[serde(flatten)]
    pub spec: ApiDefinitionSpec,
}

/// `expose`: a name, an upstream URL and a path.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ExposeInput {
    /// The API definition's name.
    pub name: String,
    #[serde(flatten)]
    pub expose: ExposeRequest,
}

/// The outcome of an import or expose.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    pub definition: ApiDefinitionView,
    /// False when the definition already was exactly this: no revision, no push.
    pub changed: bool,
    pub created: bool,
    /// True when nothing was applied (`dryRun=true`).
    pub dry_run: bool,
    /// Generated resources and routes added, changed or removed.
    pub changes: Vec<ChangeView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// `added`, `changed` or `removed`.
    pub op: String,
    /// `clusters`, `route-configs`, `listeners` or `routes`.
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiDefinitionList {
    pub items: Vec<ApiDefinitionView>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this team's definitions.
    pub team: Option<String>,
    /// Page size, 1-500 (default 50).
    pub limit: Option<String>,
    /// `nextCursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1-500 (default 50).
    pub limit: Option<String>,
    /// `nextCursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TeamQuery {
    /// The owning team; needed when several teams the caller can see use the name (and on
    /// create when the body does not name it).
    pub team: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ImportQuery {
    /// The owning team.
    pub team: Option<String>,
    /// `shared` (default; the team's gateway listener) or `dedicated` (needs `port`).
    pub listener_isolation: Option<String>,
    /// The dedicated listener's port.
    pub port: Option<String>,
    /// The definition's name (default: `x-flowplane-name`, else the slug of `info.title`).
    pub name: Option<String>,
    /// The domain clients call (default: `x-flowplane-domain`, else any host).
    pub domain: Option<String>,
    /// `true`: report what would change, apply nothing.
    pub dry_run: Option<String>,
}

// ---- canonical paths ----

/// Lists API definitions in the teams the caller may read.
#[utoipa::path(get, path = "/api/v1/api-definitions", tag = "api-definitions",
    operation_id = "listApiDefinitions", params(ListQuery),
    responses((status = 200, description = "One page of API definitions", body = ApiDefinitionList)),
    security(("bearerAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Response, Problem> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    list_page(state, caller, query.team.unwrap_or_default(), page).await
}

/// Creates an API definition and the clusters, route config and listener it generates, in one
/// change.
#[utoipa::path(post, path = "/api/v1/api-definitions", tag = "api-definitions",
    operation_id = "createApiDefinition", params(TeamQuery), request_body = ApiDefinitionInput,
    responses(
        (status = 201, description = "Created", body = ApiDefinitionView),
        (status = 403, description = "The caller may not change this team's API definitions", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The name, the domain, or a generated resource's name is taken", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<TeamQuery>,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let request = apply_request(
        pb::ApiDefinitionSource::Definition,
        pb::ApplyMode::Create,
        query.team.unwrap_or_default(),
        body,
    );
    let result = apply(&state, &caller, request).await?;
    respond_definition(StatusCode::CREATED, result.definition)
}

/// Reads an API definition, with its generated resources and their status.
#[utoipa::path(get, path = "/api/v1/api-definitions/{name}", tag = "api-definitions",
    operation_id = "getApiDefinition",
    params(("name" = String, Path, description = "The definition's name."), TeamQuery),
    responses((status = 200, description = "The API definition", body = ApiDefinitionView)),
    security(("bearerAuth" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<TeamQuery>,
) -> Result<Response, Problem> {
    get_one(state, caller, query.team.unwrap_or_default(), name).await
}

/// Replaces an API definition; its generated resources follow in the same change. A body that
/// changes nothing spends no revision and pushes nothing.
#[utoipa::path(put, path = "/api/v1/api-definitions/{name}", tag = "api-definitions",
    operation_id = "updateApiDefinition",
    params(("name" = String, Path, description = "The definition's name."), TeamQuery,
        ("If-Match" = Option<String>, Header, description = "The `ETag` this change is based on.")),
    request_body = ApiDefinitionInput,
    responses(
        (status = 200, description = "The definition as stored now", body = ApiDefinitionView),
        (status = 403, description = "The caller may not change this team's API definitions", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The domain or a generated resource's name is taken", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names an older revision", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<TeamQuery>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    replace(
        state,
        caller,
        query.team.unwrap_or_default(),
        name,
        &headers,
        body,
    )
    .await
}

/// Deletes an API definition and exactly the resources it generated (the shared gateway
/// stays while other shared definitions of the team use it).
#[utoipa::path(delete, path = "/api/v1/api-definitions/{name}", tag = "api-definitions",
    operation_id = "deleteApiDefinition",
    params(("name" = String, Path, description = "The definition's name."), TeamQuery,
        ("If-Match" = Option<String>, Header, description = "The `ETag` this change is based on.")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The caller may not change this team's API definitions", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A native resource still references a generated one", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names an older revision", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<TeamQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    remove(
        state,
        caller,
        query.team.unwrap_or_default(),
        name,
        &headers,
    )
    .await
}

/// Imports an OpenAPI 3.0 or 3.1 document (JSON or YAML, up to 48 MiB): `servers` become
/// clusters, each operation a route (path templates become URI templates, the method a method
/// match). Re-importing an unchanged document changes nothing; a changed one updates the
/// definition in place and reports the difference.
#[utoipa::path(post, path = "/api/v1/api-definitions/from-openapi", tag = "api-definitions",
    operation_id = "importOpenApi", params(ImportQuery),
    request_body(content = String, description = "The OpenAPI document",
        content_type = "application/yaml"),
    responses(
        (status = 201, description = "A definition was created", body = ApplyResult),
        (status = 200, description = "Updated, unchanged, or (dryRun) the plan", body = ApplyResult),
        (status = 400, description = "The document is invalid; `errors[].field` is a JSON pointer into it", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not change this team's API definitions", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The domain or a generated resource's name is taken", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The document exceeds 48 MiB", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = [])))]
pub async fn import_openapi(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ImportQuery>,
    body: Body,
) -> Result<Response, Problem> {
    let document = read_document(body).await?;
    let port = match query.port.as_deref().filter(|p| !p.is_empty()) {
        None => 0,
        Some(raw) => raw
            .parse::<u32>()
            .map_err(|_| Problem::field(ErrorCode::ValidationFailed, "port", "must be a number"))?,
    };
    let request = pb::ApplyApiDefinitionRequest {
        dry_run: dry_run(query.dry_run.as_deref())?,
        import_name: query.name.unwrap_or_default(),
        import_domain: query.domain.unwrap_or_default(),
        import_isolation: query.listener_isolation.unwrap_or_default(),
        import_port: port,
        ..apply_request(
            pb::ApiDefinitionSource::Openapi,
            pb::ApplyMode::Upsert,
            query.team.unwrap_or_default(),
            document,
        )
    };
    let result = apply(&state, &caller, request).await?;
    respond_result(result)
}

// ---- team paths ----

/// Lists one team's API definitions.
#[utoipa::path(get, path = "/api/v1/teams/{team}/api-definitions", tag = "api-definitions",
    operation_id = "listTeamApiDefinitions",
    params(("team" = String, Path, description = "The owning team."), PageQuery),
    responses((status = 200, description = "One page of API definitions", body = ApiDefinitionList)),
    security(("bearerAuth" = [])))]
pub async fn team_list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(team): PathParams<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Response, Problem> {
    list_page(state, caller, team, page).await
}

/// Creates an API definition in this team.
#[utoipa::path(post, path = "/api/v1/teams/{team}/api-definitions", tag = "api-definitions",
    operation_id = "createTeamApiDefinition",
    params(("team" = String, Path, description = "The owning team.")),
    request_body = ApiDefinitionInput,
    responses(
        (status = 201, description = "Created", body = ApiDefinitionView),
        (status = 403, description = "The caller may not change this team's API definitions", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The name, the domain, or a generated resource's name is taken", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = [])))]
pub async fn team_create(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(team): PathParams<String>,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let request = apply_request(
        pb::ApiDefinitionSource::Definition,
        pb::ApplyMode::Create,
        team,
        body,
    );
    let result = apply(&state, &caller, request).await?;
    respond_definition(StatusCode::CREATED, result.definition)
}

/// Reads one of this team's API definitions.
#[utoipa::path(get, path = "/api/v1/teams/{team}/api-definitions/{name}", tag = "api-definitions",
    operation_id = "getTeamApiDefinition",
    params(("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The definition's name.")),
    responses((status = 200, description = "The API definition", body = ApiDefinitionView)),
    security(("bearerAuth" = [])))]
pub async fn team_get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
) -> Result<Response, Problem> {
    get_one(state, caller, team, name).await
}

/// Replaces one of this team's API definitions.
#[utoipa::path(put, path = "/api/v1/teams/{team}/api-definitions/{name}", tag = "api-definitions",
    operation_id = "updateTeamApiDefinition",
    params(("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The definition's name."),
        ("If-Match" = Option<String>, Header, description = "The `ETag` this change is based on.")),
    request_body = ApiDefinitionInput,
    responses(
        (status = 200, description = "The definition as stored now", body = ApiDefinitionView),
        (status = 403, description = "The caller may not change this team's API definitions", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The domain or a generated resource's name is taken", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names an older revision", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = [])))]
pub async fn team_update(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    replace(state, caller, team, name, &headers, body).await
}

/// Deletes one of this team's API definitions and what it generated.
#[utoipa::path(delete, path = "/api/v1/teams/{team}/api-definitions/{name}", tag = "api-definitions",
    operation_id = "deleteTeamApiDefinition",
    params(("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The definition's name."),
        ("If-Match" = Option<String>, Header, description = "The `ETag` this change is based on.")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The caller may not change this team's API definitions", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A native resource still references a generated one", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names an older revision", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = [])))]
pub async fn team_delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    remove(state, caller, team, name, &headers).await
}

/// Exposes an upstream at a path in one call: an API definition with one prefix route, on the
/// team's shared gateway listener (or, with `port`, a dedicated one). Repeating the same call
/// changes nothing.
#[utoipa::path(post, path = "/api/v1/teams/{team}/expose", tag = "api-definitions",
    operation_id = "expose",
    params(("team" = String, Path, description = "The owning team."), DryRunQuery),
    request_body = ExposeInput,
    responses(
        (status = 201, description = "Exposed", body = ApplyResult),
        (status = 200, description = "Already exposed like this, or updated, or (dryRun) the plan", body = ApplyResult),
        (status = 403, description = "The caller may not change this team's API definitions", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The domain or a generated resource's name is taken", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = [])))]
pub async fn expose(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(team): PathParams<String>,
    QueryParams(query): QueryParams<DryRunQuery>,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    let request = pb::ApplyApiDefinitionRequest {
        dry_run: dry_run(query.dry_run.as_deref())?,
        ..apply_request(
            pb::ApiDefinitionSource::Expose,
            pb::ApplyMode::Upsert,
            team,
            body,
        )
    };
    let result = apply(&state, &caller, request).await?;
    respond_result(result)
}

/// Stops exposing: deletes the API definition `expose` created, and its resources.
#[utoipa::path(delete, path = "/api/v1/teams/{team}/expose/{name}", tag = "api-definitions",
    operation_id = "unexpose",
    params(("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The name given to `expose`.")),
    responses(
        (status = 204, description = "No longer exposed"),
        (status = 403, description = "The caller may not change this team's API definitions", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = [])))]
pub async fn unexpose(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    remove(state, caller, team, name, &headers).await
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BootstrapQuery {
    /// The dataplane whose Envoy will serve the definition; optional when the team has one.
    pub dataplane: Option<String>,
    /// `yaml` (default) or `json`.
    pub format: Option<String>,
}

/// An Envoy bootstrap that serves this definition: the bootstrap of the team's dataplane
/// (every dataplane of the team receives the team's API definitions), so `envoy -c` on it
/// serves the definition's listener.
#[utoipa::path(get, path = "/api/v1/teams/{team}/api-definitions/{name}/bootstrap",
    tag = "api-definitions", operation_id = "getApiDefinitionBootstrap",
    params(("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The definition's name."), BootstrapQuery),
    responses((
        status = 200,
        description = "A complete Envoy bootstrap for the team's dataplane",
        content((serde_json::Value = "application/yaml"), (serde_json::Value = "application/json"))
    ),
    (status = 400, description = "The team has several dataplanes (or none): pass `?dataplane=`", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn bootstrap(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<BootstrapQuery>,
) -> Result<Response, Problem> {
    // The definition must be visible to the caller (404 otherwise).
    state
        .config
        .api_definitions
        .clone()
        .get(pb::GetApiDefinitionRequest {
            context: Some(caller.context()),
            team: team.clone(),
            name,
        })
        .await
        .map_err(refused)?;
    let dataplane_name = match query.dataplane.filter(|d| !d.is_empty()) {
        Some(name) => name,
        None => {
            let page = state
                .config
                .resources
                .clone()
                .list(pb::ListResourcesRequest {
                    context: Some(caller.context()),
                    kind: super::resources::proto_kind(flowplane_domain::ResourceKind::Dataplane),
                    team: team.clone(),
                    limit: 2,
                    cursor: String::new(),
                })
                .await
                .map_err(refused)?
                .into_inner();
            match page.items.as_slice() {
                [only] => only.name.clone(),
                [] => {
                    return Err(Problem::field(
                        ErrorCode::ValidationFailed,
                        "dataplane",
                        "the team has no dataplane yet; create one first",
                    ));
                }
                _ => {
                    return Err(Problem::field(
                        ErrorCode::ValidationFailed,
                        "dataplane",
                        "the team has several dataplanes; pass ?dataplane=",
                    ));
                }
            }
        }
    };
    let dataplane =
        super::resources::fetch_dataplane_to_deploy(&state, &caller, team, dataplane_name).await?;
    super::envoy_config::render(&state, &dataplane, query.format.as_deref())
}

// ---- shared by both path forms ----

fn refused(status: tonic::Status) -> Problem {
    Problem::from_status(&status)
}

/// `?dryRun=`: `true` reports what would change and applies nothing.
fn dry_run(raw: Option<&str>) -> Result<bool, Problem> {
    match raw {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Problem::field(
            ErrorCode::ValidationFailed,
            "dryRun",
            "must be `true` or `false`",
        )),
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DryRunQuery {
    /// `true`: report what would change, apply nothing.
    pub dry_run: Option<String>,
}

fn apply_request(
    source: pb::ApiDefinitionSource,
    mode: pb::ApplyMode,
    team: String,
    body: String,
) -> pb::ApplyApiDefinitionRequest {
    pb::ApplyApiDefinitionRequest {
        source: source as i32,
        mode: mode as i32,
        team,
        body,
        ..Default::default()
    }
}

async fn apply(
    state: &AppState,
    caller: &Caller,
    mut request: pb::ApplyApiDefinitionRequest,
) -> Result<pb::ApplyApiDefinitionResponse, Problem> {
    request.context = Some(caller.context());
    Ok(state
        .config
        .api_definitions
        .clone()
        .apply(request)
        .await
        .map_err(refused)?
        .into_inner())
}

async fn list_page(
    state: AppState,
    caller: Caller,
    team: String,
    page: PageQuery,
) -> Result<Response, Problem> {
    let limit = paging::limit(page.limit.as_deref())?;
    let answer = state
        .config
        .api_definitions
        .clone()
        .list(pb::ListApiDefinitionsRequest {
            context: Some(caller.context()),
            team,
            limit,
            cursor: page.cursor.unwrap_or_default(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    let items = answer
        .items
        .into_iter()
        .map(view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(ApiDefinitionList {
        items,
        next_cursor: super::non_empty(answer.next_cursor),
    })
    .into_response())
}

async fn get_one(
    state: AppState,
    caller: Caller,
    team: String,
    name: String,
) -> Result<Response, Problem> {
    let definition = state
        .config
        .api_definitions
        .clone()
        .get(pb::GetApiDefinitionRequest {
            context: Some(caller.context()),
            team,
            name,
        })
        .await
        .map_err(refused)?
        .into_inner();
    respond_definition(StatusCode::OK, Some(definition))
}

async fn replace(
    state: AppState,
    caller: Caller,
    team: String,
    name: String,
    headers: &HeaderMap,
    body: String,
) -> Result<Response, Problem> {
    let request = pb::ApplyApiDefinitionRequest {
        name,
        if_revision: conditional::if_match(headers)?,
        ..apply_request(
            pb::ApiDefinitionSource::Definition,
            pb::ApplyMode::Update,
            team,
            body,
        )
    };
    let result = apply(&state, &caller, request).await?;
    respond_definition(StatusCode::OK, result.definition)
}

async fn remove(
    state: AppState,
    caller: Caller,
    team: String,
    name: String,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let if_revision = conditional::if_match(headers)?;
    state
        .config
        .api_definitions
        .clone()
        .delete(pb::DeleteApiDefinitionRequest {
            context: Some(caller.context()),
            team,
            name,
            if_revision,
        })
        .await
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The document as text; it may be far larger than other bodies (see `body_limit`).
async fn read_document(body: Body) -> Result<String, Problem> {
    let bytes = axum::body::to_bytes(body, IMPORT_BODY_LIMIT_BYTES)
        .await
        .map_err(|_| Problem::payload_too_large(IMPORT_BODY_LIMIT_BYTES))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        Problem::field(
            ErrorCode::MalformedBody,
            "",
            "the document must be UTF-8 text",
        )
    })
}

fn view(definition: pb::ApiDefinition) -> Result<ApiDefinitionView, Problem> {
    let spec: ApiDefinitionSpec = serde_json::from_str(&definition.spec_json).map_err(|e| {
        Problem::internal(format!(
            "config returned an unreadable API definition {}/{}: {e}",
            definition.team, definition.name
        ))
    })?;
    Ok(ApiDefinitionView {
        id: definition.id,
        team: definition.team,
        name: definition.name,
        revision: definition.revision,
        created_at: definition.created_at,
        updated_at: definition.updated_at,
        spec,
        generated_resources: definition
            .generated
            .iter()
            .map(|g| GeneratedResourceView {
                kind: kind_collection(g.kind).to_string(),
                name: g.name.clone(),
                shared: g.shared,
                status: g.status.iter().map(DataplaneStatusView::from).collect(),
            })
            .collect(),
    })
}

fn kind_collection(kind: i32) -> &'static str {
    match pb::ResourceKind::try_from(kind) {
        Ok(pb::ResourceKind::Cluster) => "clusters",
        Ok(pb::ResourceKind::RouteConfig) => "route-configs",
        Ok(pb::ResourceKind::Listener) => "listeners",
        Ok(pb::ResourceKind::Dataplane) => "dataplanes",
        Ok(pb::ResourceKind::Secret) => "secrets",
        _ => "unknown",
    }
}

fn respond_definition(
    status: StatusCode,
    definition: Option<pb::ApiDefinition>,
) -> Result<Response, Problem> {
    let definition =
        definition.ok_or_else(|| Problem::internal("config answered without a definition"))?;
    let (team, name, revision) = (
        definition.team.clone(),
        definition.name.clone(),
        definition.revision,
    );
    let mut response = (status, Json(view(definition)?)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(revision)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if status == StatusCode::CREATED
        && let Ok(value) =
            HeaderValue::from_str(&format!("/api/v1/teams/{team}/api-definitions/{name}"))
    {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

fn respond_result(result: pb::ApplyApiDefinitionResponse) -> Result<Response, Problem> {
    let definition = result
        .definition
        .ok_or_else(|| Problem::internal("config answered without a definition"))?;
    let revision = definition.revision;
    let status = if result.created && !result.dry_run {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = ApplyResult {
        definition: view(definition)?,
        changed: result.changed,
        created: result.created,
        dry_run: result.dry_run,
        changes: result
            .changes
            .into_iter()
            .map(|c| ChangeView {
                op: c.op,
                kind: c.kind,
                name: c.name,
            })
            .collect(),
    };
    let mut response = (status, Json(body)).into_response();
    if !result.dry_run
        && let Ok(value) = HeaderValue::from_str(&etag(revision))
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}
