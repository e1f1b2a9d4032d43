//! Files embedded in the binary and served as they are (Swagger UI, the web UI): the OpenAPI
//! operations that describe them, and their responses.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::PartialSchema;
use utoipa::openapi::ContentBuilder;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;

/// An operation with one documented answer (a page, or a redirect to it).
pub fn page(operation_id: &str, summary: &str, status: &str, description: &str) -> Operation {
    operation(operation_id, summary, status, description).build()
}

/// `GET …/{file}`: one of a fixed set of files (`files` says which), of `content_types`.
pub fn asset(operation_id: &str, summary: &str, files: &str, content_types: &[&str]) -> Operation {
    let content = content_types
        .iter()
        .fold(ResponseBuilder::new().description("The file"), |r, t| {
            r.content(*t, ContentBuilder::new().build())
        });
    operation(operation_id, summary, "200", "The file")
        .parameter(
            ParameterBuilder::new()
                .name("file")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(String::schema()))
                .description(Some(files)),
        )
        .response("404", crate::openapi::problem_response("No such file"))
        .response("200", content.build())
        .build()
}

fn operation(
    operation_id: &str,
    summary: &str,
    status: &str,
    description: &str,
) -> OperationBuilder {
    OperationBuilder::new()
        .tag("operations")
        .operation_id(Some(operation_id))
        .summary(Some(summary))
        .response(
            status,
            ResponseBuilder::new().description(description).build(),
        )
}

/// A file's `200`, with its content type and `headers`.
pub fn response(
    content_type: &'static str,
    body: &'static [u8],
    headers: &[(HeaderName, &'static str)],
) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
    }
    response
}
