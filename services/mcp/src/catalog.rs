//! The control-plane tools, derived from the api-gateway's own OpenAPI document: one tool per
//! REST operation an agent has use for. Its input schema comes from the operation's
//! parameters and request body, its output schema from the success response, its hints from
//! the HTTP method. Nothing is described twice, so a new route or field reaches agents the
//! moment the API documents it, and the tools can never disagree with the REST contract.
//!
//! Left out: signing in and out, registration and first-run bootstrap (a person's steps, not
//! an agent's), health probes, and the `?team=` forms of operations that also exist under
//! `/api/v1/teams/{team}/…` (one tool per operation, always naming its team).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

/// Operations a person performs, not an agent.
const LEFT_OUT: [&str; 6] = [
    "/api/v1/auth/login",
    "/api/v1/auth/logout",
    "/api/v1/auth/register",
    "/api/v1/bootstrap/initialize",
    "/api/v1/bootstrap/status",
    "/api/v1/auth/password",
];

/// Where an operation's parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub location: In,
}

/// The REST call behind one tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub method: reqwest::Method,
    /// The path template, `{name}` for each path parameter.
    pub path: String,
    pub params: Vec<Param>,
    /// The body's content type when the operation takes one.
    pub body: Option<String>,
    /// Whether a success answers with a JSON object the output schema describes.
    pub structured: bool,
}

/// Every tool with the call it makes.
#[derive(Debug, Default)]
pub struct Catalog {
    pub tools: Vec<Tool>,
    pub operations: HashMap<String, Operation>,
}

impl Catalog {
    /// The tools of an OpenAPI 3.x document (the gateway's).
    pub fn from_openapi(doc: &Value) -> Self {
        let components = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut catalog = Catalog::default();
        // Sorted, so tools keep their order (and names) from one start to the next.
        let sorted: BTreeMap<&String, &Value> = paths.iter().collect();
        for (path, item) in sorted {
            if !path.starts_with("/api/v1/")
                || LEFT_OUT.contains(&path.as_str())
                || has_team_form(path, &paths)
            {
                continue;
            }
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, operation) in item {
                let Ok(method) = method.to_ascii_uppercase().parse::<reqwest::Method>() else {
                    continue;
                };
                if let Some((tool, call)) = tool_of(path, method, operation, &components)
                    && !catalog.operations.contains_key(tool.name.as_ref())
                {
                    catalog.operations.insert(tool.name.to_string(), call);
                    catalog.tools.push(tool);
                }
            }
        }
        catalog
    }
}

/// Whether `/api/v1/x…` also exists as `/api/v1/teams/{team}/x…`.
fn has_team_form(path: &str, paths: &Map<String, Value>) -> bool {
    path.strip_prefix("/api/v1/")
        .is_some_and(|rest| paths.contains_key(&format!("/api/v1/teams/{{team}}/{rest}")))
}

fn tool_of(
    path: &str,
    method: reqwest::Method,
    operation: &Value,
    components: &Map<String, Value>,
) -> Option<(Tool, Operation)> {
    let id = operation.get("operationId")?.as_str()?;
    let name = tool_name(id, path.starts_with("/api/v1/teams/{team}"));
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut params = Vec::new();
    for param in operation
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pname = param.get("name").and_then(Value::as_str);
        // A browser session's CSRF header; agents present bearer tokens, which need none.
        if pname.is_some_and(|n| n.eq_ignore_ascii_case("x-csrf-token")) {
            continue;
        }
        let (Some(pname), Some(location)) = (
            param.get("name").and_then(Value::as_str),
            match param.get("in").and_then(Value::as_str) {
                Some("path") => Some(In::Path),
                Some("query") => Some(In::Query),
                Some("header") => Some(In::Header),
                _ => None,
            },
        ) else {
            continue;
        };
        let mut schema = param.get("schema").cloned().unwrap_or_else(|| json!({}));
        if let (Some(object), Some(description)) =
            (schema.as_object_mut(), param.get("description"))
        {
            object
                .entry("description")
                .or_insert_with(|| description.clone());
        }
        properties.insert(pname.to_string(), schema);
        if location == In::Path || param.get("required") == Some(&Value::Bool(true)) {
            required.push(Value::from(pname));
        }
        params.push(Param {
            name: pname.to_string(),
            location,
        });
    }
    let mut body = None;
    if let Some(request_body) = operation.get("requestBody") {
        let content = request_body.get("content").and_then(Value::as_object);
        let (content_type, media) = content.and_then(|c| {
            c.get_key_value("application/json")
                .or_else(|| c.iter().next())
        })?;
        let mut schema = media.get("schema").cloned().unwrap_or_else(|| json!({}));
        if let Some(object) = schema.as_object_mut() {
            let described = request_body
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("The request body, as the REST API takes it.");
            object
                .entry("description")
                .or_insert_with(|| Value::from(described));
        }
        properties.insert("body".into(), schema);
        if request_body.get("required") == Some(&Value::Bool(true)) {
            required.push(Value::from("body"));
        }
        body = Some(content_type.clone());
    }
    let mut input = Map::new();
    input.insert("type".into(), Value::from("object"));
    input.insert("properties".into(), Value::Object(properties));
    input.insert("required".into(), Value::Array(required));
    input.insert("additionalProperties".into(), Value::Bool(false));
    let input = self_contained(input, components);

    let output = success_schema(operation).and_then(|schema| {
        let resolved = match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => components.get(component_name(reference)?)?.clone(),
            None => schema,
        };
        let object = resolved.as_object()?.clone();
        (object.get("type") == Some(&Value::from("object")))
            .then(|| self_contained(object, components))
    });

    let summary = operation.get("summary").and_then(Value::as_str);
    let detail = operation.get("description").and_then(Value::as_str);
    let mut description = [summary, detail]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n\n");
    description.push_str(&format!("\n\n(REST: {method} {path})"));

    let reads = method == reqwest::Method::GET
        || operation
            .get("tags")
            .and_then(Value::as_array)
            .is_some_and(|tags| tags.iter().any(|t| t == "reports"));
    let mut annotations = ToolAnnotations::new()
        .read_only(reads)
        .destructive(!reads && matches!(method, reqwest::Method::PUT | reqwest::Method::DELETE))
        .idempotent(reads || matches!(method, reqwest::Method::PUT | reqwest::Method::DELETE))
        .open_world(false);
    if let Some(summary) = summary {
        annotations.title = Some(summary.to_string());
    }
    let mut tool = Tool::new(name, description, Arc::new(input)).with_annotations(annotations);
    if let Some(summary) = summary {
        tool = tool.with_title(summary);
    }
    let structured = output.is_some();
    if let Some(output) = output {
        tool = tool.with_raw_output_schema(Arc::new(output));
    }
    Some((
        tool,
        Operation {
            method,
            path: path.to_string(),
            params,
            body,
            structured,
        },
    ))
}

/// `listTeamClusters` → `list_clusters` (under `/teams/{team}`, the team is an argument, not
/// part of the name); `getRouteFlows` → `get_route_flows`; `importOpenApi` → `import_openapi`.
fn tool_name(operation_id: &str, team_form: bool) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in operation_id.replace("OpenApi", "Openapi").chars() {
        if (c.is_ascii_uppercase() || c == '_' || c == '-') && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    if team_form && words.len() > 2 && words[1] == "team" {
        words.remove(1);
    }
    let mut name = words.join("_");
    name.truncate(64);
    name
}

/// The JSON schema of a 200/201 answer in `application/json`, when there is one and it is the
/// only content the success takes.
fn success_schema(operation: &Value) -> Option<Value> {
    let responses = operation.get("responses")?.as_object()?;
    let success = responses.get("200").or_else(|| responses.get("201"))?;
    let content = success.get("content")?.as_object()?;
    if content.len() != 1 {
        return None;
    }
    content.get("application/json")?.get("schema").cloned()
}

fn component_name(reference: &str) -> Option<&str> {
    reference.strip_prefix("#/components/schemas/")
}

/// `schema` with every component it reaches copied under `$defs` and its references pointed
/// there, so it stands alone as a tool's schema.
fn self_contained(mut schema: JsonObject, components: &Map<String, Value>) -> JsonObject {
    let mut defs = Map::new();
    let mut pending: Vec<String> = Vec::new();
    let mut root = Value::Object(std::mem::take(&mut schema));
    rewrite_refs(&mut root, &mut pending);
    while let Some(name) = pending.pop() {
        if defs.contains_key(&name) {
            continue;
        }
        let mut component = components.get(&name).cloned().unwrap_or_else(|| json!({}));
        rewrite_refs(&mut component, &mut pending);
        defs.insert(name, component);
    }
    let Value::Object(mut schema) = root else {
        return JsonObject::new();
    };
    if !defs.is_empty() {
        schema.insert("$defs".into(), Value::Object(defs));
    }
    schema
}

fn rewrite_refs(value: &mut Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get_mut("$ref")
                && let Some(name) = component_name(reference).map(str::to_string)
            {
                *reference = format!("#/$defs/{name}");
                found.push(name);
            }
            object.values_mut().for_each(|v| rewrite_refs(v, found));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, found)),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn doc() -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": {
                "/api/v1/clusters": {"get": {"operationId": "listClusters"}},
                "/api/v1/teams/{team}/clusters": {
                    "get": {
                        "operationId": "listTeamClusters",
                        "summary": "List clusters",
                        "parameters": [
                            {"name": "team", "in": "path", "required": true,
                             "schema": {"type": "string"}, "description": "The owning team."},
                            {"name": "cursor", "in": "query", "schema": {"type": "string"}}
                        ],
                        "responses": {"200": {"content": {"application/json":
                            {"schema": {"$ref": "#/components/schemas/ClusterPage"}}}}}
                    },
                    "post": {
                        "operationId": "createTeamCluster",
                        "parameters": [{"name": "team", "in": "path", "schema": {"type": "string"}}],
                        "requestBody": {"required": true, "content": {"application/json":
                            {"schema": {"$ref": "#/components/schemas/Cluster"}}}},
                        "responses": {"201": {"content": {"application/json":
                            {"schema": {"$ref": "#/components/schemas/Cluster"}}}}}
                    }
                },
                "/api/v1/teams/{team}/clusters/{name}": {
                    "delete": {"operationId": "deleteTeamCluster",
                        "parameters": [
                            {"name": "team", "in": "path", "schema": {"type": "string"}},
                            {"name": "name", "in": "path", "schema": {"type": "string"}}],
                        "responses": {"204": {}}}
                },
                "/api/v1/reports/trace": {"post": {"operationId": "traceRequest",
                    "tags": ["reports"], "responses": {}}},
                "/api/v1/auth/login": {"post": {"operationId": "login"}},
                "/healthz": {"get": {"operationId": "healthz"}}
            },
            "components": {"schemas": {
                "ClusterPage": {"type": "object", "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Cluster"}}}},
                "Cluster": {"type": "object", "properties": {
                    "endpoints": {"type": "array", "items": {"$ref": "#/components/schemas/Endpoint"}}}},
                "Endpoint": {"type": "object", "properties": {"port": {"type": "integer"}}},
                "Unused": {"type": "object"}
            }}
        })
    }

    fn tool<'a>(catalog: &'a Catalog, name: &str) -> &'a Tool {
        catalog
            .tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn one_tool_per_operation_agents_use_named_without_the_team_form() {
        let catalog = Catalog::from_openapi(&doc());
        let mut names: Vec<&str> = catalog.tools.iter().map(|t| t.name.as_ref()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "create_cluster",
                "delete_cluster",
                "list_clusters",
                "trace_request"
            ]
        );
        let call = &catalog.operations["list_clusters"];
        assert_eq!(call.path, "/api/v1/teams/{team}/clusters");
        assert_eq!(call.params[0].location, In::Path);
        assert_eq!(call.params[1].location, In::Query);
        assert!(call.structured);
        assert!(!catalog.operations["delete_cluster"].structured);
        assert_eq!(
            catalog.operations["create_cluster"].body.as_deref(),
            Some("application/json")
        );
    }

    #[test]
    fn schemas_stand_alone_with_the_components_they_reach() {
        let catalog = Catalog::from_openapi(&doc());
        let create = tool(&catalog, "create_cluster");
        let input = Value::Object((*create.input_schema).clone());
        assert_eq!(input["required"], json!(["team", "body"]));
        assert_eq!(input["properties"]["body"]["$ref"], "#/$defs/Cluster");
        assert_eq!(
            input["$defs"]["Cluster"]["properties"]["endpoints"]["items"]["$ref"],
            "#/$defs/Endpoint"
        );
        assert!(input["$defs"].get("Unused").is_none());
        let list = tool(&catalog, "list_clusters");
        let output = Value::Object((*list.output_schema.clone().unwrap()).clone());
        assert_eq!(output["type"], "object");
        assert_eq!(
            output["properties"]["items"]["items"]["$ref"],
            "#/$defs/Cluster"
        );
        assert!(output["$defs"]["Endpoint"].is_object());
        assert!(!output.to_string().contains("#/components/"));
    }

    #[test]
    fn hints_follow_the_method_and_reports_only_read() {
        let catalog = Catalog::from_openapi(&doc());
        let hints = |name| tool(&catalog, name).annotations.clone().unwrap();
        let list = hints("list_clusters");
        assert_eq!(
            (list.read_only_hint, list.idempotent_hint),
            (Some(true), Some(true))
        );
        let delete = hints("delete_cluster");
        assert_eq!(
            (delete.read_only_hint, delete.destructive_hint),
            (Some(false), Some(true))
        );
        let create = hints("create_cluster");
        assert_eq!(
            (create.destructive_hint, create.idempotent_hint),
            (Some(false), Some(false))
        );
        assert_eq!(hints("trace_request").read_only_hint, Some(true));
    }
}
