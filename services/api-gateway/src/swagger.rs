//! Swagger UI at `/swagger-ui/`, from a vendored `swagger-ui-dist` (see
//! `assets/swagger-ui/README.md`) embedded in the binary: the build machine and many deployment
//! targets have no internet access, and the UI must work offline.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa::PartialSchema;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, HttpMethod, Required};

use crate::extract::PathParams;
use crate::problem::Problem;
use crate::route_table::RouteTable;

const BUNDLE_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");
const LICENSE: &str = include_str!("../assets/swagger-ui/LICENSE");

const INDEX_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Flowplane API</title>
  <link rel="stylesheet" href="swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/api-docs/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true
    });
  </script>
</body>
</html>
"##;

pub const INDEX_PATH: &str = "/swagger-ui/";

pub fn routes(table: RouteTable) -> RouteTable {
    let page = |operation_id: &str, summary: &str, status: &str, description: &str| {
        OperationBuilder::new()
            .tag("operations")
            .operation_id(Some(operation_id))
            .summary(Some(summary))
            .response(
                status,
                ResponseBuilder::new().description(description).build(),
            )
    };
    let index = page(
        "getSwaggerUi",
        "Swagger UI for this API",
        "200",
        "The UI's page",
    )
    .build();
    let redirect = page(
        "redirectSwaggerUi",
        "Redirects to `/swagger-ui/`",
        "308",
        "To the UI",
    )
    .build();
    let asset = page("getSwaggerUiAsset", "A file of the UI", "200", "The file")
        .parameter(
            ParameterBuilder::new()
                .name("file")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(String::schema()))
                .description(Some(
                    "`swagger-ui-bundle.js`, `swagger-ui.css` or `LICENSE`",
                )),
        )
        .response("404", crate::openapi::problem_response("No such file"))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The file")
                .content("text/javascript", ContentBuilder::new().build())
                .content("text/css", ContentBuilder::new().build())
                .content("text/plain", ContentBuilder::new().build())
                .build(),
        )
        .build();
    table
        .operation(HttpMethod::Get, INDEX_PATH, index, Vec::new(), || async {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                INDEX_HTML,
            )
        })
        .operation(
            HttpMethod::Get,
            "/swagger-ui",
            redirect,
            Vec::new(),
            || async { Redirect::permanent(INDEX_PATH) },
        )
        .operation(
            HttpMethod::Get,
            "/swagger-ui/{file}",
            asset,
            Vec::new(),
            serve_asset,
        )
}

async fn serve_asset(PathParams(file): PathParams<String>) -> Result<Response, Problem> {
    let (content_type, body): (&'static str, &'static [u8]) = match file.as_str() {
        "swagger-ui-bundle.js" => ("text/javascript; charset=utf-8", BUNDLE_JS),
        "swagger-ui.css" => ("text/css; charset=utf-8", CSS),
        "LICENSE" => ("text/plain; charset=utf-8", LICENSE.as_bytes()),
        _ => return Err(Problem::not_found(format!("no such file: {file}"))),
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Versioned with the binary; a day keeps reloads cheap without pinning stale UIs.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        body,
    )
        .into_response())
}
