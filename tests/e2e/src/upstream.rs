//! A tiny HTTP upstream that names itself in every answer, so a scenario can tell which
//! cluster Envoy routed to, and echoes the request's path, host and headers, so a scenario can
//! see what Envoy changed on the way.

use axum::Router;
use axum::extract::Request;
use axum::routing::any;

pub struct Upstream {
    pub port: u16,
    pub name: String,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let label = name.to_string();
        let app = Router::new().fallback(any(move |request: Request| {
            let label = label.clone();
            async move {
                axum::Json(serde_json::json!({
                    "upstream": label,
                    "path": request.uri().path(),
                    "host": request.headers().get("host").and_then(|h| h.to_str().ok()),
                    "headers": request_headers(&request),
                }))
            }
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
