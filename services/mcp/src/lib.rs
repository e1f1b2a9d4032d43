//! The mcp service: Flowplane's control plane as tools for AI agents, over MCP's Streamable
//! HTTP transport at `/api/v1/mcp/cp`, and a team's own APIs as tools at
//! `/api/v1/mcp/api?team=…`.
//!
//! - [`settings`]: its `FLOWPLANE_*` settings
//! - [`catalog`]: the control-plane tools, one per operation of the gateway's OpenAPI document
//! - [`tools`]: calling them, each one REST call made with the agent's own token
//! - [`resources`], [`prompts`]: team resources by URI, and guided tasks
//! - [`api_tools`]: one tool per route of the team's listeners, called through its Envoy
//!
//! It holds nothing of its own: every tool acts through the api-gateway with the bearer token
//! the agent presented, so an agent can do exactly what its token's scopes allow. Requests
//! without a valid token are refused before any MCP handling (`401`), and so are tokens
//! without the `mcp` scope (`403`): `mcp:read` connects and lists tools, prompts and
//! resources, `mcp:write` (for the team a tool names) calls tools.

pub mod api_tools;
pub mod catalog;
pub mod destination;
pub mod prompts;
pub mod resources;
pub mod settings;
pub mod tools;

pub use settings::McpConfig;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowplane_domain::scopes::{Action, Grants, ScopeResource};
use flowplane_runtime::health::{self, Readiness};
use flowplane_runtime::shutdown::Shutdown;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

/// Where agents connect for the control plane.
pub const MCP_PATH: &str = "/api/v1/mcp/cp";
/// Where agents connect for a team's APIs (`?team=`).
pub const MCP_API_PATH: &str = "/api/v1/mcp/api";

/// Serves MCP (and the health endpoints) until `shutdown`.
pub async fn run(config: McpConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let api = tools::Api::new(&config.api_url);
    let transport = || {
        StreamableHttpServerConfig::default()
            .with_allowed_hosts(config.allowed_hosts.clone())
            .with_json_response(true)
            .with_cancellation_token(cancel.child_token())
    };
    let mcp = StreamableHttpService::new(
        {
            let api = api.clone();
            move || Ok(tools::ControlPlane::new(api.clone()))
        },
        LocalSessionManager::default().into(),
        transport(),
    );
    let mcp_api = StreamableHttpService::new(
        {
            let api = api.clone();
            let destinations = config.tool_destinations.clone();
            move || Ok(api_tools::ApiTools::new(api.clone(), destinations.clone()))
        },
        LocalSessionManager::default().into(),
        transport(),
    );
    let readiness = Readiness::new();
    let app = Router::new()
        .nest_service(MCP_PATH, mcp)
        .nest_service(MCP_API_PATH, mcp_api)
        .layer(axum::middleware::from_fn_with_state(
            Authenticator {
                client: reqwest::Client::new(),
                session_url: format!(
                    "{}/api/v1/auth/session",
                    config.api_url.trim_end_matches('/')
                ),
            },
            authenticate,
        ))
        .merge(health::router(readiness.clone()));
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(addr = %config.addr, path = MCP_PATH, api = %config.api_url, "mcp serving agents");
    readiness.set(true);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.wait().await;
            cancel.cancel();
        })
        .await?;
    Ok(())
}

/// Checks the agent's bearer token with the gateway before any MCP handling.
#[derive(Clone)]
struct Authenticator {
    client: reqwest::Client,
    session_url: String,
}

async fn authenticate(
    State(auth): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(authorization) = request.headers().get(header::AUTHORIZATION).cloned() else {
        return unauthorized("a bearer token (personal access token) is required");
    };
    // The gateway caches verified credentials, so this costs no password hashing per call.
    let answer = auth
        .client
        .get(&auth.session_url)
        .header(reqwest::header::AUTHORIZATION, authorization.as_bytes())
        .send()
        .await;
    let session = match answer {
        Ok(r) if r.status().is_success() => r.json::<Session>().await,
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
            return unauthorized("the token is not valid");
        }
        Ok(r) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the API answered {}", r.status()),
            )
                .into_response();
        }
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the API is unreachable: {e}"),
            )
                .into_response();
        }
    };
    let Ok(session) = session else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the API's session answer was not understood",
        )
            .into_response();
    };
    let grants = Grants::parse(&session.scopes, None);
    if !grants.holds(ScopeResource::Mcp, None, Action::Read) {
        return (
            StatusCode::FORBIDDEN,
            "this token lacks the mcp scope: mcp:read (or team:{team}:mcp:read) to connect and \
             list tools, mcp:write to call them",
        )
            .into_response();
    }
    request.extensions_mut().insert(tools::AgentScopes(grants));
    next.run(request).await
}

/// The part of the gateway's `GET /api/v1/auth/session` answer this service uses.
#[derive(serde::Deserialize)]
struct Session {
    scopes: Vec<String>,
}

fn unauthorized(message: &'static str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
