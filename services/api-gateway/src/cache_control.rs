//! `Cache-Control: no-store` on every API response. Token create and rotate, bootstrap, login
//! and invitations return secrets, and every other answer is one tenant's configuration: none
//! of it belongs in a browser's or a proxy's cache. A handler that chose a policy keeps it.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

pub async fn middleware(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    if api {
        response
            .headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}
