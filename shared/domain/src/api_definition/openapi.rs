//! OpenAPI 3.0 / 3.1 → API definition. The document is read as plain JSON (YAML is converted
//! first) and walked, so a problem is reported at its JSON pointer in the document
//! (`/paths/~1pets/get`), whatever the rest of the document holds.
//!
//! Mapping:
//! - `servers[0].url` (server variables take their defaults) is the upstream; its path is the
//!   base path, prefixed to every route. Path-item and operation `servers` override it.
//! - each operation is one route: `/pets` an exact match, `/pets/{id}` an Envoy URI template,
//!   the operation's method the only method matched. Exact routes come before templates, so
//!   `/pets/mine` wins over `/pets/{id}`.
//!
//! Extensions (`x-flowplane-*`):
//! - `x-flowplane-upstream` (document, path item or operation): an `http(s)://host[:port]`
//!   that replaces the server's origin (the server's path stays the base path).
//! - `x-flowplane-filters` (document or operation): [`ApiFilters`] for the definition or the
//!   route (`cors`, `localRateLimit`, `headerMutation`).
//! - `x-flowplane-route` (operation): `{"name", "timeoutSeconds"}` route overrides.
//! - `x-flowplane-ignore: true` (operation): not routed.
//! - `x-flowplane-name`, `x-flowplane-domain` (document): defaults for the import options.

use serde::Deserialize;
use serde_json::Value;

use super::{ApiDefinitionSpec, ApiFilters, ApiRoute, ListenerIsolation, Upstream};
use crate::error::{Path, ValidationErrors};
use crate::names::name_problem;
use crate::resource::Spec;
use crate::route_config::PathMatchType;

/// Choices the caller makes at import time (query parameters); each overrides the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub listener_isolation: Option<ListenerIsolation>,
    pub port: Option<u32>,
}

/// A bound on what one document may generate (GitHub's full description has about 1,100).
pub const MAX_OPERATIONS: usize = 5_000;

const OPERATIONS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Reads a JSON or YAML document.
pub fn parse_document(text: &str) -> Result<Value, ValidationErrors> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ValidationErrors::single(
            "",
            "the OpenAPI document is empty",
        ));
    }
    let parsed = if trimmed.starts_with('{') {
        serde_json::from_str::<Value>(text).map_err(|e| format!("invalid JSON: {e}"))
    } else {
        serde_yaml_ng::from_str::<Value>(text).map_err(|e| format!("invalid YAML: {e}"))
    };
    match parsed {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(ValidationErrors::single(
            "",
            "the OpenAPI document must be an object",
        )),
        Err(message) => Err(ValidationErrors::single("", message)),
    }
}

/// The definition's name and spec for `doc`.
pub fn to_definition(
    doc: &Value,
    options: &ImportOptions,
) -> Result<(String, ApiDefinitionSpec), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let root = Path::root();
    check_version(doc, &mut errors);
    errors.clone().into_result()?;

    let name = definition_name(doc, options, &mut errors);
    let default_server = Server::of(doc, &root, None, &mut errors);
    let filters =
        extension::<ApiFilters>(doc, &root, "x-flowplane-filters", &mut errors).unwrap_or_default();
    filters.validate(&root.field("x-flowplane-filters"), &mut errors);

    let mut exact = Vec::new();
    let mut templates = Vec::new();
    let mut names = UniqueNames::default();
    match doc.get("paths") {
        Some(Value::Object(paths)) if !paths.is_empty() => {
            for (path, item) in paths {
                let at = root.field("paths").field(&escape(path));
                let routes = routes_of(path, item, &at, default_server.as_ref(), &mut errors);
                for mut route in routes {
                    route.name = Some(names.claim(&route.name.clone().unwrap_or_default()));
                    if route.match_type == PathMatchType::Template {
                        templates.push(route);
                    } else {
                        exact.push(route);
                    }
                }
            }
        }
        _ => errors.add("/paths", "at least one path is required"),
    }
    exact.extend(templates);
    if exact.len() > MAX_OPERATIONS {
        errors.add(
            "/paths",
            format!(
                "{} operations to route; at most {MAX_OPERATIONS} can be imported into one API definition",
                exact.len()
            ),
        );
    }
    if exact.is_empty() && errors.is_empty() {
        errors.add("/paths", "no operation to route");
    }

    let domain = options
        .domain
        .clone()
        .or_else(|| doc_str(doc, "x-flowplane-domain"));
    let listener_isolation = options
        .listener_isolation
        .unwrap_or(if options.port.is_some() {
            ListenerIsolation::Dedicated
        } else {
            ListenerIsolation::Shared
        });
    let spec = ApiDefinitionSpec {
        domain,
        listener_isolation,
        port: options.port,
        routes: exact,
        filters,
    };
    errors.into_result()?;
    // What the document could not have caused (options such as a port without `dedicated`).
    let mut rest = ValidationErrors::new();
    spec.validate(&mut rest);
    rest.into_result()?;
    Ok((name, spec))
}

fn check_version(doc: &Value, errors: &mut ValidationErrors) {
    match doc.get("openapi").and_then(Value::as_str) {
        Some(v) if v.starts_with("3.0") || v.starts_with("3.1") => {}
        Some(v) => errors.add(
            "/openapi",
            format!("OpenAPI {v} is not supported; use 3.0 or 3.1"),
        ),
        None if doc.get("swagger").is_some() => errors.add(
            "/swagger",
            "Swagger 2.0 is not supported; convert the document to OpenAPI 3",
        ),
        None => errors.add("/openapi", "is required (3.0.x or 3.1.x)"),
    }
}

fn definition_name(doc: &Value, options: &ImportOptions, errors: &mut ValidationErrors) -> String {
    if let Some(name) = &options.name {
        if let Err(message) = name_problem(name) {
            errors.add("/name", message);
        }
        return name.clone();
    }
    if let Some(name) = doc_str(doc, "x-flowplane-name") {
        if let Err(message) = name_problem(&name) {
            errors.add("/x-flowplane-name", message);
        }
        return name;
    }
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = slug(title);
    if name.is_empty() {
        errors.add(
            "/info/title",
            "cannot name the API definition; pass ?name= or set x-flowplane-name",
        );
    }
    name
}

/// Where an operation's requests go: the origin and the base path.
#[derive(Debug, Clone)]
struct Server {
    origin: String,
    base_path: String,
}

impl Server {
    /// The server that an object (`doc`, a path item or an operation) declares, if any:
    /// `x-flowplane-upstream` replaces the origin of its `servers[0]` (or of `inherited`).
    fn of(
        object: &Value,
        at: &Path,
        inherited: Option<&Server>,
        errors: &mut ValidationErrors,
    ) -> Option<Server> {
        let declared = object
            .get("servers")
            .and_then(Value::as_array)
            .and_then(|s| s.first())
            .map(|server| {
                (
                    server_url(server),
                    at.field("servers").index(0).field("url"),
                )
            });
        let upstream = doc_str(object, "x-flowplane-upstream");
        if declared.is_none() && upstream.is_none() {
            return inherited.cloned();
        }
        let (base_path, declared_origin) = match &declared {
            Some((url, _)) if url.starts_with('/') || url.is_empty() => {
                (url.trim_end_matches('/').to_string(), None)
            }
            Some((url, url_at)) => match Upstream::parse(url) {
                Ok(up) => (
                    up.path.trim_end_matches('/').to_string(),
                    Some(origin_of(&up)),
                ),
                Err(message) => {
                    errors.add(url_at.as_str(), message);
                    return None;
                }
            },
            None => (
                inherited.map(|s| s.base_path.clone()).unwrap_or_default(),
                None,
            ),
        };
        let origin = match upstream {
            Some(url) => match Upstream::parse(&url) {
                Ok(up) if up.path.is_empty() => origin_of(&up),
                Ok(_) => {
                    errors.add(
                        at.field("x-flowplane-upstream").as_str(),
                        "must be an origin (http://host:port) without a path",
                    );
                    return None;
                }
                Err(message) => {
                    errors.add(at.field("x-flowplane-upstream").as_str(), message);
                    return None;
                }
            },
            None => match declared_origin.or_else(|| inherited.map(|s| s.origin.clone())) {
                Some(origin) => origin,
                None => {
                    let field = declared
                        .map(|(_, url_at)| url_at.as_str().to_string())
                        .unwrap_or_default();
                    errors.add(
                        field,
                        "a relative server URL needs x-flowplane-upstream to name the upstream",
                    );
                    return None;
                }
            },
        };
        Some(Server { origin, base_path })
    }
}

/// A server's URL with its variables replaced by their defaults.
fn server_url(server: &Value) -> String {
    let mut url = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(Value::Object(variables)) = server.get("variables") {
        for (name, variable) in variables {
            if let Some(default) = variable.get("default").and_then(Value::as_str) {
                url = url.replace(&format!("{{{name}}}"), default);
            }
        }
    }
    url
}

fn origin_of(up: &Upstream) -> String {
    let host = if up.host.contains(':') {
        format!("[{}]", up.host)
    } else {
        up.host.clone()
    };
    format!(
        "{}://{host}:{}",
        if up.tls { "https" } else { "http" },
        up.port
    )
}

fn routes_of(
    path: &str,
    item: &Value,
    at: &Path,
    default_server: Option<&Server>,
    errors: &mut ValidationErrors,
) -> Vec<ApiRoute> {
    let Value::Object(item_map) = item else {
        errors.add(at.as_str(), "a path item must be an object");
        return Vec::new();
    };
    if !path.starts_with('/') {
        errors.add(at.as_str(), "a path must start with '/'");
        return Vec::new();
    }
    let template = match template_of(path) {
        Ok(template) => template,
        Err(message) => {
            errors.add(at.as_str(), message);
            return Vec::new();
        }
    };
    let path_server = Server::of(item, at, default_server, errors);
    let mut routes = Vec::new();
    for method in OPERATIONS {
        let Some(operation) = item_map.get(method) else {
            continue;
        };
        let op_at = at.field(method);
        if !operation.is_object() {
            errors.add(op_at.as_str(), "an operation must be an object");
            continue;
        }
        if operation.get("x-flowplane-ignore") == Some(&Value::Bool(true)) {
            continue;
        }
        let Some(server) = Server::of(operation, &op_at, path_server.as_ref(), errors) else {
            // When a server was declared but unusable, its own error already explains this.
            if path_server.is_none() && default_server.is_none() && errors.is_empty() {
                errors.add(
                    op_at.as_str(),
                    "no upstream: declare servers (absolute URL) or x-flowplane-upstream",
                );
            }
            continue;
        };
        let overrides = extension::<RouteOverrides>(operation, &op_at, "x-flowplane-route", errors)
            .unwrap_or_default();
        let filters = extension::<ApiFilters>(operation, &op_at, "x-flowplane-filters", errors)
            .unwrap_or_default();
        filters.validate(&op_at.field("x-flowplane-filters"), errors);
        let name = match overrides.name {
            Some(name) => {
                if let Err(message) = name_problem(&name) {
                    errors.add(
                        op_at.field("x-flowplane-route").field("name").as_str(),
                        message,
                    );
                }
                name
            }
            None => operation
                .get("operationId")
                .and_then(Value::as_str)
                .map(slug)
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| truncate_name(&format!("{method}-{}", slug(path)))),
        };
        let (match_type, value) = match &template {
            Some(t) => (PathMatchType::Template, format!("{}{t}", server.base_path)),
            None => (PathMatchType::Exact, format!("{}{path}", server.base_path)),
        };
        routes.push(ApiRoute {
            name: Some(name),
            path: value,
            match_type,
            methods: vec![method.to_ascii_uppercase()],
            upstream: server.origin.clone(),
            timeout_seconds: overrides.timeout_seconds,
            prefix_rewrite: None,
            filters,
        });
    }
    routes
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RouteOverrides {
    name: Option<String>,
    timeout_seconds: Option<u32>,
}

/// `Ok(None)` for a plain path, `Ok(Some(template))` for one with `{variables}` (renamed where
/// Envoy's variable syntax is stricter than OpenAPI's; a segment with parameters that do not
/// fill it becomes `*`), `Err` for unbalanced braces.
/// Envoy's limit on a URI template variable's name.
const MAX_VARIABLE_LEN: usize = 16;

fn template_of(path: &str) -> Result<Option<String>, String> {
    if !path.contains(['{', '}']) {
        return Ok(None);
    }
    let mut seen = std::collections::HashSet::new();
    let mut segments = Vec::new();
    for segment in path.split('/') {
        if !segment.contains(['{', '}']) {
            segments.push(segment.to_string());
            continue;
        }
        let Some(variable) = segment
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|v| !v.is_empty() && !v.contains(['{', '}']))
        else {
            // Envoy's URI templates bind whole segments only; a segment such as
            // `{base}...{head}` (GitHub's compare) matches any one segment instead.
            if segment.matches('{').count() != segment.matches('}').count() {
                return Err(format!("path segment '{segment}': unbalanced braces"));
            }
            segments.push("*".to_string());
            continue;
        };
        let mut name: String = variable
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            name.insert(0, 'v');
        }
        // Envoy allows 16 characters (`{custom_property_name}` becomes `{custom_property_}`);
        // a clash takes a numbered suffix within them.
        name.truncate(MAX_VARIABLE_LEN);
        let base = name.clone();
        let mut n = 2;
        while !seen.insert(name.clone()) {
            let suffix = n.to_string();
            name = format!(
                "{}{suffix}",
                &base[..base.len().min(MAX_VARIABLE_LEN - suffix.len())]
            );
            n += 1;
        }
        segments.push(format!("{{{name}}}"));
    }
    Ok(Some(segments.join("/")))
}

fn extension<T: serde::de::DeserializeOwned>(
    object: &Value,
    at: &Path,
    key: &str,
    errors: &mut ValidationErrors,
) -> Option<T> {
    let value = object.get(key)?;
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            let mut field = at.field(key).as_str().to_string();
            for segment in e.path().iter() {
                use serde_path_to_error::Segment;
                match segment {
                    Segment::Seq { index } => field.push_str(&format!("/{index}")),
                    Segment::Map { key } => field.push_str(&format!("/{}", escape(key))),
                    Segment::Enum { .. } | Segment::Unknown => {}
                }
            }
            errors.add(field, e.inner().to_string());
            None
        }
    }
}

fn doc_str(object: &Value, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_string)
}

/// RFC 6901: a key containing `/` or `~` in a JSON pointer.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A resource-name-shaped slug of free text (`Swagger Petstore` → `swagger-petstore`).
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    truncate_name(out.trim_matches('-'))
}

/// Route names made unique in one pass: the second `base` becomes `base-2`, the third
/// `base-3`, each suffix taking its room from the end of `base` so the name stays within the
/// length limit (a 63-character base once truncated back onto itself and was retried forever).
#[derive(Default)]
struct UniqueNames {
    taken: std::collections::HashSet<String>,
    /// The next suffix to try for each base.
    next: std::collections::HashMap<String, usize>,
}

impl UniqueNames {
    fn claim(&mut self, base: &str) -> String {
        if self.taken.insert(base.to_string()) {
            return base.to_string();
        }
        let n = self.next.entry(base.to_string()).or_insert(2);
        // Every candidate differs from the ones before it (its suffix does), so this ends
        // within one step per name already taken.
        loop {
            let suffix = format!("-{n}");
            *n += 1;
            let room = crate::names::MAX_NAME_LEN.saturating_sub(suffix.len());
            let candidate = format!("{}{suffix}", truncate_name(&base[..floor_char(base, room)]));
            if self.taken.insert(candidate.clone()) {
                return candidate;
            }
        }
    }
}

/// The largest char boundary of `s` at or below `at`.
fn floor_char(s: &str, at: usize) -> usize {
    (0..=at.min(s.len()))
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0)
}

fn truncate_name(name: &str) -> String {
    let name = &name[..floor_char(name, crate::names::MAX_NAME_LEN)];
    name.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETSTORE_30_JSON: &str = r#"{
      "openapi": "3.0.3",
      "info": {"title": "Swagger Petstore", "version": "1.0.0"},
      "servers": [{"url": "http://{host}:8080/v1", "variables": {"host": {"default": "127.0.0.1"}}}],
      "x-flowplane-filters": {"cors": {"allowOrigins": [{"exact": "https://app.example.com"}]}},
      "paths": {
        "/pets/{petId}": {"get": {"operationId": "showPetById"}, "delete": {}},
        "/pets": {
          "get": {"operationId": "listPets", "x-flowplane-route": {"timeoutSeconds": 3}},
          "post": {"operationId": "createPets", "x-flowplane-filters": {"localRateLimit": {"maxTokens": 2}}},
          "summary": "not an operation"
        },
        "/pets/mine": {"get": {"operationId": "myPets"}},
        "/internal": {"get": {"x-flowplane-ignore": true}}
      }
    }"#;

    const INVENTORY_31_YAML: &str = r#"
openapi: 3.1.0
info:
  title: Inventory
  version: "2"
x-flowplane-upstream: http://inventory.internal:9000
servers:
  - url: /api
paths:
  /items/{item-id}/stock/{item-id2}:
    put:
      operationId: setStock
      responses:
        200:
          description: ok
  /health:
    get:
      servers:
        - url: https://health.example.com
"#;

    fn import(
        text: &str,
        options: &ImportOptions,
    ) -> Result<(String, ApiDefinitionSpec), Vec<String>> {
        parse_document(text)
            .and_then(|doc| to_definition(&doc, options))
            .map_err(|e| {
                e.into_errors()
                    .into_iter()
                    .map(|e| format!("{} {}", e.field, e.message))
                    .collect()
            })
    }

    fn fields(text: &str) -> Vec<String> {
        match import(text, &ImportOptions::default()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .into_iter()
                .map(|e| e.split(' ').next().unwrap_or_default().to_string())
                .collect(),
        }
    }

    #[test]
    fn openapi_30_json_maps_servers_paths_methods_and_extensions() {
        let (name, spec) =
            import(PETSTORE_30_JSON, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(name, "swagger-petstore");
        assert_eq!(spec.listener_isolation, ListenerIsolation::Shared);
        let routes: Vec<(String, PathMatchType, String, String)> = spec
            .routes
            .iter()
            .map(|r| {
                (
                    r.name.clone().unwrap_or_default(),
                    r.match_type,
                    r.methods.join(","),
                    r.path.clone(),
                )
            })
            .collect();
        // Exact matches first, then templates; within each, path then method order.
        assert_eq!(
            routes,
            [
                (
                    "listpets".into(),
                    PathMatchType::Exact,
                    "GET".into(),
                    "/v1/pets".into()
                ),
                (
                    "createpets".into(),
                    PathMatchType::Exact,
                    "POST".into(),
                    "/v1/pets".into()
                ),
                (
                    "mypets".into(),
                    PathMatchType::Exact,
                    "GET".into(),
                    "/v1/pets/mine".into()
                ),
                (
                    "showpetbyid".into(),
                    PathMatchType::Template,
                    "GET".into(),
                    "/v1/pets/{petId}".into()
                ),
                (
                    "delete-pets-petid".into(),
                    PathMatchType::Template,
                    "DELETE".into(),
                    "/v1/pets/{petId}".into()
                ),
            ]
        );
        assert!(
            spec.routes
                .iter()
                .all(|r| r.upstream == "http://127.0.0.1:8080")
        );
        assert_eq!(spec.routes[0].timeout_seconds, Some(3));
        assert_eq!(
            spec.routes[1]
                .filters
                .local_rate_limit
                .as_ref()
                .map(|l| l.max_tokens),
            Some(2)
        );
        assert!(spec.filters.cors.is_some());
    }

    #[test]
    fn openapi_31_yaml_with_upstream_override_and_renamed_template_variables() {
        let options = ImportOptions {
            name: Some("inventory-v2".into()),
            domain: Some("inventory.example.com".into()),
            listener_isolation: None,
            port: Some(18001),
        };
        let (name, spec) = import(INVENTORY_31_YAML, &options).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(name, "inventory-v2");
        assert_eq!(spec.listener_isolation, ListenerIsolation::Dedicated);
        assert_eq!(spec.domain.as_deref(), Some("inventory.example.com"));
        assert_eq!(spec.routes.len(), 2);
        let health = &spec.routes[0];
        assert_eq!(health.path, "/health");
        assert_eq!(health.upstream, "https://health.example.com:443");
        let stock = &spec.routes[1];
        assert_eq!(stock.path, "/api/items/{item_id}/stock/{item_id2}");
        assert_eq!(stock.methods, ["PUT"]);
        assert_eq!(stock.upstream, "http://inventory.internal:9000");
    }

    #[test]
    fn invalid_documents_point_at_the_problem() {
        assert_eq!(fields(r#"{"swagger":"2.0","paths":{}}"#), ["/swagger"]);
        assert_eq!(fields(r#"{"openapi":"4.0.0"}"#), ["/openapi"]);
        assert_eq!(
            fields(
                r#"{"openapi":"3.0.0","info":{"title":"t"},"servers":[{"url":"http://h:1"}],"paths":{"/pets":{"get":"nope"}}}"#
            ),
            ["/paths/~1pets/get"]
        );
        assert_eq!(
            fields(
                r#"{"openapi":"3.0.0","info":{"title":"t"},"servers":[{"url":"http://h:1"}],"paths":{"/files/{name}.json}":{"get":{}}}}"#
            ),
            ["/paths/~1files~1{name}.json}"]
        );
        assert_eq!(
            fields(
                r#"{"openapi":"3.0.0","info":{"title":"t"},"servers":[{"url":"/rel"}],"paths":{"/a":{"get":{}}}}"#
            ),
            ["/servers/0/url"]
        );
        assert_eq!(
            fields(
                r#"{"openapi":"3.1.0","info":{"title":"t"},"servers":[{"url":"http://h:1"}],
                "paths":{"/a":{"post":{"x-flowplane-filters":{"localRateLimit":{"maxTokens":0}},"x-flowplane-route":{"retries":1}}}}}"#
            ),
            [
                "/paths/~1a/post/x-flowplane-route/retries",
                "/paths/~1a/post/x-flowplane-filters/localRateLimit/maxTokens"
            ]
        );
        assert_eq!(
            fields(r#"{"openapi":"3.0.0","info":{"title":"t"},"paths":{}}"#),
            ["/paths"]
        );
        assert_eq!(fields("openapi: [unclosed"), [""]);
    }

    #[test]
    fn a_port_without_dedicated_isolation_is_refused() {
        let options = ImportOptions {
            listener_isolation: Some(ListenerIsolation::Shared),
            port: Some(18002),
            ..ImportOptions::default()
        };
        let errors = import(PETSTORE_30_JSON, &options).err().unwrap_or_default();
        assert!(errors.iter().any(|e| e.starts_with("/port ")), "{errors:?}");
    }

    #[test]
    fn long_colliding_names_become_unique_in_one_pass() {
        // GitHub's description has operationIds that agree for far more than 63 characters.
        let long = "a".repeat(80);
        let mut paths = serde_json::Map::new();
        for i in 0..1_000 {
            paths.insert(
                format!("/things/{i}"),
                serde_json::json!({"get": {"operationId": format!("{long}{i}")}}),
            );
        }
        let doc = serde_json::json!({"openapi": "3.1.0", "info": {"title": "t"},
            "servers": [{"url": "http://127.0.0.1:8080"}], "paths": paths});
        let (_, spec) = to_definition(&doc, &ImportOptions::default()).expect("imports");
        let names: std::collections::HashSet<_> =
            spec.routes.iter().filter_map(|r| r.name.clone()).collect();
        assert_eq!(names.len(), 1_000);
        assert!(
            names
                .iter()
                .all(|n| n.len() <= crate::names::MAX_NAME_LEN && name_problem(n).is_ok())
        );
        let mut unique = UniqueNames::default();
        let base = "b".repeat(63);
        assert_eq!(unique.claim(&base), base);
        assert_eq!(unique.claim(&base), format!("{}-2", "b".repeat(61)));
        assert_eq!(unique.claim(&base), format!("{}-3", "b".repeat(61)));
        // A name ending in a multi-byte character at the limit is cut on a character boundary.
        assert_eq!(
            truncate_name(&format!("{}é", "c".repeat(62))),
            "c".repeat(62)
        );
    }

    #[test]
    fn templates_fit_envoys_variable_rules() {
        // A segment a parameter does not fill matches any one segment.
        assert_eq!(
            template_of("/repos/{owner}/{repo}/compare/{basehead}...{head}").unwrap(),
            Some("/repos/{owner}/{repo}/compare/*".into())
        );
        assert_eq!(
            template_of("/files/{name}.json").unwrap(),
            Some("/files/*".into())
        );
        // Long names are cut to Envoy's 16 characters and stay distinct.
        assert_eq!(
            template_of("/a/{custom_property_name}/{custom_property_value}").unwrap(),
            Some("/a/{custom_property_}/{custom_property2}".into())
        );
    }
}
