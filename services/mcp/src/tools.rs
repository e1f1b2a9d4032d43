//! The control-plane tools an agent calls: one per REST operation of the api-gateway, from
//! its own OpenAPI document ([`crate::catalog`]). Each call is one REST request made with the
//! agent's own bearer token, so the agent can do exactly what its token allows and the
//! authorization decision stays in one place (config); in front of it, calling a tool takes
//! the `mcp:write` scope. A success is the tool's structured result, described by its output
//! schema; a refusal comes back as a tool error carrying the problem document (status, field
//! paths), which an agent can act on.

use std::sync::Arc;

use axum::http::request::Parts;
use flowplane_domain::scopes::{Action, Grants, ScopeResource};
use reqwest::Method;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, prompt_handler};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::catalog::{Catalog, In, Operation};

/// The resource kinds the tools reach, as they appear in REST paths.
pub const KINDS: [&str; 7] = [
    "clusters",
    "route-configs",
    "listeners",
    "secrets",
    "dataplanes",
    "api-definitions",
    "learning-sessions",
];

/// The tools, bound to the gateway they act through.
#[derive(Clone)]
pub struct ControlPlane {
    api: Api,
    prompt_router: PromptRouter<Self>,
}

impl ControlPlane {
    pub fn new(api: Api) -> Self {
        Self {
            api,
            prompt_router: Self::prompt_router(),
        }
    }

    /// The tool `name`'s REST call with `arguments`, gated by the `mcp` scope.
    async fn call(
        &self,
        parts: &Parts,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallToolResult, ErrorData> {
        let catalog = self.api.catalog().await?;
        let operation = catalog
            .operations
            .get(name)
            .ok_or_else(|| ErrorData::invalid_params(format!("no tool {name}"), None))?;
        let team = arguments.get("team").and_then(Value::as_str);
        if let Some(refusal) = AgentScopes::of(parts).refuse_call(team) {
            return Ok(refusal);
        }
        let request = rest_request(operation, &arguments)?;
        let (status, text) = self
            .api
            .send_with(
                parts,
                operation.method.clone(),
                &request.path,
                &request.headers,
                request.body,
            )
            .await?;
        if !status.is_success() {
            // The problem document (status, field paths) is what an agent acts on.
            return Ok(match serde_json::from_str::<Value>(&text) {
                Ok(problem @ Value::Object(_)) => CallToolResult::structured_error(problem),
                _ => CallToolResult::error(vec![ContentBlock::text(text)]),
            });
        }
        if !operation.structured {
            return Ok(CallToolResult::success(vec![ContentBlock::text(text)]));
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(answer @ Value::Object(_)) => Ok(CallToolResult::structured(answer)),
            _ => Err(ErrorData::internal_error(
                format!("{name}: the API's answer is not the JSON object it documents"),
                None,
            )),
        }
    }
}

/// The REST path (with its query) and body of one tool call.
#[derive(Debug, PartialEq)]
struct RestRequest {
    path: String,
    /// Header parameters the agent set (`If-Match`).
    headers: Vec<(String, String)>,
    body: Option<Body>,
}

fn rest_request(
    operation: &Operation,
    arguments: &Map<String, Value>,
) -> Result<RestRequest, ErrorData> {
    if let Some(unknown) = arguments
        .keys()
        .find(|k| *k != "body" && !operation.params.iter().any(|p| &p.name == *k))
    {
        return Err(ErrorData::invalid_params(
            format!("unknown argument {unknown:?}"),
            None,
        ));
    }
    let mut path = operation.path.clone();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for param in &operation.params {
        let Some(value) = arguments.get(&param.name) else {
            if param.location == In::Path {
                return Err(ErrorData::invalid_params(
                    format!("{} is required", param.name),
                    None,
                ));
            }
            continue;
        };
        match param.location {
            In::Path => {
                let text = scalar(&param.name, value)?;
                path = path.replace(&format!("{{{}}}", param.name), segment(&text)?);
            }
            In::Query => match value {
                Value::Array(items) => {
                    for item in items {
                        query.push((param.name.clone(), scalar(&param.name, item)?));
                    }
                }
                Value::Null => {}
                _ => query.push((param.name.clone(), scalar(&param.name, value)?)),
            },
            In::Header => headers.push((param.name.clone(), scalar(&param.name, value)?)),
        }
    }
    if !query.is_empty() {
        let mut url = reqwest::Url::parse("http://x/")
            .map_err(|e| ErrorData::internal_error(format!("building the query: {e}"), None))?;
        url.query_pairs_mut().extend_pairs(&query);
        path.push('?');
        path.push_str(url.query().unwrap_or_default());
    }
    let body = match (&operation.body, arguments.get("body")) {
        (Some(content_type), Some(Value::String(text))) if content_type != "application/json" => {
            Some(Body::Text(content_type.clone(), text.clone()))
        }
        (Some(_), Some(value)) => Some(Body::Json(value.clone())),
        (None, Some(_)) => {
            return Err(ErrorData::invalid_params("this tool takes no body", None));
        }
        (_, None) => None,
    };
    Ok(RestRequest {
        path,
        headers,
        body,
    })
}

fn scalar(name: &str, value: &Value) -> Result<String, ErrorData> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ErrorData::invalid_params(
            format!("{name} must be a string, number or boolean"),
            None,
        )),
    }
}

/// What a tool sends: JSON, or text in the operation's own content type (a YAML spec).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(Value),
    Text(String, String),
}

/// The agent's scopes, as the gateway verified them for this request.
#[derive(Debug, Clone, Default)]
pub struct AgentScopes(pub Grants);

impl AgentScopes {
    pub(crate) fn of(parts: &Parts) -> Self {
        parts.extensions.get::<Self>().cloned().unwrap_or_default()
    }

    /// Calling a tool takes `mcp:write` for its team (any team's, for tools without one);
    /// config then decides the call itself, as for any REST caller.
    fn may_call(&self, team: Option<&str>) -> bool {
        self.0.holds(ScopeResource::Mcp, team, Action::Write)
    }

    /// `None` when the agent may call a tool of `team`, else the tool error saying why.
    pub(crate) fn refuse_call(&self, team: Option<&str>) -> Option<CallToolResult> {
        if self.may_call(team) {
            return None;
        }
        let held: Vec<String> = self.0.scopes().iter().map(ToString::to_string).collect();
        Some(CallToolResult::structured_error(json!({
            "status": 403,
            "title": "Forbidden",
            "detail": format!(
                "calling tools takes the mcp:write scope{}; this token holds {}",
                team.map(|t| format!(" (or team:{t}:mcp:write)")).unwrap_or_default(),
                if held.is_empty() { "none".to_string() } else { held.join(", ") },
            ),
        })))
    }
}

#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for ControlPlane {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_prompts()
            .enable_resources()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("flowplane", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Flowplane's control plane, one tool per REST operation: a team's Envoy \
                 resources (clusters, route configs, listeners, secrets, dataplanes, API \
                 definitions, learning sessions: list, get, create, update, delete), \
                 OpenAPI import and expose (with dryRun), the filter-type catalog with \
                 schemas, reports (route flows, usage, request trace, validate), learning, \
                 tokens, teams, members and the audit log. Every call acts with the \
                 caller's own token and scopes; refusals carry RFC 9457 problems with field \
                 paths. Resources: any team resource as flowplane://teams/{team}/{kind}/{name}. \
                 Prompts: guided tasks (expose an API, import a spec, diagnose a failing \
                 route or a rejected config, learn an API, rotate a certificate, review a \
                 team's security).",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.api.catalog().await?.tools.clone(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let parts = context
            .extensions
            .get::<Parts>()
            .ok_or_else(|| ErrorData::internal_error("no HTTP request behind this call", None))?;
        let arguments = request.arguments.unwrap_or_default();
        Ok(self.call(parts, &request.name, arguments).await?.into())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            crate::resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let path = crate::resources::rest_path(&request.uri)?;
        let parts = context
            .extensions
            .get::<Parts>()
            .ok_or_else(|| ErrorData::internal_error("no HTTP request behind this call", None))?;
        let (status, text) = self.api.send(parts, Method::GET, &path, None).await?;
        if !status.is_success() {
            return Err(ErrorData::resource_not_found(
                format!("{}: {text}", request.uri),
                None,
            ));
        }
        let contents = ResourceContents::text(text, request.uri).with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}

/// The gateway the tools call, and the tools its OpenAPI document describes (read once, on
/// first use, and shared by every session).
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    catalog: Arc<OnceCell<Arc<Catalog>>>,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            catalog: Arc::default(),
        }
    }

    /// The tools; until the gateway has answered once, each use asks it again.
    pub async fn catalog(&self) -> Result<Arc<Catalog>, ErrorData> {
        self.catalog
            .get_or_try_init(|| async {
                let url = format!("{}/api-docs/openapi.json", self.base);
                let unavailable = |e: &dyn std::fmt::Display| {
                    ErrorData::internal_error(
                        format!("the API's OpenAPI document is unavailable: {e}"),
                        None,
                    )
                };
                let doc: Value = self
                    .client
                    .get(&url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| unavailable(&e))?
                    .json()
                    .await
                    .map_err(|e| unavailable(&e))?;
                Ok(Arc::new(Catalog::from_openapi(&doc)))
            })
            .await
            .cloned()
    }

    /// One REST call with the agent's `Authorization`: the status and the body (the status
    /// itself when the body is empty).
    pub(crate) async fn send(
        &self,
        parts: &Parts,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<(reqwest::StatusCode, String), ErrorData> {
        self.send_with(parts, method, path, &[], body).await
    }

    /// [`Api::send`] with extra headers.
    async fn send_with(
        &self,
        parts: &Parts,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Option<Body>,
    ) -> Result<(reqwest::StatusCode, String), ErrorData> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(authorization) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            request = request.header(reqwest::header::AUTHORIZATION, authorization.as_bytes());
        }
        match body {
            Some(Body::Json(value)) => request = request.json(&value),
            Some(Body::Text(content_type, text)) => {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(text);
            }
            None => {}
        }
        let response = request
            .send()
            .await
            .map_err(|e| ErrorData::internal_error(format!("the API is unreachable: {e}"), None))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            ErrorData::internal_error(format!("the API's answer broke off: {e}"), None)
        })?;
        let text = if text.is_empty() {
            format!("{status}")
        } else {
            text
        };
        Ok((status, text))
    }
}

fn collection(team: &str, kind: &str) -> Result<String, ErrorData> {
    if !KINDS.contains(&kind) {
        return Err(ErrorData::invalid_params(
            format!("kind must be one of {}", KINDS.join(", ")),
            None,
        ));
    }
    Ok(format!("/api/v1/teams/{}/{kind}", segment(team)?))
}

pub(crate) fn item(team: &str, kind: &str, name: &str) -> Result<String, ErrorData> {
    Ok(format!("{}/{}", collection(team, kind)?, segment(name)?))
}

/// A path segment as given: names are plain (letters, digits, `-`, `_`, `.`), so anything
/// that would change the path is refused rather than escaped.
pub(crate) fn segment(value: &str) -> Result<&str, ErrorData> {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value != "."
        && value != "..";
    if plain {
        Ok(value)
    } else {
        Err(ErrorData::invalid_params(
            format!("{value:?} is not a valid team or resource name"),
            None,
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn paths_take_known_kinds_and_plain_names_only() {
        assert_eq!(
            item("acme-default", "clusters", "web").unwrap(),
            "/api/v1/teams/acme-default/clusters/web"
        );
        assert!(collection("acme-default", "users").is_err());
        assert!(item("acme-default", "clusters", "../tokens").is_err());
        assert!(item("acme/x", "clusters", "web").is_err());
        assert!(item("acme", "clusters", "").is_err());
    }

    fn operation() -> Operation {
        Operation {
            method: Method::GET,
            path: "/api/v1/teams/{team}/clusters".into(),
            params: vec![
                crate::catalog::Param {
                    name: "team".into(),
                    location: In::Path,
                },
                crate::catalog::Param {
                    name: "cursor".into(),
                    location: In::Query,
                },
                crate::catalog::Param {
                    name: "kind".into(),
                    location: In::Query,
                },
            ],
            body: None,
            structured: true,
        }
    }

    fn arguments(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn arguments_fill_the_path_and_the_query_and_nothing_else() {
        let request = rest_request(
            &operation(),
            &arguments(json!({"team": "acme", "cursor": "a b&c", "kind": ["x", 2]})),
        )
        .unwrap();
        assert_eq!(
            request.path,
            "/api/v1/teams/acme/clusters?cursor=a+b%26c&kind=x&kind=2"
        );
        assert_eq!(request.body, None);
        for refused in [
            json!({"team": "../tokens"}),
            json!({}),
            json!({"team": "acme", "other": 1}),
            json!({"team": "acme", "body": {}}),
            json!({"team": {"x": 1}}),
        ] {
            assert!(
                rest_request(&operation(), &arguments(refused.clone())).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_text_body_keeps_the_operations_content_type() {
        let mut yaml = operation();
        yaml.body = Some("application/yaml".into());
        let request = rest_request(
            &yaml,
            &arguments(json!({"team": "a", "body": "openapi: 3.1.0"})),
        )
        .unwrap();
        assert_eq!(
            request.body,
            Some(Body::Text(
                "application/yaml".into(),
                "openapi: 3.1.0".into()
            ))
        );
        let mut json_body = operation();
        json_body.body = Some("application/json".into());
        let request = rest_request(
            &json_body,
            &arguments(json!({"team": "a", "body": {"n": 1}})),
        )
        .unwrap();
        assert_eq!(request.body, Some(Body::Json(json!({"n": 1}))));
    }

    #[test]
    fn calling_takes_mcp_write_for_the_tools_team() {
        let scopes = |held: &[&str]| {
            let held: Vec<String> = held.iter().map(|s| s.to_string()).collect();
            AgentScopes(Grants::parse(&held, None))
        };
        assert!(scopes(&["mcp:write"]).may_call(Some("a")));
        assert!(scopes(&["admin:all"]).may_call(None));
        assert!(scopes(&["team:a:mcp:write"]).may_call(Some("a")));
        assert!(scopes(&["team:a:mcp:write"]).may_call(None));
        assert!(!scopes(&["team:a:mcp:write"]).may_call(Some("b")));
        assert!(!scopes(&["mcp:read"]).may_call(Some("a")));
        assert!(!scopes(&["clusters:write"]).may_call(Some("a")));
        assert!(!scopes(&[]).may_call(None));
    }
}
