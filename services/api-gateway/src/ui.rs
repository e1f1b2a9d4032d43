//! The web UI at `/ui/`: the static files in the repository's `ui/` folder, embedded in the
//! binary so the gateway serves them offline and with no files to deploy. The UI is a client
//! of this same REST API, signed in with a session; it holds no logic of its own.
//!
//! Its pages allow only their own scripts and styles (`Content-Security-Policy`), so even a
//! value that slipped into the page as markup could not run.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa::PartialSchema;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, HttpMethod, Required};

use crate::extract::PathParams;
use crate::problem::Problem;
use crate::route_table::RouteTable;

const INDEX_HTML: &str = include_str!("../../../ui/index.html");
const APP_JS: &str = include_str!("../../../ui/app.js");
const APP_CSS: &str = include_str!("../../../ui/app.css");

pub const INDEX_PATH: &str = "/ui/";

/// Same-origin scripts, styles and API calls only; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

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
    let index = page("getUi", "The web UI", "200", "The UI's page").build();
    let redirect = page("redirectUi", "Redirects to `/ui/`", "308", "To the UI").build();
    let root = page(
        "redirectRoot",
        "Redirects `/` to the web UI",
        "308",
        "To the UI",
    )
    .build();
    let asset = page("getUiAsset", "A file of the web UI", "200", "The file")
        .parameter(
            ParameterBuilder::new()
                .name("file")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(String::schema()))
                .description(Some("`app.js` or `app.css`")),
        )
        .response("404", crate::openapi::problem_response("No such file"))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The file")
                .content("text/javascript", ContentBuilder::new().build())
                .content("text/css", ContentBuilder::new().build())
                .build(),
        )
        .build();
    table
        .operation(HttpMethod::Get, INDEX_PATH, index, Vec::new(), || async {
            file_response("text/html; charset=utf-8", INDEX_HTML)
        })
        .operation(HttpMethod::Get, "/ui", redirect, Vec::new(), || async {
            Redirect::permanent(INDEX_PATH)
        })
        .operation(HttpMethod::Get, "/", root, Vec::new(), || async {
            Redirect::permanent(INDEX_PATH)
        })
        .operation(
            HttpMethod::Get,
            "/ui/{file}",
            asset,
            Vec::new(),
            serve_asset,
        )
}

async fn serve_asset(PathParams(file): PathParams<String>) -> Result<Response, Problem> {
    match file.as_str() {
        "app.js" => Ok(file_response("text/javascript; charset=utf-8", APP_JS)),
        "app.css" => Ok(file_response("text/css; charset=utf-8", APP_CSS)),
        _ => Err(Problem::not_found(format!("no such file: {file}"))),
    }
}

/// A file of the UI. `no-cache`: the browser revalidates, so a new gateway's UI is seen at
/// once (the files are small).
fn file_response(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}
