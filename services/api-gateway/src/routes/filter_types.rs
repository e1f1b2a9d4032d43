//! `GET /api/v1/filter-types[/{type}]`: the HTTP filter types a listener accepts, each with
//! its description, per-route override and JSON schema. Everything comes from the domain's
//! filter catalog, whose schemas are the utoipa schemas of the domain types themselves, so
//! this answer cannot drift from what the API validates. Static: any authenticated caller may
//! read it and no call reaches the configuration service.

use axum::Json;
use flowplane_domain::filters::catalog::{self, FilterTypeDescription};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::extract::PathParams;
use crate::problem::{Problem, ProblemDocument};

/// One HTTP filter type.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterType {
    /// The `type` tag in `httpFilters[].filter`.
    #[serde(rename = "type")]
    #[schema(example = "cors")]
    pub type_name: String,
    /// The filter's Envoy name when its entry sets no `name`; `filterOverrides` keys name
    /// filters this way.
    #[schema(example = "envoy.filters.http.cors")]
    pub default_name: String,
    pub description: String,
    pub per_route_override: PerRouteOverride,
    /// JSON schema of `httpFilters[].filter` for this type, `type` included. `$ref`s point at
    /// `#/components/schemas/<name>` and are all in `referencedSchemas`.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// The component schemas `schema` and the override schema refer to, by name.
    #[schema(value_type = Object)]
    pub referenced_schemas: Map<String, Value>,
}

/// What a route or virtual host may change about the filter through `filterOverrides`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerRouteOverride {
    /// Whether `{"disabled": true}` skips the filter.
    pub disable: bool,
    /// The override field that replaces the filter's settings, if the filter has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "cors")]
    pub field: Option<String>,
    /// JSON schema of that field's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FilterTypeList {
    pub items: Vec<FilterType>,
}

impl From<FilterTypeDescription> for FilterType {
    fn from(d: FilterTypeDescription) -> Self {
        Self {
            type_name: d.facts.type_name.to_string(),
            default_name: d.facts.default_name.to_string(),
            description: d.facts.description.to_string(),
            per_route_override: PerRouteOverride {
                disable: d.facts.can_disable,
                field: d.facts.override_field.map(String::from),
                schema: d.override_schema,
            },
            schema: d.schema,
            referenced_schemas: d.referenced_schemas,
        }
    }
}

/// Lists every HTTP filter type, in the order the API defines them.
#[utoipa::path(
    get,
    path = "/api/v1/filter-types",
    tag = "filter-types",
    operation_id = "listFilterTypes",
    responses((status = 200, description = "The HTTP filter types", body = FilterTypeList)),
    security(("bearerAuth" = []), ("sessionCookie" = []))
)]
pub async fn list(_caller: Caller) -> Json<FilterTypeList> {
    Json(FilterTypeList {
        items: catalog::describe_all()
            .into_iter()
            .map(FilterType::from)
            .collect(),
    })
}

/// Describes one HTTP filter type.
#[utoipa::path(
    get,
    path = "/api/v1/filter-types/{type}",
    tag = "filter-types",
    operation_id = "getFilterType",
    params(("type" = String, Path, description = "The filter's `type` tag, e.g. `cors`")),
    responses(
        (status = 200, description = "The filter type", body = FilterType),
        (status = 404, description = "No such filter type", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = []))
)]
pub async fn get(
    _caller: Caller,
    PathParams(type_name): PathParams<String>,
) -> Result<Json<FilterType>, Problem> {
    catalog::describe_all()
        .into_iter()
        .find(|d| d.facts.type_name == type_name)
        .map(|d| Json(d.into()))
        .ok_or_else(|| Problem::not_found(format!("filter type '{type_name}' not found")))
}
