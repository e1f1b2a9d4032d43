//! The native resources — clusters, route-configs, listeners, dataplanes, secrets — at
//! `/api/v1/{kind}` (team in the body or `?team=`) and `/api/v1/teams/{team}/{kind}`.
//!
//! Bodies pass through as text: config parses and validates them, so its field paths reach the
//! caller unchanged and the domain type stays the only definition of each shape. The same five
//! handlers serve every kind; their OpenAPI operations are generated per kind from the domain
//! types' schemas.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowplane_domain::ResourceKind;
use flowplane_domain::cluster::ClusterSpec;
use flowplane_domain::dataplane::DataplaneSpec;
use flowplane_domain::learning_session::LearningSessionSpec;
use flowplane_domain::listener::ListenerSpec;
use flowplane_domain::route_config::RouteConfigSpec;
use flowplane_domain::secret::{SecretSpec, SecretSummary};
use flowplane_proto::resources::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{
    Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, HttpMethod, Ref, RefOr, Required};
use utoipa::{PartialSchema, ToSchema};

use crate::caller::Caller;
use crate::conditional;
use crate::extract::{PathParams, QueryParams, RawBody};
use crate::openapi::{self, problem_response, schema_ref, schemas_of};
use crate::paging;
use crate::problem::Problem;
use crate::resource_json::{self, ResourceEnvelope, etag};
use crate::route_table::{RouteTable, Schemas};
use crate::state::AppState;

/// Registers every resource route of every kind, in both path forms.
pub fn routes(mut table: RouteTable) -> RouteTable {
    for kind in ResourceKind::ALL {
        let doc = KindDoc::of(kind);
        table = canonical_routes(table, &doc);
        table = team_routes(table, &doc);
    }
    table
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    team: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct TeamQuery {
    team: Option<String>,
}

fn canonical_routes(table: RouteTable, doc: &KindDoc) -> RouteTable {
    let kind = doc.kind;
    let collection = format!("/api/v1/{}", kind.collection());
    let item = format!("{collection}/{{name}}");
    table
        .operation(
            HttpMethod::Get,
            &collection,
            doc.operation(Form::Canonical, Verb::List),
            doc.schemas.clone(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  QueryParams(query): QueryParams<ListQuery>| async move {
                let team = query.team.clone().unwrap_or_default();
                list(state, caller, kind, team, query).await
            },
        )
        .operation(
            HttpMethod::Post,
            &collection,
            doc.operation(Form::Canonical, Verb::Create),
            Vec::new(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  QueryParams(query): QueryParams<TeamQuery>,
                  RawBody(body): RawBody| async move {
                create(state, caller, kind, query.team.unwrap_or_default(), body).await
            },
        )
        .operation(
            HttpMethod::Get,
            &item,
            doc.operation(Form::Canonical, Verb::Get),
            Vec::new(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  PathParams(name): PathParams<String>,
                  QueryParams(query): QueryParams<TeamQuery>| async move {
                get(state, caller, kind, query.team.unwrap_or_default(), name).await
            },
        )
        .operation(
            HttpMethod::Put,
            &item,
            doc.operation(Form::Canonical, Verb::Update),
            Vec::new(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  PathParams(name): PathParams<String>,
                  QueryParams(query): QueryParams<TeamQuery>,
                  headers: HeaderMap,
                  RawBody(body): RawBody| async move {
                let team = query.team.unwrap_or_default();
                update(state, caller, kind, team, name, &headers, body).await
            },
        )
        .operation(
            HttpMethod::Delete,
            &item,
            doc.operation(Form::Canonical, Verb::Delete),
            Vec::new(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  PathParams(name): PathParams<String>,
                  QueryParams(query): QueryParams<TeamQuery>,
                  headers: HeaderMap| async move {
                let team = query.team.unwrap_or_default();
                delete(state, caller, kind, team, name, &headers).await
            },
        )
}

fn team_routes(table: RouteTable, doc: &KindDoc) -> RouteTable {
    let kind = doc.kind;
    let collection = format!("/api/v1/teams/{{team}}/{}", kind.collection());
    let item = format!("{collection}/{{name}}");
    table
        .operation(
            HttpMethod::Get,
            &collection,
            doc.operation(Form::Team, Verb::List),
            Vec::new(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  PathParams(team): PathParams<String>,
                  QueryParams(query): QueryParams<ListQuery>| async move {
                list(state, caller, kind, team, query).await
            },
        )
        .operation(
            HttpMethod::Post,
            &collection,
            doc.operation(Form::Team, Verb::Create),
            Vec::new(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  PathParams(team): PathParams<String>,
                  RawBody(body): RawBody| async move {
                create(state, caller, kind, team, body).await
            },
        )
        .operation(
            HttpMethod::Get,
            &item,
            doc.operation(Form::Team, Verb::Get),
            Vec::new(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  PathParams((team, name)): PathParams<(String, String)>| async move {
                get(state, caller, kind, team, name).await
            },
        )
        .operation(
            HttpMethod::Put,
            &item,
            doc.operation(Form::Team, Verb::Update),
            Vec::new(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  PathParams((team, name)): PathParams<(String, String)>,
                  headers: HeaderMap,
                  RawBody(body): RawBody| async move {
                update(state, caller, kind, team, name, &headers, body).await
            },
        )
        .operation(
            HttpMethod::Delete,
            &item,
            doc.operation(Form::Team, Verb::Delete),
            Vec::new(),
            move |State(state): State<AppState>,
                  caller: Caller,
                  PathParams((team, name)): PathParams<(String, String)>,
                  headers: HeaderMap| async move {
                delete(state, caller, kind, team, name, &headers).await
            },
        )
}

// ---- handlers: the same for every kind and both path forms ----

pub(crate) fn proto_kind(kind: ResourceKind) -> i32 {
    let kind = match kind {
        ResourceKind::Cluster => pb::ResourceKind::Cluster,
        ResourceKind::RouteConfig => pb::ResourceKind::RouteConfig,
        ResourceKind::Listener => pb::ResourceKind::Listener,
        ResourceKind::Dataplane => pb::ResourceKind::Dataplane,
        ResourceKind::Secret => pb::ResourceKind::Secret,
        ResourceKind::LearningSession => pb::ResourceKind::LearningSession,
    };
    kind as i32
}

fn refused(status: tonic::Status) -> Problem {
    Problem::from_status(&status)
}

async fn list(
    state: AppState,
    caller: Caller,
    kind: ResourceKind,
    team: String,
    query: ListQuery,
) -> Result<Response, Problem> {
    let limit = paging::limit(query.limit.as_deref())?;
    let answer = state
        .config
        .resources
        .clone()
        .list(pb::ListResourcesRequest {
            context: Some(caller.context()),
            kind: proto_kind(kind),
            team,
            limit,
            cursor: query.cursor.unwrap_or_default(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    let items = answer
        .items
        .iter()
        .map(resource_json::render)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(ResourcePage {
        items,
        next_cursor: super::non_empty(answer.next_cursor),
    })
    .into_response())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourcePage {
    items: Vec<serde_json::Value>,
    next_cursor: Option<String>,
}

async fn create(
    state: AppState,
    caller: Caller,
    kind: ResourceKind,
    team: String,
    body: String,
) -> Result<Response, Problem> {
    let resource = state
        .config
        .resources
        .clone()
        .create(pb::CreateResourceRequest {
            context: Some(caller.context()),
            kind: proto_kind(kind),
            team,
            body_json: body,
        })
        .await
        .map_err(refused)?
        .into_inner();
    let mut response = respond(StatusCode::CREATED, &resource)?;
    // The team-scoped URL, since names are unique only within a team.
    let location = format!(
        "/api/v1/teams/{}/{}/{}",
        resource.team,
        kind.collection(),
        resource.name
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Reads one resource (authorization applies: an invisible one is a 404).
pub(crate) async fn fetch(
    state: &AppState,
    caller: &Caller,
    kind: ResourceKind,
    team: String,
    name: String,
) -> Result<pb::Resource, Problem> {
    read(state, caller, kind, team, name, false).await
}

/// Reads a dataplane to hand out its bootstrap, which carries its credential: config asks
/// for write access to dataplanes (a reader gets 403, an outsider 404).
pub(crate) async fn fetch_dataplane_to_deploy(
    state: &AppState,
    caller: &Caller,
    team: String,
    name: String,
) -> Result<pb::Resource, Problem> {
    read(state, caller, ResourceKind::Dataplane, team, name, true).await
}

async fn read(
    state: &AppState,
    caller: &Caller,
    kind: ResourceKind,
    team: String,
    name: String,
    for_deployment: bool,
) -> Result<pb::Resource, Problem> {
    Ok(state
        .config
        .resources
        .clone()
        .get(pb::GetResourceRequest {
            context: Some(caller.context()),
            kind: proto_kind(kind),
            team,
            name,
            for_deployment,
        })
        .await
        .map_err(refused)?
        .into_inner())
}

async fn get(
    state: AppState,
    caller: Caller,
    kind: ResourceKind,
    team: String,
    name: String,
) -> Result<Response, Problem> {
    let resource = fetch(&state, &caller, kind, team, name).await?;
    respond(StatusCode::OK, &resource)
}

/// Writes a new version of one resource; `if_revision` 0 is unconditional.
pub(crate) async fn write(
    state: &AppState,
    caller: &Caller,
    kind: ResourceKind,
    team: String,
    name: String,
    body: String,
    if_revision: i64,
) -> Result<pb::Resource, Problem> {
    Ok(state
        .config
        .resources
        .clone()
        .update(pb::UpdateResourceRequest {
            context: Some(caller.context()),
            kind: proto_kind(kind),
            team,
            name,
            body_json: body,
            if_revision,
        })
        .await
        .map_err(refused)?
        .into_inner())
}

async fn update(
    state: AppState,
    caller: Caller,
    kind: ResourceKind,
    team: String,
    name: String,
    headers: &HeaderMap,
    body: String,
) -> Result<Response, Problem> {
    let if_revision = conditional::if_match(headers)?;
    let resource = write(&state, &caller, kind, team, name, body, if_revision).await?;
    respond(StatusCode::OK, &resource)
}

async fn delete(
    state: AppState,
    caller: Caller,
    kind: ResourceKind,
    team: String,
    name: String,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let if_revision = conditional::if_match(headers)?;
    state
        .config
        .resources
        .clone()
        .delete(pb::DeleteResourceRequest {
            context: Some(caller.context()),
            kind: proto_kind(kind),
            team,
            name,
            if_revision,
        })
        .await
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The rendered resource with its `ETag`.
pub(crate) fn respond(status: StatusCode, resource: &pb::Resource) -> Result<Response, Problem> {
    let body = resource_json::render(resource)?;
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(resource.revision)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}

// ---- OpenAPI: one set of operations per kind, built from the domain type's schema ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `/api/v1/{kind}`
    Canonical,
    /// `/api/v1/teams/{team}/{kind}`
    Team,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    List,
    Create,
    Get,
    Update,
    Delete,
}

/// The identity fields of a create or update body; the rest is the kind's spec.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
struct ResourceInput {
    /// The owning team. Required on `POST /api/v1/{kind}`; under
    /// `/api/v1/teams/{team}/{kind}` the path names it.
    #[schema(pattern = "^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")]
    team: Option<String>,
    /// Unique within the team: lowercase letters, digits, `-`, `_`, `.`, starting and ending
    /// with a letter or digit, at most 63 characters.
    #[schema(pattern = "^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")]
    name: String,
}

struct KindDoc {
    kind: ResourceKind,
    /// Schema name of one resource (`Cluster`); also prefixes `ClusterInput`, `ClusterList`.
    noun: &'static str,
    plural: &'static str,
    schemas: Schemas,
}

impl KindDoc {
    fn of(kind: ResourceKind) -> Self {
        let (noun, plural, spec) = match kind {
            ResourceKind::Cluster => ("Cluster", "Clusters", schemas_of::<ClusterSpec>()),
            ResourceKind::RouteConfig => (
                "RouteConfig",
                "RouteConfigs",
                schemas_of::<RouteConfigSpec>(),
            ),
            ResourceKind::Listener => ("Listener", "Listeners", schemas_of::<ListenerSpec>()),
            ResourceKind::Dataplane => ("Dataplane", "Dataplanes", schemas_of::<DataplaneSpec>()),
            ResourceKind::Secret => ("Secret", "Secrets", schemas_of::<SecretSpec>()),
            ResourceKind::LearningSession => (
                "LearningSession",
                "LearningSessions",
                schemas_of::<LearningSessionSpec>(),
            ),
        };
        // A secret is written with its material and read back as its summary only.
        let output = match kind {
            ResourceKind::Secret => Some(schemas_of::<SecretSummary>()),
            _ => None,
        };
        let (output_name, output_schema) = match output.as_ref().and_then(|o| o.first()) {
            Some((name, schema)) => (name.clone(), Some(schema.clone())),
            None => (
                spec.first().map(|(n, _)| n.clone()).unwrap_or_default(),
                spec.first().map(|(_, s)| s.clone()),
            ),
        };
        let spec_name = spec
            .first()
            .map(|(name, _)| name.clone())
            .unwrap_or_default();
        let spec_schema = spec.first().map(|(_, schema)| schema.clone());
        let mut schemas = spec;
        schemas.extend(output.unwrap_or_default());
        // The envelope's own dependencies (DataplaneStatus); the envelope itself is merged in.
        ResourceEnvelope::schemas(&mut schemas);
        ResourceInput::schemas(&mut schemas);
        schemas.push((
            format!("{noun}Input"),
            compose(
                &ResourceInput::schema(),
                spec_schema.as_ref(),
                &spec_name,
                format!("A {} as sent on create and update.", kind.singular()),
                Composition::Input,
            ),
        ));
        schemas.push((
            noun.to_string(),
            compose(
                &ResourceEnvelope::schema(),
                output_schema.as_ref(),
                &output_name,
                format!(
                    "A stored {}: the envelope with the spec's fields alongside.",
                    kind.singular()
                ),
                Composition::Output,
            ),
        ));
        schemas.push((
            format!("{noun}List"),
            ObjectBuilder::new()
                .property(
                    "items",
                    ArrayBuilder::new().items(Ref::from_schema_name(noun)),
                )
                .required("items")
                .property(
                    "nextCursor",
                    ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                            Type::String,
                            Type::Null,
                        ]))
                        .description(Some(
                            "Pass as `?cursor=` for the next page; null on the last page.",
                        )),
                )
                .required("nextCursor")
                .into(),
        ));
        Self {
            kind,
            noun,
            plural,
            schemas,
        }
    }

    fn operation(&self, form: Form, verb: Verb) -> Operation {
        let singular = self.kind.singular();
        let plural_text = self.kind.collection().replace('-', " ");
        let team_scoped = form == Form::Team;
        let (id_verb, id_noun, summary) = match verb {
            Verb::List => ("list", self.plural, format!("List {plural_text}")),
            Verb::Create => ("create", self.noun, format!("Create a {singular}")),
            Verb::Get => ("get", self.noun, format!("Read a {singular}")),
            Verb::Update => ("update", self.noun, format!("Replace a {singular}")),
            Verb::Delete => ("delete", self.noun, format!("Delete a {singular}")),
        };
        let operation_id = format!(
            "{id_verb}{}{id_noun}",
            if team_scoped { "Team" } else { "" }
        );
        let mut op = OperationBuilder::new()
            .tag(self.kind.collection())
            .operation_id(Some(operation_id))
            .summary(Some(summary))
            .security(SecurityRequirement::new(
                openapi::BEARER,
                Vec::<String>::new(),
            ));

        if team_scoped {
            op = op.parameter(path_param("team", "The owning team."));
        }
        if verb != Verb::List && verb != Verb::Create {
            op = op.parameter(path_param("name", &format!("The {singular}'s name.")));
        }
        if !team_scoped {
            match verb {
                Verb::List => {
                    op = op.parameter(query_param(
                        "team",
                        "Only this team's resources.",
                        String::schema(),
                    ));
                }
                Verb::Create => {
                    op = op.parameter(query_param(
                        "team",
                        "The owning team, when the body does not name it.",
                        String::schema(),
                    ));
                }
                Verb::Get | Verb::Update | Verb::Delete => {
                    op = op.parameter(query_param(
                        "team",
                        "The owning team; needed when several teams the caller can see use this name.",
                        String::schema(),
                    ));
                }
            }
        }
        if verb == Verb::List {
            op = op
                .parameter(query_param(
                    "limit",
                    "Page size, 1-500 (default 50).",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1))
                        .maximum(Some(500))
                        .into(),
                ))
                .parameter(query_param(
                    "cursor",
                    "`nextCursor` from the previous page.",
                    String::schema(),
                ));
        }
        if matches!(verb, Verb::Update | Verb::Delete) {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("If-Match")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "The `ETag` of the revision this change is based on; the change fails \
                         with 412 if the resource has moved on.",
                    ))
                    .schema(Some(String::schema())),
            );
        }
        if matches!(verb, Verb::Create | Verb::Update) {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(schema_ref(&format!("{}Input", self.noun))))
                            .build(),
                    )
                    .build(),
            ));
        }

        let one = || {
            ContentBuilder::new()
                .schema(Some(schema_ref(self.noun)))
                .build()
        };
        let etag_header = || {
            utoipa::openapi::HeaderBuilder::new()
                .schema(String::schema())
                .description(Some("The revision, quoted: use it in `If-Match`."))
                .build()
        };
        let forbidden =
            format!("The caller can see this team's {plural_text} but may not change them.");
        op = match verb {
            Verb::List => op.response(
                "200",
                ResponseBuilder::new()
                    .description(format!("One page of {plural_text}"))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(schema_ref(&format!("{}List", self.noun))))
                            .build(),
                    )
                    .build(),
            ),
            Verb::Create => op
                .response(
                    "201",
                    ResponseBuilder::new()
                        .description(format!("The {singular} was created"))
                        .content("application/json", one())
                        .header("ETag", etag_header())
                        .header(
                            "Location",
                            utoipa::openapi::HeaderBuilder::new()
                                .schema(String::schema())
                                .description(Some("`/api/v1/teams/{team}/{kind}/{name}`"))
                                .build(),
                        )
                        .build(),
                )
                .response("403", problem_response(&forbidden))
                .response(
                    "409",
                    problem_response(&format!(
                        "A {singular} with this name already exists in the team."
                    )),
                ),
            Verb::Get => op.response(
                "200",
                ResponseBuilder::new()
                    .description(format!("The {singular}"))
                    .content("application/json", one())
                    .header("ETag", etag_header())
                    .build(),
            ),
            Verb::Update => op
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description(format!("The {singular} as stored now"))
                        .content("application/json", one())
                        .header("ETag", etag_header())
                        .build(),
                )
                .response("403", problem_response(&forbidden))
                .response(
                    "409",
                    problem_response("The change conflicts with other resources."),
                )
                .response(
                    "412",
                    problem_response("`If-Match` names an older revision."),
                ),
            Verb::Delete => op
                .response("204", ResponseBuilder::new().description("Deleted").build())
                .response("403", problem_response(&forbidden))
                .response(
                    "409",
                    problem_response(&format!("Other resources still reference this {singular}.")),
                )
                .response(
                    "412",
                    problem_response("`If-Match` names an older revision."),
                ),
        };
        op.build()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Composition {
    /// A request body: the spec's refusal of unknown fields still holds.
    Input,
    /// A response: the envelope's fields win, as in [`resource_json::render`].
    Output,
}

/// One flat object schema of the envelope's and the spec's properties. An `allOf` would be
/// wrong here: the domain specs forbid additional properties, so no object could satisfy both
/// halves.
fn compose(
    envelope: &RefOr<Schema>,
    spec: Option<&RefOr<Schema>>,
    spec_name: &str,
    description: String,
    composition: Composition,
) -> RefOr<Schema> {
    match (envelope, spec) {
        (RefOr::T(Schema::Object(envelope)), Some(RefOr::T(Schema::Object(spec)))) => {
            let mut merged = spec.clone();
            for (key, value) in &envelope.properties {
                merged.properties.insert(key.clone(), value.clone());
            }
            for key in &envelope.required {
                if !merged.required.contains(key) {
                    merged.required.push(key.clone());
                }
            }
            merged.title = None;
            merged.description = Some(description);
            if composition == Composition::Output {
                merged.additional_properties = None;
            }
            RefOr::T(Schema::Object(merged))
        }
        // Not plain objects (never the case today): fall back to composition by reference.
        _ => AllOfBuilder::new()
            .item(envelope.clone())
            .item(Ref::from_schema_name(spec_name))
            .description(Some(description))
            .into(),
    }
}

fn path_param(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(String::schema()))
        .build()
}

fn query_param(
    name: &str,
    description: &str,
    schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}
