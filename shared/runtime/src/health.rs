//! The operational HTTP endpoints every service serves: `/healthz` (the process runs),
//! `/readyz` (it can do its job now) and `/metrics` (Prometheus text).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

/// Readiness that a service flips once its dependencies are reachable.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The router with the three endpoints; services merge it into their own or serve it alone.
pub fn router(readiness: Readiness) -> Router {
    let metrics = crate::metrics::handle();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = metrics.as_ref().map(|h| h.render()).unwrap_or_default();
                async move { body }
            }),
        )
}

/// Serves `router` on `addr` until `shutdown` fires.
pub async fn serve(
    addr: std::net::SocketAddr,
    router: Router,
    shutdown: crate::shutdown::Shutdown,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}
