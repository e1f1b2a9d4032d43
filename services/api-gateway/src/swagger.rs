//! Swagger UI at `/swagger-ui/`, from a vendored `swagger-ui-dist` (see
//! `assets/swagger-ui/README.md`) embedded in the binary: the build machine and many deployment
//! targets have no internet access, and the UI must work offline.

use axum::http::header;
use axum::response::{Redirect, Response};
use utoipa::openapi::HttpMethod;

use crate::extract::PathParams;
use crate::problem::Problem;
use crate::route_table::RouteTable;
use crate::static_files;

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
    let index = static_files::page(
        "getSwaggerUi",
        "Swagger UI for this API",
        "200",
        "The UI's page",
    );
    let redirect = static_files::page(
        "redirectSwaggerUi",
        "Redirects to `/swagger-ui/`",
        "308",
        "To the UI",
    );
    let asset = static_files::asset(
        "getSwaggerUiAsset",
        "A file of the UI",
        "`swagger-ui-bundle.js`, `swagger-ui.css` or `LICENSE`",
        &["text/javascript", "text/css", "text/plain"],
    );
    table
        .operation(HttpMethod::Get, INDEX_PATH, index, Vec::new(), || async {
            static_files::response("text/html; charset=utf-8", INDEX_HTML.as_bytes(), &[])
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
    // Versioned with the binary; a day keeps reloads cheap without pinning stale UIs.
    Ok(static_files::response(
        content_type,
        body,
        &[(header::CACHE_CONTROL, "public, max-age=86400")],
    ))
}
