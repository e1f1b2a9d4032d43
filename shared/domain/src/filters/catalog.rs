//! The HTTP filter types a listener's `httpFilters` accept, described for clients
//! (`GET /api/v1/filter-types`). The list and each type's JSON schema come from the utoipa
//! schema of [`HttpFilter`] itself, so a new filter variant is listed (and its schema is
//! exact) without touching this file; the prose and override facts live in [`FILTER_TYPES`],
//! and a test fails when a variant has no entry there.

use serde_json::{Map, Value};
use utoipa::{PartialSchema, ToSchema};

use super::FilterOverride;
use crate::listener::HttpFilter;

/// What the API says about one filter type beyond its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterTypeFacts {
    /// The `type` tag in `httpFilters[].filter`.
    pub type_name: &'static str,
    /// The filter's name in Envoy when the entry does not name it; `filterOverrides` keys
    /// refer to filters by this name (or the entry's own `name`).
    pub default_name: &'static str,
    pub description: &'static str,
    /// The `filterOverrides` field that replaces this filter's settings for a route or
    /// virtual host, if any.
    pub override_field: Option<&'static str>,
    /// Whether `filterOverrides: {"<name>": {"disabled": true}}` may skip the filter.
    pub can_disable: bool,
}

pub const FILTER_TYPES: [FilterTypeFacts; 15] = [
    FilterTypeFacts {
        type_name: "router",
        default_name: "envoy.filters.http.router",
        description: "Forwards the request as the route says. Always last; appended when the \
                      list does not end with it.",
        override_field: None,
        can_disable: false,
    },
    FilterTypeFacts {
        type_name: "cors",
        default_name: "envoy.filters.http.cors",
        description: "Answers CORS preflights and checks origins. The policy itself is set per \
                      virtual host or route with a `cors` override.",
        override_field: Some("cors"),
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "localRateLimit",
        default_name: "envoy.filters.http.local_ratelimit",
        description: "A token bucket per Envoy; a request without a token gets 429 (or the \
                      configured status). A route may have its own bucket.",
        override_field: Some("localRateLimit"),
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "headerMutation",
        default_name: "envoy.filters.http.header_mutation",
        description: "Adds and removes request and response headers for every request on the \
                      listener; a route may replace the changes.",
        override_field: Some("headerMutation"),
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "rbac",
        default_name: "envoy.filters.http.rbac",
        description: "Ordered allow/deny rules on path, method and headers; a denied request \
                      gets 403. A route may replace the rules.",
        override_field: Some("rbac"),
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "jwtAuth",
        default_name: "envoy.filters.http.jwt_authn",
        description: "Requires a valid JWT on the paths its rules name; a missing or bad token \
                      gets 401. A route may select one of the filter's named requirements.",
        override_field: Some("jwtRequirement"),
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "compressor",
        default_name: "envoy.filters.http.compressor",
        description: "gzip-compresses responses of the listed content types for clients that \
                      send `Accept-Encoding: gzip`. A route may switch it off.",
        override_field: None,
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "healthCheck",
        default_name: "envoy.filters.http.health_check",
        description: "Envoy answers requests for one exact path itself: 200 while serving, 503 \
                      while draining. No upstream is involved.",
        override_field: None,
        can_disable: false,
    },
    FilterTypeFacts {
        type_name: "extAuthz",
        default_name: "envoy.filters.http.ext_authz",
        description: "Asks an HTTP authorization service (a cluster) about each request; a 2xx \
                      answer lets it through, any other answer is returned to the client. A \
                      route may switch it off.",
        override_field: None,
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "globalRateLimit",
        default_name: "envoy.filters.http.ratelimit",
        description: "Limits counted by Flowplane's ratelimit service (in Redis) across every \
                      Envoy of the team, once for everyone or per client address or header \
                      value; a request over any limit gets 429. A route may use its own limits.",
        override_field: Some("globalRateLimit"),
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "credentialInjector",
        default_name: "envoy.filters.http.credential_injector",
        description: "Adds a credential kept in a genericSecret (an API key, a bearer token) to \
                      each request sent upstream, so clients never hold it; rotating the secret \
                      changes what is sent. A route may switch it off.",
        override_field: None,
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "customResponse",
        default_name: "envoy.filters.http.custom_response",
        description: "Replaces upstream responses with the listed statuses (or a whole class) \
                      by a body, status and headers of the platform's choosing. A route may use \
                      its own rules.",
        override_field: Some("customResponse"),
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "extProc",
        default_name: "envoy.filters.http.ext_proc",
        description: "Streams request and response headers (and, if asked, bodies) to a gRPC \
                      processing service (a cluster speaking HTTP/2), which may change them or \
                      answer itself. A route may switch it off.",
        override_field: None,
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "oauth2",
        default_name: "envoy.filters.http.oauth2",
        description: "Redirects users without a session to an OAuth2 identity provider, \
                      exchanges the code for a token (through a cluster) and keeps it in signed \
                      cookies; client secret and signing key are generic secrets. A route may \
                      switch it off.",
        override_field: None,
        can_disable: true,
    },
    FilterTypeFacts {
        type_name: "wasm",
        default_name: "envoy.filters.http.wasm",
        description: "Runs a proxy-wasm plugin (inline, or downloaded through a cluster and \
                      checked by SHA-256) on Envoy's V8 runtime, with its own configuration \
                      string. A route may switch it off.",
        override_field: None,
        can_disable: true,
    },
];

pub fn facts(type_name: &str) -> Option<&'static FilterTypeFacts> {
    FILTER_TYPES.iter().find(|f| f.type_name == type_name)
}

/// One filter type as the API describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterTypeDescription {
    pub facts: FilterTypeFacts,
    /// JSON schema of `httpFilters[].filter` for this type, `type` tag included. `$ref`s point
    /// at `#/components/schemas/<name>`, each found in `referenced_schemas`.
    pub schema: Value,
    /// JSON schema of the override field's value, when the filter has one.
    pub override_schema: Option<Value>,
    /// Every component schema that `schema` and `override_schema` refer to, transitively.
    pub referenced_schemas: Map<String, Value>,
}

/// Every filter type the API accepts, in the order of the `HttpFilter` variants. A variant
/// without facts (a test prevents that) is left out rather than described wrongly.
pub fn describe_all() -> Vec<FilterTypeDescription> {
    let components = component_schemas();
    variant_schemas()
        .into_iter()
        .filter_map(|(type_name, schema)| {
            let facts = *facts(&type_name)?;
            let override_schema = facts.override_field.and_then(override_schema);
            let mut referenced = Map::new();
            collect_refs(&schema, &components, &mut referenced);
            if let Some(over) = &override_schema {
                collect_refs(over, &components, &mut referenced);
            }
            Some(FilterTypeDescription {
                facts,
                schema,
                override_schema,
                referenced_schemas: referenced,
            })
        })
        .collect()
}

/// The `type` tag of each `oneOf` item of the `HttpFilter` schema, with the item.
pub fn variant_schemas() -> Vec<(String, Value)> {
    let schema = to_json(&HttpFilter::schema());
    schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| Some((type_tag(item)?, item.clone())))
        .collect()
}

/// The tag sits in an `allOf` part (newtype variants) or directly in the item.
fn type_tag(item: &Value) -> Option<String> {
    let tag_of = |v: &Value| {
        v["properties"]["type"]["enum"][0]
            .as_str()
            .map(String::from)
    };
    tag_of(item).or_else(|| {
        item["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(tag_of)
    })
}

fn override_schema(field: &str) -> Option<Value> {
    let schema = to_json(&FilterOverride::schema());
    schema["properties"].get(field).cloned()
}

/// Every named schema `HttpFilter` and `FilterOverride` reach, by name.
fn component_schemas() -> Map<String, Value> {
    let mut named = Vec::new();
    HttpFilter::schemas(&mut named);
    FilterOverride::schemas(&mut named);
    named
        .into_iter()
        .map(|(name, schema)| (name, to_json(&schema)))
        .collect()
}

fn collect_refs(value: &Value, components: &Map<String, Value>, found: &mut Map<String, Value>) {
    match value {
        Value::Object(object) => {
            if let Some(name) = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                && !found.contains_key(name)
                && let Some(schema) = components.get(name)
            {
                found.insert(name.to_string(), schema.clone());
                collect_refs(schema, components, found);
            }
            for child in object.values() {
                collect_refs(child, components, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_refs(item, components, found);
            }
        }
        _ => {}
    }
}

fn to_json<T: serde::Serialize>(schema: &T) -> Value {
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_http_filter_variant_has_facts_and_no_facts_are_stale() {
        let tags: Vec<String> = variant_schemas().into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            tags.len(),
            FILTER_TYPES.len(),
            "HttpFilter variants: {tags:?}"
        );
        for tag in &tags {
            assert!(facts(tag).is_some(), "add '{tag}' to FILTER_TYPES");
        }
        for known in FILTER_TYPES {
            assert!(
                tags.iter().any(|t| t == known.type_name),
                "'{}' is no HttpFilter variant",
                known.type_name
            );
        }
    }

    #[test]
    fn every_override_field_exists_on_filter_override() {
        for known in FILTER_TYPES {
            if let Some(field) = known.override_field {
                assert!(override_schema(field).is_some(), "{field}");
            }
        }
    }

    #[test]
    fn every_reference_resolves_within_the_description() {
        let all = describe_all();
        assert_eq!(all.len(), FILTER_TYPES.len());
        for description in all {
            let mut refs = Vec::new();
            gather_ref_names(&description.schema, &mut refs);
            if let Some(over) = &description.override_schema {
                gather_ref_names(over, &mut refs);
            }
            for schema in description.referenced_schemas.values() {
                gather_ref_names(schema, &mut refs);
            }
            for name in refs {
                assert!(
                    description.referenced_schemas.contains_key(&name),
                    "{}: $ref {name} is not included",
                    description.facts.type_name
                );
            }
        }
    }

    #[test]
    fn a_schema_carries_its_type_tag_and_the_filter_options() {
        let limit = describe_all()
            .into_iter()
            .find(|d| d.facts.type_name == "localRateLimit")
            .unwrap();
        assert_eq!(type_tag(&limit.schema).as_deref(), Some("localRateLimit"));
        let options = &limit.referenced_schemas["LocalRateLimitFilter"];
        assert!(options["properties"]["maxTokens"].is_object(), "{options}");
        assert!(limit.override_schema.is_some());
    }

    fn gather_ref_names(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if let Some(name) = object
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.push(name.to_string());
                }
                object.values().for_each(|v| gather_ref_names(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| gather_ref_names(v, out)),
            _ => {}
        }
    }
}
