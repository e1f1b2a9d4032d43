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
            let query: Vec<&str> = operation
                .parameters
                .iter()
                .flatten()
                .filter(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
                .map(|p| p.name.as_str())
                .collect();
            let has_query = !query.is_empty();
            let has_header = operation.parameters.iter().flatten().any(|p| {
                matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Header)
                    && p.name != crate::caller::CSRF_HEADER
            });
            // A team named in the query may not exist (or not be the caller's to see).
            let names_team = has_path_params || query.contains(&"team");
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
            } else if (has_query || has_header) && api {
                add(
                    "400",
                    "A query parameter or header (such as `If-Match`) is invalid; `errors` names it.",
                );
            }
            if secured {
                add(
                    "401",
                    "The bearer credential is missing, invalid, revoked or expired.",
                );
                add(
                    "403",
                    "The credential may not do this (its scopes do not cover it, or a session \
                     sent no `x-csrf-token` on a state-changing call).",
                );
                add(
                    "429",
                    "Too many failed authentications for this credential or from this address; \
                     retry after `Retry-After` seconds.",
                );
            }
            if names_team && api {
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
        let json = serde_json::to_value(openapi).and_then(|mut doc| {
            merge_closed_compositions(&mut doc);
            serde_json::to_vec(&doc)
        });
        match json {
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

/// Rewrites each `allOf` that has a closed member (`additionalProperties: false`) into the one
/// object it means, and an `allOf` of objects with a `oneOf` into a `oneOf` of merged objects.
///
/// The schema generator composes a body from parts (`team` and `name` beside a kind's spec, a
/// tag beside each variant of a tagged enum), and serde accepts exactly the union of their
/// fields. JSON Schema validates an `allOf` member by member, though, so a closed member
/// refuses the others' fields and no value satisfies the composition: clients generated from
/// the document, and fuzzers, could not build a single valid body.
fn merge_closed_compositions(doc: &mut serde_json::Value) {
    use serde_json::Value;
    // Components first, in place, so a reference resolves to its merged form.
    let names: Vec<String> = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|schemas| schemas.keys().cloned().collect())
        .unwrap_or_default();
    // Each pass settles at least one more level of references; three cover today's nesting.
    for _ in 0..3 {
        for name in &names {
            let Some(components) = doc.pointer("/components/schemas").cloned() else {
                return;
            };
            if let Some(schema) = doc
                .pointer_mut("/components/schemas")
                .and_then(|schemas| schemas.get_mut(name))
            {
                rewrite(schema, &components, 0);
            }
        }
    }
    let Some(components) = doc.pointer("/components/schemas").cloned() else {
        return;
    };
    if let Some(paths) = doc.get_mut("paths") {
        rewrite(paths, &components, 0);
    }
}

/// Rewrites `value` and everything in it (see [`merge_closed_compositions`]).
fn rewrite(value: &mut serde_json::Value, components: &serde_json::Value, depth: usize) {
    use serde_json::Value;
    if depth > 64 {
        return;
    }
    match value {
        Value::Array(items) => {
            for item in items {
                rewrite(item, components, depth + 1);
            }
        }
        Value::Object(map) => {
            for (_, child) in map.iter_mut() {
                rewrite(child, components, depth + 1);
            }
            let Some(Value::Array(members)) = map.get("allOf") else {
                return;
            };
            let resolved: Vec<Value> = members
                .iter()
                .map(|member| resolve(member, components))
                .collect();
            let closed =
                |schema: &Value| schema.get("additionalProperties") == Some(&Value::Bool(false));
            let alternatives: Vec<&Value> = resolved
                .iter()
                .filter(|m| m.get("oneOf").is_some())
                .collect();
            let merged = match alternatives.as_slice() {
                [] if resolved.iter().all(is_object) && resolved.iter().any(closed) => {
                    Some(merge_objects(resolved.iter()))
                }
                [one] => {
                    let others: Vec<&Value> = resolved
                        .iter()
                        .filter(|m| m.get("oneOf").is_none())
                        .collect();
                    let variants: Option<Vec<Value>> = one["oneOf"]
                        .as_array()
                        .map(|variants| variants.iter().map(|v| resolve(v, components)).collect());
                    match variants {
                        Some(variants)
                            if others.iter().all(|o| is_object(o))
                                && variants.iter().all(is_object) =>
                        {
                            let mut merged = serde_json::Map::new();
                            merged.insert(
                                "oneOf".into(),
                                Value::Array(
                                    variants
                                        .iter()
                                        .map(|variant| {
                                            let mut parts = others.clone();
                                            parts.push(variant);
                                            merge_objects(parts.into_iter())
                                        })
                                        .collect(),
                                ),
                            );
                            Some(Value::Object(merged))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(Value::Object(merged)) = merged {
                map.remove("allOf");
                for (key, value) in merged {
                    map.entry(key).or_insert(value);
                }
            }
        }
        _ => {}
    }
}

/// A component reference's target (its own siblings such as `description` dropped), or the
/// schema itself.
fn resolve(schema: &serde_json::Value, components: &serde_json::Value) -> serde_json::Value {
    schema
        .get("$ref")
        .and_then(serde_json::Value::as_str)
        .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
        .and_then(|name| components.get(name))
        .cloned()
        .unwrap_or_else(|| schema.clone())
}

/// A plain object schema: properties, no composition of its own.
fn is_object(schema: &serde_json::Value) -> bool {
    (schema.get("properties").is_some()
        || schema.get("type").and_then(|t| t.as_str()) == Some("object"))
        && ["allOf", "oneOf", "anyOf", "$ref"]
            .iter()
            .all(|key| schema.get(key).is_none())
}

/// One object with every part's properties and required fields; closed if any part was.
fn merge_objects<'a>(parts: impl Iterator<Item = &'a serde_json::Value>) -> serde_json::Value {
    use serde_json::{Map, Value};
    let (mut properties, mut required, mut closed) = (Map::new(), Vec::<Value>::new(), false);
    let mut description = None;
    for part in parts {
        if let Some(own) = part.get("properties").and_then(Value::as_object) {
            for (key, value) in own {
                properties.insert(key.clone(), value.clone());
            }
        }
        for field in part
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !required.contains(field) {
                required.push(field.clone());
            }
        }
        closed |= part.get("additionalProperties") == Some(&Value::Bool(false));
        description = description.or_else(|| part.get("description").cloned());
    }
    let mut merged = Map::new();
    merged.insert("type".into(), Value::String("object".into()));
    if let Some(description) = description {
        merged.insert("description".into(), description);
    }
    merged.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        merged.insert("required".into(), Value::Array(required));
    }
    if closed {
        merged.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(merged)
}
