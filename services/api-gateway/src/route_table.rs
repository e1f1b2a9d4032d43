//! The one table that drives both the axum router and the OpenAPI paths: every route is added
//! together with its operation, so a route cannot be served without being documented.
//!
//! Routes come either from `#[utoipa::path]` handlers (via `utoipa_axum::routes!`) or from
//! operations built at runtime — the native resources, whose eight path shapes share one
//! handler per verb across all kinds.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, on, on_service};
use utoipa::openapi::path::{Operation, PathItem, Paths};
use utoipa::openapi::{HttpMethod, OpenApi, RefOr, schema::Schema};
use utoipa_axum::PathItemExt;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::state::AppState;

pub type Schemas = Vec<(String, RefOr<Schema>)>;

pub struct RouteTable {
    router: OpenApiRouter<AppState>,
    routes: Vec<(Method, String)>,
}

impl RouteTable {
    pub fn new(openapi: OpenApi) -> Self {
        Self {
            router: OpenApiRouter::with_openapi(openapi),
            routes: Vec::new(),
        }
    }

    /// Routes from `utoipa_axum::routes!(handler, ...)`: the macro builds the method router and
    /// the operations from the same `#[utoipa::path]` attribute.
    pub fn documented(mut self, route: UtoipaMethodRouter<AppState>) -> Self {
        for (path, item) in &route.1.paths {
            for method in methods_of(item) {
                self.routes.push((method, path.clone()));
            }
        }
        self.router = self.router.routes(route);
        self
    }

    /// One operation built at runtime, served by `handler`.
    pub fn operation<H, T>(
        self,
        method: HttpMethod,
        path: &str,
        operation: Operation,
        schemas: Schemas,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let method_router = on(method.to_method_filter(), handler);
        self.add(method, path, operation, schemas, method_router)
    }

    /// One operation served by a tower service (the shared health router).
    pub fn service<S>(
        self,
        method: HttpMethod,
        path: &str,
        operation: Operation,
        service: S,
    ) -> Self
    where
        S: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse + 'static,
        S::Future: Send + 'static,
    {
        let method_router = on_service(method.to_method_filter(), service);
        self.add(method, path, operation, Vec::new(), method_router)
    }

    fn add(
        mut self,
        method: HttpMethod,
        path: &str,
        operation: Operation,
        schemas: Schemas,
        method_router: MethodRouter<AppState>,
    ) -> Self {
        self.routes.push((http_method(&method), path.to_string()));
        let mut paths = Paths::new();
        paths
            .paths
            .insert(path.to_string(), PathItem::new(method, operation));
        self.router = self.router.routes((schemas, paths, method_router));
        self
    }

    /// The router, its OpenAPI document, and every (method, path) the router serves.
    pub fn split(self) -> (axum::Router<AppState>, OpenApi, Vec<(Method, String)>) {
        let (router, openapi) = self.router.split_for_parts();
        (router, openapi, self.routes)
    }
}

fn methods_of(item: &PathItem) -> Vec<Method> {
    [
        (Method::GET, item.get.is_some()),
        (Method::PUT, item.put.is_some()),
        (Method::POST, item.post.is_some()),
        (Method::DELETE, item.delete.is_some()),
        (Method::OPTIONS, item.options.is_some()),
        (Method::HEAD, item.head.is_some()),
        (Method::PATCH, item.patch.is_some()),
        (Method::TRACE, item.trace.is_some()),
    ]
    .into_iter()
    .filter_map(|(m, present)| present.then_some(m))
    .collect()
}

fn http_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}
