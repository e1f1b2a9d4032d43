//! api-gateway: Flowplane's public REST API (`/api/v1`). It owns nothing persistent: it
//! authenticates callers, forwards each request to the config service over gRPC with the
//! caller's principal, and maps the answer to HTTP. Every decision (authorization, validation,
//! storage) is config's.
//!
//! - `config`: the gateway's `FLOWPLANE_*` settings
//! - `state`: what handlers share
//! - `config_service`: the lazily connected gRPC clients to config
//! - `auth`: bearer credentials, the session cookie and the verified-credential cache
//! - `login_throttle`: failed-login counters per account and address (Redis across replicas)
//! - `caller`: extractors for the caller and the request context sent to config
//! - `request_id`: `x-request-id` echo/generation, and finalizing every response
//! - `problem`: RFC 9457 errors and the single `ErrorCode` → HTTP status mapping
//! - `body_limit`: 1 MiB request bodies, more for OpenAPI imports
//! - `cache_control`: `no-store` on every API response (secrets and tenant config)
//! - `extract`: bodies, JSON, query and path parameters that fail as problems
//! - `paging`, `conditional`: list paging and `If-Match`
//! - `resource_json`: how a stored resource looks on the wire
//! - `routes`: the handlers, one module per area
//! - `route_table`: one table driving both the router and the OpenAPI paths
//! - `openapi`, `swagger`: the OpenAPI 3.1 document and the embedded Swagger UI
//! - `ui`: the web UI (the repository's `ui/` files, embedded)
//! - `static_files`: how both serve and document their embedded files
//! - `http_metrics`: per-route request metrics

mod auth;
mod body_limit;
mod cache_control;
mod caller;
mod client_address;
mod conditional;
mod config;
mod config_service;
mod extract;
mod http_metrics;
mod login_throttle;
mod openapi;
mod paging;
mod problem;
mod request_id;
mod resource_json;
mod route_table;
mod routes;
mod state;
mod static_files;
mod swagger;
mod ui;

#[cfg(test)]
mod fake_config;
#[cfg(test)]
mod tests;

pub use config::ApiGatewayConfig;
pub use state::AppState;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::from_fn;
use flowplane_runtime::bus::AuthNotices;
use flowplane_runtime::health::Readiness;
use flowplane_runtime::shutdown::Shutdown;
use tower_http::trace::TraceLayer;

use crate::config_service::ConfigService;
use crate::problem::Problem;
use crate::request_id::RequestId;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// The whole HTTP surface: `/api/v1/**`, the OpenAPI document, Swagger UI, `/healthz`,
/// `/readyz`, `/metrics`, and a problem+json 404 for everything else.
pub fn router(state: AppState) -> Router {
    build(state).0
}

/// The router and every (method, path) it serves, as recorded by the route table.
fn build(state: AppState) -> (Router, utoipa::openapi::OpenApi, Vec<(Method, String)>) {
    let document = openapi::Document::default();
    let (router, mut openapi, routes) = routes::table(&state, document.clone()).split();
    openapi::finish(&mut openapi);
    document.set(&openapi);
    let router = router
        .fallback(unknown_route)
        // Layers run outermost-last: request id → trace → body limit → metrics → handler.
        .layer(from_fn(http_metrics::middleware))
        .layer(from_fn(cache_control::middleware))
        .layer(from_fn(body_limit::middleware))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(span)
                // Failures are logged once, with their cause, by `problem::finalize`.
                .on_failure(()),
        )
        .layer(from_fn(request_id::middleware))
        .layer(axum::middleware::from_fn_with_state(
            state.trusted_proxies.clone(),
            client_address::middleware,
        ))
        .with_state(state);
    (router, openapi, routes)
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("no route for {method} {}", uri.path()))
}

fn span(request: &Request) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(RequestId::as_str)
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http",
        otel.name = %format!("{} {}", request.method(), request.uri().path()),
        otel.kind = "server",
        method = %request.method(),
        path = request.uri().path(),
        request_id,
        user_id = tracing::field::Empty,
    );
    // A caller that traces (a client, an Envoy in front) gets this request in its trace.
    flowplane_runtime::telemetry::set_parent(
        &span,
        &flowplane_runtime::telemetry::extract(request.headers()),
    );
    span
}

/// Binds `config.api_addr` and serves until `shutdown`, hearing token notices over NATS when
/// `config.nats` is set.
pub async fn run(config: ApiGatewayConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let notices = match &config.nats {
        Some(nats) => Some(AuthNotices::nats(nats, &config.nats_prefix).await?),
        None => {
            tracing::info!(
                "FLOWPLANE_NATS_URL is not set: tokens revoked through other gateways stop working here when their cache entry expires"
            );
            None
        }
    };
    run_with_notices(config, notices, shutdown).await
}

/// [`run`] with the notice channel supplied (`flowplane up` shares an in-process one with
/// config).
pub async fn run_with_notices(
    config: ApiGatewayConfig,
    notices: Option<AuthNotices>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut state = AppState::new(&config)?;
    if let Some(notices) = notices {
        state = state.with_notices(notices);
    }
    let listener = tokio::net::TcpListener::bind(config.api_addr)
        .await
        .with_context(|| format!("binding the REST API to {}", config.api_addr))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        config = %config.config_url,
        "api-gateway listening"
    );
    serve(listener, state, shutdown).await
}

/// Serves on an already bound listener (for callers that bind port 0 and need the address),
/// keeping readiness in step with whether config answers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let watcher = tokio::spawn(watch_readiness(
        state.config.clone(),
        state.readiness.clone(),
        shutdown.clone(),
    ));
    let listener_task = match state.notices.clone() {
        Some(notices) => Some(auth::listen_for_notices(notices, state.auth.clone()).await?),
        None => None,
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.wait())
        .await;
    watcher.abort();
    if let Some(task) = listener_task {
        task.abort();
    }
    served.context("serving the REST API")
}

/// Ready while config answers; probed often until it first does, then now and then.
async fn watch_readiness(config: ConfigService, readiness: Readiness, shutdown: Shutdown) {
    loop {
        let ready = match config.probe().await {
            Ok(()) => true,
            Err(status) => {
                if readiness.is_ready() {
                    tracing::warn!(code = ?status.code(), message = status.message(), "config stopped answering");
                } else {
                    tracing::debug!(code = ?status.code(), message = status.message(), "config not answering yet");
                }
                false
            }
        };
        if ready && !readiness.is_ready() {
            tracing::info!("config answers; ready");
        }
        readiness.set(ready);
        let pause = if ready {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(500)
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.clone().wait() => return,
        }
    }
}
