//! The API tools at `/api/v1/mcp/api?team=…`: one tool per route of the team's listeners
//! that sends traffic upstream, so an agent can call the team's APIs through its Envoy as
//! any client would. The tools are the team's route flows (`/api/v1/reports/route-flows`,
//! read with the agent's token, so it takes `reports:read`), listed afresh on every call: a
//! route added a moment ago is a tool now.
//!
//! A call goes to the listener: the dataplane's `gatewayHost` when it has one, else the
//! listener's address (loopback for `0.0.0.0`), with the route's first named domain as the
//! `Host`. The agent's Flowplane token is never sent upstream, and only the path, query and
//! body are the agent's to choose.

use std::sync::Arc;

use axum::http::request::Parts;
use reqwest::Method;

use crate::destination::DestinationPolicy;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};

use crate::tools::{AgentScopes, Api, segment};

/// The most of an upstream's answer handed to the agent; no more is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The tools of one team's routes.
#[derive(Clone)]
pub struct ApiTools {
    api: Api,
    upstream: reqwest::Client,
    destinations: DestinationPolicy,
}

/// One route an agent may call.
#[derive(Debug, Clone, PartialEq)]
struct RouteTool {
    name: String,
    description: String,
    /// Where the listener is reached: the dataplane's gateway host and the listener's port.
    host: String,
    port: u16,
    host_header: Option<String>,
    path_type: String,
    path_value: String,
    methods: Vec<String>,
}

impl ApiTools {
    pub fn new(api: Api, destinations: DestinationPolicy) -> Self {
        Self {
            api,
            // An upstream's redirect is the agent's to follow, not ours; a listener that does
            // not answer does not hold the agent (or this service) for long.
            upstream: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(CALL_TIMEOUT)
                .build()
                .unwrap_or_default(),
            destinations,
        }
    }

    /// The team's routes as tools, read with the agent's token.
    async fn route_tools(&self, parts: &Parts) -> Result<Vec<RouteTool>, ErrorData> {
        let team = team_of(parts)?;
        let (status, text) = self
            .api
            .send(
                parts,
                Method::GET,
                &format!("/api/v1/reports/route-flows?team={team}"),
                None,
            )
            .await?;
        if !status.is_success() {
            return Err(ErrorData::invalid_params(
                format!("cannot read team {team}'s routes (needs reports:read): {text}"),
                None,
            ));
        }
        let flows: Value = serde_json::from_str(&text)
            .map_err(|e| ErrorData::internal_error(format!("route flows: {e}"), None))?;
        let hosts = self.gateway_hosts(parts, team).await;
        Ok(tools_of(&flows, &hosts))
    }

    /// Each dataplane's `gatewayHost`, by id, where the token may read dataplanes.
    async fn gateway_hosts(&self, parts: &Parts, team: &str) -> Map<String, Value> {
        let path = format!("/api/v1/teams/{team}/dataplanes?limit=500");
        let Ok((status, text)) = self.api.send(parts, Method::GET, &path, None).await else {
            return Map::new();
        };
        let page: Value = if status.is_success() {
            serde_json::from_str(&text).unwrap_or_default()
        } else {
            Value::Null
        };
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| Some((d["id"].as_str()?.to_string(), d["gatewayHost"].clone())))
            .filter(|(_, host)| host.is_string())
            .collect()
    }
}

/// The team the session is about: `?team=` on the MCP URL.
fn team_of(parts: &Parts) -> Result<&str, ErrorData> {
    let team = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("team="))
        .ok_or_else(|| ErrorData::invalid_params("connect to /api/v1/mcp/api?team=<team>", None))?;
    segment(team)
}

/// One tool per route that sends traffic upstream (forward or weighted), named after its
/// listener and route.
fn tools_of(flows: &Value, gateway_hosts: &Map<String, Value>) -> Vec<RouteTool> {
    let mut tools: Vec<RouteTool> = Vec::new();
    for row in flows["items"].as_array().into_iter().flatten() {
        if !matches!(row["action"].as_str(), Some("forward" | "weighted")) {
            continue;
        }
        let text = |key: &str| row[key].as_str().unwrap_or_default().to_string();
        let listener_address = text("address");
        let host = row["dataplaneId"]
            .as_str()
            .and_then(|id| gateway_hosts.get(id))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| match listener_address.as_str() {
                "0.0.0.0" | "::" | "" => "127.0.0.1".to_string(),
                other => other.to_string(),
            });
        let port = row["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_default();
        let host_header = row["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|d| !d.contains('*'))
            .map(str::to_string);
        let path_type = row["path"]["type"].as_str().unwrap_or("prefix").to_string();
        let path_value = row["path"]["value"].as_str().unwrap_or("/").to_string();
        let methods: Vec<String> = row["methods"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect();
        let clusters: Vec<&str> = row["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["cluster"].as_str())
            .collect();
        let mut name = tool_name(&text("listener"), &text("route"));
        if tools.iter().any(|t| t.name == name) {
            name = format!("{}_{}", &name[..name.len().min(60)], tools.len());
        }
        let description = format!(
            "Calls {} {path_type} `{path_value}` on listener {} ({}), which routes to {}. \
             Answers the upstream's status and body.",
            if methods.is_empty() {
                "any method on".to_string()
            } else {
                methods.join("/")
            },
            text("listener"),
            host_header.as_deref().unwrap_or("any host"),
            clusters.join(", ")
        );
        tools.push(RouteTool {
            name,
            description,
            host,
            port,
            host_header,
            path_type,
            path_value,
            methods,
        });
    }
    tools
}

/// `<listener>__<route>`, in the characters MCP clients accept, at most 64 of them.
fn tool_name(listener: &str, route: &str) -> String {
    let raw = format!("{listener}__{route}");
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    name
}

fn input_schema(tool: &RouteTool) -> Arc<Map<String, Value>> {
    let methods: Vec<&str> = if tool.methods.is_empty() {
        vec!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    } else {
        tool.methods.iter().map(String::as_str).collect()
    };
    let schema = json!({
        "type": "object",
        "properties": {
            "method": {"type": "string", "enum": methods, "default": methods[0]},
            "path": {"type": "string", "description": format!(
                "The request path, with its query string; it must match the route ({} `{}`).",
                tool.path_type, tool.path_value)},
            "body": {"description": "A JSON body to send (as application/json)."}
        },
        "required": ["path"]
    });
    Arc::new(schema.as_object().cloned().unwrap_or_default())
}

impl RouteTool {
    /// The path the agent asked for, when the route would take it: a path, not a URL, under
    /// the route's prefix or equal to its exact path (Envoy judges regex and template
    /// matches itself).
    fn checked_path<'a>(&self, path: &'a str) -> Result<&'a str, ErrorData> {
        let only_path = path.split(['?', '#']).next().unwrap_or_default();
        let fits = match self.path_type.as_str() {
            "prefix" => only_path.starts_with(&self.path_value),
            "exact" => only_path == self.path_value,
            _ => true,
        };
        if !path.starts_with('/') || path.starts_with("//") || !fits {
            return Err(ErrorData::invalid_params(
                format!(
                    "path must be a path matching {} `{}`",
                    self.path_type, self.path_value
                ),
                None,
            ));
        }
        Ok(path)
    }
}

impl ServerHandler for ApiTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "flowplane-api",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "The team's APIs, one tool per route, called through the team's Envoy as any \
                 client would.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let parts = parts_of(&context)?;
        let tools = self
            .route_tools(parts)
            .await?
            .iter()
            .map(|t| Tool::new(t.name.clone(), t.description.clone(), input_schema(t)))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let parts = parts_of(&context)?;
        if let Some(refusal) = AgentScopes::of(parts).refuse_call(Some(team_of(parts)?)) {
            return Ok(refusal.into());
        }
        let tools = self.route_tools(parts).await?;
        let tool = tools
            .iter()
            .find(|t| t.name == request.name)
            .ok_or_else(|| ErrorData::invalid_params(format!("no tool {}", request.name), None))?;
        let arguments = request.arguments.unwrap_or_default();
        let path = arguments.get("path").and_then(Value::as_str).unwrap_or("/");
        let path = tool.checked_path(path)?;
        let method = arguments
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or(tool.methods.first().map_or("GET", String::as_str));
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| ErrorData::invalid_params("method is not an HTTP method", None))?;
        // Checked, then called at the checked address: no second lookup can move it.
        let target = self
            .destinations
            .resolve(&tool.host, tool.port)
            .await
            .map_err(|refused| ErrorData::invalid_params(refused, None))?;
        let host_header = tool
            .host_header
            .clone()
            .unwrap_or_else(|| format!("{}:{}", tool.host, tool.port));
        let mut call = self
            .upstream
            .request(method, format!("http://{target}{path}"))
            .header(reqwest::header::HOST, host_header);
        if let Some(body) = arguments.get("body") {
            call = call.json(body);
        }
        let answer = call.send().await.map_err(|e| {
            ErrorData::internal_error(format!("the listener is unreachable: {e}"), None)
        })?;
        let status = answer.status();
        let mut answer = answer;
        let mut bytes = Vec::new();
        while bytes.len() < MAX_ANSWER_BYTES {
            match answer.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(ErrorData::internal_error(
                        format!("the answer broke off: {e}"),
                        None,
                    ));
                }
            }
        }
        // The rest of a longer answer is never read: dropping the response closes it.
        let body = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_ANSWER_BYTES)]);
        let text = format!("HTTP {}\n{body}", status.as_u16());
        let content = vec![ContentBlock::text(text)];
        Ok(if status.is_success() {
            CallToolResult::success(content)
        } else {
            CallToolResult::error(content)
        }
        .into())
    }
}

fn parts_of(context: &RequestContext<RoleServer>) -> Result<&Parts, ErrorData> {
    context
        .extensions
        .get::<Parts>()
        .ok_or_else(|| ErrorData::internal_error("no HTTP request behind this call", None))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn flows() -> Value {
        json!({"items": [
            {"listener": "edge", "address": "0.0.0.0", "port": 10000, "dataplaneId": "dp1",
             "domains": ["*", "api.example.com"], "route": "users",
             "path": {"type": "prefix", "value": "/users"}, "methods": ["GET"],
             "action": "forward", "destinations": [{"cluster": "users"}]},
            {"listener": "edge", "address": "10.0.0.9", "port": 10001,
             "domains": ["*"], "route": "api#1", "path": {"type": "exact", "value": "/"},
             "action": "directResponse", "destinations": []},
            {"listener": "internal", "address": "10.0.0.9", "port": 10001,
             "domains": ["*"], "route": "api#2", "path": {"type": "exact", "value": "/health"},
             "action": "weighted", "destinations": [{"cluster": "a"}, {"cluster": "b"}]}
        ]})
    }

    #[test]
    fn routes_that_go_upstream_become_tools_aimed_at_their_listener() {
        let hosts: Map<String, Value> = [("dp1".to_string(), json!("gw.example.internal"))]
            .into_iter()
            .collect();
        let tools = tools_of(&flows(), &hosts);
        assert_eq!(tools.len(), 2, "the direct response is no tool");
        assert_eq!(tools[0].name, "edge__users");
        assert_eq!(
            (tools[0].host.as_str(), tools[0].port),
            ("gw.example.internal", 10000)
        );
        assert_eq!(tools[0].host_header.as_deref(), Some("api.example.com"));
        assert_eq!(tools[1].name, "internal__api_2");
        assert_eq!((tools[1].host.as_str(), tools[1].port), ("10.0.0.9", 10001));
        assert_eq!(tools[1].host_header, None);
    }

    #[test]
    fn only_paths_the_route_takes_are_sent() {
        let tools = tools_of(&flows(), &Map::new());
        assert_eq!(
            (tools[0].host.as_str(), tools[0].port),
            ("127.0.0.1", 10000),
            "0.0.0.0 is reached on loopback"
        );
        assert!(tools[0].checked_path("/users/7?x=1").is_ok());
        assert!(tools[0].checked_path("/admin").is_err());
        assert!(tools[0].checked_path("http://evil.example/users").is_err());
        assert!(tools[0].checked_path("//evil.example/users").is_err());
        assert!(tools[1].checked_path("/health").is_ok());
        assert!(tools[1].checked_path("/health/x").is_err());
    }
}
