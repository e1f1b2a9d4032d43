//! The OpenAPI 3.1 document: its frame (info, the bearer security scheme, the problem schema),
//! the standard problem responses added to every operation, and the route that serves it.
//! Paths come from the route table, so the document and the router cannot drift apart.

use std::sync::{Arc, OnceLock};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;
use utoipa::openapi::path::OperationBuilder;
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, LicenseBuilder, OpenApi,
    OpenApiBuilder, Ref, RefOr,
};

use crate::problem::{self, ProblemDocument};
use crate::route_table::{RouteTable, Schemas};

/// The security scheme name operations refer to.
pub const BEARER: &str = "bearerAuth";
/// The session cookie set by login (state-changing calls also need `x-csrf-token`).
pub const SESSION_COOKIE: &str = "sessionCookie";
pub const PATH: &str = "/api-docs/openapi.json";

/// A schema and every schema it references, ready for `components.schemas`.
pub fn schemas_of<T: ToSchema>() -> Schemas {
    let mut schemas = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut schemas);
    schemas
}

/// A reference to a named component schema.
pub fn schema_ref(name: &str) -> RefOr<utoipa::openapi::schema::Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// A response whose body is a problem document.
pub fn problem_response(description: &str) -> ApiResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            problem::CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(schema_ref("Problem")))
                .build(),
        )
        .build()
}

/// The document before any path is added.
pub fn base() -> OpenApi {
    let tags = [
        ("bootstrap", "First run: create the first platform admin."),
        (
            "organizations",
            "Organizations (platform admins) and their teams (organization admins).",
        ),
        (
            "auth",
            "Sessions: login (throttled), logout, who am I, and registration with an invite.",
        ),
        (
            "members",
            "Organization invitations and members (organization admins).",
        ),
        ("tokens", "Personal access tokens."),
        (
            "audit",
            "The audit trail, scoped to the teams the caller may see.",
        ),
        ("clusters", "Upstream clusters."),
        (
            "route-configs",
            "Route configurations (governed by the `routes` scopes).",
        ),
        ("listeners", "Listeners on dataplanes."),
        (
            "api-definitions",
            "The Platform API: API definitions, OpenAPI import and expose, compiled into clusters, route configs and listeners.",
        ),
        (
            "filter-types",
            "The HTTP filter types listeners accept, with their JSON schemas.",
        ),
        (
            "dataplanes",
            "Dataplanes (Envoys registered to a team) and their bootstrap.",
        ),
        (
            "operations",
            "Health, readiness, metrics and this documentation.",
        ),
    ];
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A personal access token (`fp_pat_<id>.<secret>`), a session \
                     (`fp_session_<id>.<secret>`, from login; state-changing calls also need \
                     `x-csrf-token`), or for `POST /api/v1/bootstrap/initialize` the one-time \
                     setup token.",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            SESSION_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The session cookie set by `POST /api/v1/auth/login`. State-changing calls must \
             also send the login's `csrfToken` as `x-csrf-token`.",
            ))),
        );
    for (name, schema) in schemas_of::<ProblemDocument>() {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Flowplane API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The Flowplane control plane's public REST API. Errors are RFC 9457 \
                     `application/problem+json` documents with a stable `code`; every response \
                     carries `x-request-id`.",
                ))
                .license(Some(LicenseBuilder::new().name("Apache-2.0").build()))
                .build(),
        )
        .tags(Some(tags.into_iter().map(|(name, description)| {
            TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build()
        })))
        .components(Some(components.build()))
        .build()
}

/// Adds the problem responses every operation can produce, unless it documents its own.
pub fn finish(openapi: &mut OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let api = path.starts_with("/api/");
        let has_path_params = path.contains('{');
        for (writes, operation) in [
            (false, &mut item.get),
            (true, &mut item.put),
            (true, &mut item.post),
            (true, &mut item.delete),
            (true, &mut item.patch),
        ]
        .into_iter()
        .filter_map(|(writes, op)| op.as_mut().map(|op| (writes, op)))
        {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            if secured && writes {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(csrf_header());
            }
            let has_body = operation.request_body.is_some();
            let has_query = operation
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
            let mut add = |status: &str, description: &str| {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(problem_response(description)));
            };
            if has_body {
                add(
                    "400",
                    "The body is malformed or invalid; `errors` lists each field.",
                );
                add("413", "The body exceeds 1 MiB.");
            } else if has_query && api {
                add("400", "A query parameter is invalid; `errors` names it.");
            }
            if secured {
                add(
                    "401",
                    "The bearer credential is missing, invalid, revoked or expired.",
                );
            }
            if has_path_params && api {
                add("404", "Not found, or not visible to the caller.");
            }
            if api {
                add("503", "The configuration service is unavailable; retry.");
                add(
                    "500",
                    "An internal error; quote the request id when reporting it.",
                );
            }
        }
    }
}

/// The CSRF header every state-changing call made with a session must carry.
fn csrf_header() -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Type};
    ParameterBuilder::new()
        .name(crate::caller::CSRF_HEADER)
        .parameter_in(ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some(
            "With a session (the login cookie or a session bearer token): the login's \
             `csrfToken`; a missing or wrong one is 403. Not used with a personal access token.",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// The serialized document, filled in once the route table is complete (the route serving it
/// is itself in the table, so it must exist before the document does).
#[derive(Clone, Default)]
pub struct Document(Arc<OnceLock<Vec<u8>>>);

impl Document {
    pub fn set(&self, openapi: &OpenApi) {
        match serde_json::to_vec(openapi) {
            Ok(json) => {
                let _ = self.0.set(json);
            }
            Err(e) => tracing::error!(error = %e, "the OpenAPI document does not serialize"),
        }
    }

    fn response(&self) -> Response {
        match self.0.get() {
            Some(json) => (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                json.clone(),
            )
                .into_response(),
            None => {
                problem::Problem::internal("the OpenAPI document was never built").into_response()
            }
        }
    }
}

pub fn routes(table: RouteTable, document: Document) -> RouteTable {
    let operation = OperationBuilder::new()
        .tag("operations")
        .operation_id(Some("getOpenApiDocument"))
        .summary(Some("This OpenAPI 3.1 document"))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The document")
                .content("application/json", ContentBuilder::new().build())
                .build(),
        )
        .build();
    table.operation(HttpMethod::Get, PATH, operation, Vec::new(), move || {
        let document = document.clone();
        async move { document.response() }
    })
}
