//! `/healthz`, `/readyz` and `/metrics`, served by the runtime's shared health router and
//! documented here like every other route. Their answers are plain text, errors included.

use axum::middleware::map_response;
use axum::response::Response;
use flowplane_runtime::health::{self, Readiness};
use utoipa::openapi::path::OperationBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, HttpMethod};

use crate::problem::PlainStatus;
use crate::route_table::RouteTable;

pub fn routes(table: RouteTable, readiness: Readiness) -> RouteTable {
    let service =
        health::router(readiness).layer(map_response(|mut response: Response| async move {
            response.extensions_mut().insert(PlainStatus);
            response
        }));
    let text = |description: &str, content_type: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(content_type, ContentBuilder::new().build())
            .build()
    };
    let healthz = OperationBuilder::new()
        .tag("operations")
        .operation_id(Some("getHealth"))
        .summary(Some("Liveness: the process runs"))
        .response("200", text("`ok`", "text/plain"))
        .build();
    let readyz = OperationBuilder::new()
        .tag("operations")
        .operation_id(Some("getReadiness"))
        .summary(Some("Readiness: whether the configuration service answers"))
        .response("200", text("`ready`", "text/plain"))
        .response("503", text("`not ready`", "text/plain"))
        .build();
    let metrics = OperationBuilder::new()
        .tag("operations")
        .operation_id(Some("getMetrics"))
        .summary(Some("Prometheus metrics"))
        .response(
            "200",
            text("The Prometheus text format", "text/plain; version=0.0.4"),
        )
        .build();
    table
        .service(HttpMethod::Get, "/healthz", healthz, service.clone())
        .service(HttpMethod::Get, "/readyz", readyz, service.clone())
        .service(HttpMethod::Get, "/metrics", metrics, service)
}
