//! Request body limits: [`crate::BODY_LIMIT_BYTES`] everywhere, except OpenAPI imports, whose
//! documents can be tens of MB. A body announced larger than its limit is refused before it
//! is read; one that turns out larger fails while being read (both become 413 problems).

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;
use crate::routes::api_definitions::IMPORT_BODY_LIMIT_BYTES;

/// The one route that takes large bodies.
const IMPORT_PATH: &str = "/api/v1/api-definitions/from-openapi";

fn limit_for(path: &str) -> usize {
    if path == IMPORT_PATH {
        IMPORT_BODY_LIMIT_BYTES
    } else {
        crate::BODY_LIMIT_BYTES
    }
}

pub async fn middleware(request: Request, next: Next) -> Response {
    let limit = limit_for(request.uri().path());
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|length| length > limit) {
        return Problem::payload_too_large(limit).into_response();
    }
    let (parts, body) = request.into_parts();
    let limited = Body::new(http_body_util::Limited::new(body, limit));
    next.run(Request::from_parts(parts, limited)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_import_route_takes_large_bodies() {
        assert_eq!(limit_for(IMPORT_PATH), IMPORT_BODY_LIMIT_BYTES);
        assert_eq!(limit_for("/api/v1/clusters"), crate::BODY_LIMIT_BYTES);
    }
}
