//! The web UI at `/ui/`: the static files in the repository's `ui/` folder, embedded in the
//! binary so the gateway serves them offline and with no files to deploy. The UI is a client
//! of this same REST API, signed in with a session; it holds no logic of its own.
//!
//! Its pages allow only their own scripts and styles (`Content-Security-Policy`), so even a
//! value that slipped into the page as markup could not run.

use axum::http::header;
use axum::response::{Redirect, Response};
use utoipa::openapi::HttpMethod;

use crate::extract::PathParams;
use crate::problem::Problem;
use crate::route_table::RouteTable;
use crate::static_files;

const INDEX_HTML: &str = include_str!("../../../ui/index.html");
const APP_JS: &str = include_str!("../../../ui/app.js");
const APP_CSS: &str = include_str!("../../../ui/app.css");

pub const INDEX_PATH: &str = "/ui/";

/// Same-origin scripts, styles and API calls only; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn routes(table: RouteTable) -> RouteTable {
    let index = static_files::page("getUi", "The web UI", "200", "The UI's page");
    let redirect = static_files::page("redirectUi", "Redirects to `/ui/`", "308", "To the UI");
    let root = static_files::page(
        "redirectRoot",
        "Redirects `/` to the web UI",
        "308",
        "To the UI",
    );
    let asset = static_files::asset(
        "getUiAsset",
        "A file of the web UI",
        "`app.js` or `app.css`",
        &["text/javascript", "text/css"],
    );
    table
        .operation(HttpMethod::Get, INDEX_PATH, index, Vec::new(), || async {
            ui_file("text/html; charset=utf-8", INDEX_HTML)
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
        "app.js" => Ok(ui_file("text/javascript; charset=utf-8", APP_JS)),
        "app.css" => Ok(ui_file("text/css; charset=utf-8", APP_CSS)),
        _ => Err(Problem::not_found(format!("no such file: {file}"))),
    }
}

/// A file of the UI. `no-cache`: the browser revalidates, so a new gateway's UI is seen at
/// once (the files are small).
fn ui_file(content_type: &'static str, body: &'static str) -> Response {
    static_files::response(
        content_type,
        body.as_bytes(),
        &[
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
    )
}
