//! The control-plane tools an agent calls. Each is one REST call to the api-gateway made with
//! the agent's own bearer token, so the agent can do exactly what its token allows and the
//! authorization decision stays in one place (config). API refusals come back as tool errors
//! carrying the problem document (status, field paths), which an agent can act on.

use axum::http::request::Parts;
use reqwest::Method;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData, RoleServer, ServerHandler, prompt_handler, schemars, tool, tool_handler, tool_router,
};
use serde::Deserialize;
use serde_json::Value;

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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Kind {
    /// The owning team, e.g. `my-org-default`.
    pub team: String,
    /// One of clusters, route-configs, listeners, secrets, dataplanes, api-definitions,
    /// learning-sessions.
    pub kind: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Named {
    /// The owning team.
    pub team: String,
    /// One of clusters, route-configs, listeners, secrets, dataplanes, api-definitions,
    /// learning-sessions.
    pub kind: String,
    /// The resource's name.
    pub name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Create {
    /// The owning team.
    pub team: String,
    /// One of clusters, route-configs, listeners, secrets, dataplanes, api-definitions,
    /// learning-sessions.
    pub kind: String,
    /// The resource as the REST API takes it (JSON object with at least `name`), e.g. a
    /// cluster `{"name": "web", "endpoints": [{"host": "10.0.0.5", "port": 8080}]}`.
    pub resource: Value,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Update {
    /// The owning team.
    pub team: String,
    /// One of clusters, route-configs, listeners, secrets, dataplanes, api-definitions,
    /// learning-sessions.
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// The whole new resource (replaces the current one).
    pub resource: Value,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Team {
    /// The team, e.g. `my-org-default`.
    pub team: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Session {
    /// The owning team.
    pub team: String,
    /// The learning session's name.
    pub session: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SessionChange {
    /// The owning team.
    pub team: String,
    /// The learning session's name.
    pub session: String,
    /// `activate` (start learning from the listener's traffic) or `stop`.
    pub action: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Dataplane {
    /// The owning team.
    pub team: String,
    /// The dataplane's name.
    pub dataplane: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TraceArgs {
    /// The owning team.
    pub team: String,
    /// The request, as `/api/v1/reports/trace` takes it: `dataplane` (name), `listener` (name)
    /// or `port`, `host`, `path` (with query), and optionally `method`, `headers` (object),
    /// `sni`. E.g. `{"dataplane": "edge", "port": 10000, "host": "api.example.com",
    /// "path": "/users/42", "method": "GET"}`.
    pub request: Value,
}

/// The tools, bound to the gateway they act through.
#[derive(Clone)]
pub struct ControlPlane {
    api: Api,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

impl ControlPlane {
    pub fn new(api: Api) -> Self {
        Self {
            api,
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }
}

#[tool_router]
impl ControlPlane {
    #[tool(
        description = "List a team's resources of one kind, with each dataplane's Envoy status (programmed or rejected with Envoy's error)."
    )]
    async fn list_resources(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Kind { team, kind }): Parameters<Kind>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = collection(&team, &kind)?;
        self.api.call(&parts, Method::GET, &path, None).await
    }

    #[tool(description = "Read one resource: its spec, revision and Envoy status.")]
    async fn get_resource(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Named { team, kind, name }): Parameters<Named>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = item(&team, &kind, &name)?;
        self.api.call(&parts, Method::GET, &path, None).await
    }

    #[tool(
        description = "Create a resource. Invalid input is refused with the field paths that are wrong; nothing is written then."
    )]
    async fn create_resource(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Create {
            team,
            kind,
            resource,
        }): Parameters<Create>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = collection(&team, &kind)?;
        self.api
            .call(
                &parts,
                Method::POST,
                &path,
                Some(with_team(resource, &team)),
            )
            .await
    }

    #[tool(description = "Replace a resource with a new version of it.")]
    async fn update_resource(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Update {
            team,
            kind,
            name,
            resource,
        }): Parameters<Update>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = item(&team, &kind, &name)?;
        self.api
            .call(&parts, Method::PUT, &path, Some(with_team(resource, &team)))
            .await
    }

    #[tool(
        description = "Delete a resource. A resource others still reference is refused (409) with the referrers."
    )]
    async fn delete_resource(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Named { team, kind, name }): Parameters<Named>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = item(&team, &kind, &name)?;
        self.api.call(&parts, Method::DELETE, &path, None).await
    }

    #[tool(
        description = "The Envoy bootstrap (JSON) of a dataplane: start Envoy with it to receive the team's configuration. It carries the dataplane's token; treat it as a credential."
    )]
    async fn get_envoy_bootstrap(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Dataplane { team, dataplane }): Parameters<Dataplane>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = format!(
            "{}/envoy-config?format=json",
            item(&team, "dataplanes", &dataplane)?
        );
        self.api.call(&parts, Method::GET, &path, None).await
    }

    #[tool(
        description = "Start or stop a learning session (create one first with create_resource, kind learning-sessions, {\"name\", \"listener\", \"pathPrefix\"}). While active, the listener's traffic teaches Flowplane the API's endpoints and JSON schemas."
    )]
    async fn change_learning_session(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(SessionChange {
            team,
            session,
            action,
        }): Parameters<SessionChange>,
    ) -> Result<CallToolResult, ErrorData> {
        if !matches!(action.as_str(), "activate" | "stop") {
            return Err(ErrorData::invalid_params(
                "action must be activate or stop",
                None,
            ));
        }
        let path = format!("{}/{action}", item(&team, "learning-sessions", &session)?);
        self.api.call(&parts, Method::POST, &path, None).await
    }

    #[tool(
        description = "Where each of a team's listeners sends traffic: one row per route with its listener, port, domains, path match, action and destination clusters (share of traffic and endpoints)."
    )]
    async fn get_route_flows(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Team { team }): Parameters<Team>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = format!("/api/v1/reports/route-flows?team={}", segment(&team)?);
        self.api.call(&parts, Method::GET, &path, None).await
    }

    #[tool(
        description = "Trace where one request would go through a dataplane's Envoys, from the configuration they are served: the listener and filter chain it lands on, every virtual host and route considered with why it did or did not match, the HTTP filters in effect, and the clusters (weights, endpoints) it reaches, or what Envoy answers when nothing matches (404, refused connection). Use it to diagnose a route that does not get its traffic.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn trace_request(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(TraceArgs { team, request }): Parameters<TraceArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = format!("/api/v1/reports/trace?team={}", segment(&team)?);
        self.api
            .call(&parts, Method::POST, &path, Some(request))
            .await
    }

    #[tool(
        description = "Check a team's configuration as a whole: findings with severity (error, warning, info) for routes that can never match because an earlier route takes their traffic, clusters, route configs and secrets nothing uses, listeners clashing on a port or served by no Envoy, and certificates expired or expiring within 30 days. Each names the resource and the field.",
        annotations(read_only_hint = true, idempotent_hint = true)
    )]
    async fn validate_team(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Team { team }): Parameters<Team>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = format!("/api/v1/reports/validate?team={}", segment(&team)?);
        self.api.call(&parts, Method::GET, &path, None).await
    }

    #[tool(
        description = "How many requests each of a team's listeners, routes and clusters served in the last hour, by status class (2xx, 4xx, 5xx...), with the mean duration: for spotting errors and hot routes."
    )]
    async fn get_usage(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Team { team }): Parameters<Team>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = format!("/api/v1/reports/usage?team={}", segment(&team)?);
        self.api.call(&parts, Method::GET, &path, None).await
    }

    #[tool(
        description = "What a learning session learned from traffic, as an OpenAPI 3.1 document: endpoints (path templates), statuses, and JSON schemas of request and response bodies."
    )]
    async fn get_learned_api(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(Session { team, session }): Parameters<Session>,
    ) -> Result<CallToolResult, ErrorData> {
        let path = format!("{}/openapi", item(&team, "learning-sessions", &session)?);
        self.api.call(&parts, Method::GET, &path, None).await
    }
}

#[tool_handler(router = self.tool_router)]
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
                "Flowplane's control plane: list, read, create, update and delete a team's Envoy \
             resources (clusters, route-configs, listeners, secrets, dataplanes, \
             api-definitions, learning-sessions), fetch a dataplane's Envoy bootstrap, and \
             learn an API from live traffic (learning sessions). Everything acts with \
             the caller's own token and scopes. Resources: any team resource as \
             flowplane://teams/{team}/{kind}/{name}. Prompts: guided tasks (expose an \
             upstream, diagnose a rejected configuration, learn an API).",
            )
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

/// The gateway the tools call.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// One REST call with the agent's `Authorization`; the answer becomes the tool's result.
    async fn call(
        &self,
        parts: &Parts,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<CallToolResult, ErrorData> {
        let (status, text) = self.send(parts, method, path, body).await?;
        Ok(if status.is_success() {
            CallToolResult::success(vec![ContentBlock::text(text)])
        } else {
            CallToolResult::error(vec![ContentBlock::text(text)])
        })
    }

    /// One REST call with the agent's `Authorization`: the status and the body (the status
    /// itself when the body is empty).
    pub(crate) async fn send(
        &self,
        parts: &Parts,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(reqwest::StatusCode, String), ErrorData> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(authorization) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            request = request.header(reqwest::header::AUTHORIZATION, authorization.as_bytes());
        }
        if let Some(body) = body {
            request = request.json(&body);
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

/// The REST API wants the team in the body too; the tool's `team` argument is the one used.
fn with_team(mut resource: Value, team: &str) -> Value {
    if let Some(object) = resource.as_object_mut() {
        object.insert("team".into(), Value::from(team));
    }
    resource
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

    #[test]
    fn the_tools_team_goes_into_the_body() {
        let body = with_team(serde_json::json!({"name": "web", "team": "other"}), "mine");
        assert_eq!(body["team"], "mine");
    }
}
