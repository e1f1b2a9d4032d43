//! A tiny HTTP upstream that names itself in every answer, so a scenario can tell which
//! cluster Envoy routed to, and echoes the request's path, host and headers, so a scenario can
//! see what Envoy changed on the way. A `Behaviour` makes it misbehave on purpose (fail every
//! other request, answer its health path with an error, answer slowly) for resilience tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;

/// The path `Behaviour::health_status` answers.
pub const HEALTH_PATH: &str = "/healthz";

/// How an upstream misbehaves. The default is a well-behaved echo server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Answer the 1st, 3rd, 5th… request (health probes not counted) with 503, so a single
    /// retry always succeeds and no retry always fails exactly half of sequential requests.
    pub fail_every_other: bool,
    /// Answer every request (health probes excepted) with this status instead of the echo.
    pub status: Option<u16>,
    /// The status `GET /healthz` answers (default 200).
    pub health_status: Option<u16>,
    /// Hold every answer (health probes excepted) this long.
    pub delay: Option<Duration>,
}

pub struct Upstream {
    pub port: u16,
    pub name: String,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        Self::start_with(name, Behaviour::default()).await
    }

    pub async fn start_with(name: &str, behaviour: Behaviour) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let label = name.to_string();
        let served = Arc::new(AtomicU64::new(0));
        let app = Router::new().fallback(any(move |request: Request| {
            let label = label.clone();
            let served = served.clone();
            async move { answer(&label, &behaviour, &served, request).await }
        }));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            port,
            name: name.to_string(),
            task,
        })
    }
}

async fn answer(
    label: &str,
    behaviour: &Behaviour,
    served: &AtomicU64,
    request: Request,
) -> Response {
    if request.uri().path() == HEALTH_PATH
        && let Some(status) = behaviour.health_status
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, label.to_string()).into_response();
    }
    let count = served.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(delay) = behaviour.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = behaviour.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, format!("{label} answers {status}")).into_response();
    }
    if behaviour.fail_every_other && !count.is_multiple_of(2) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{label} fails request {count}"),
        )
            .into_response();
    }
    axum::Json(serde_json::json!({
        "upstream": label,
        "path": request.uri().path(),
        "host": request.headers().get("host").and_then(|h| h.to_str().ok()),
        "headers": request_headers(&request),
    }))
    .into_response()
}

/// Header names are lower case (HTTP/2 and Envoy normalise them); repeated headers are joined
/// with `,` as HTTP allows.
fn request_headers(request: &Request) -> serde_json::Map<String, serde_json::Value> {
    let mut headers = serde_json::Map::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let joined = match headers.remove(name.as_str()) {
            Some(serde_json::Value::String(before)) => format!("{before},{value}"),
            _ => value,
        };
        headers.insert(name.as_str().to_string(), serde_json::Value::String(joined));
    }
    headers
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
