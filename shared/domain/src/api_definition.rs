//! API definitions, the Platform API: "expose these paths of this upstream on this domain".
//! A definition is compiled into ordinary native resources (clusters, a route config, a
//! listener) that go through the same validation and translation as hand-written ones.
//!
//! - [`generate`]: definition → native resource specs (pure)
//! - [`openapi`]: OpenAPI 3.0/3.1 document → definition
//! - [`expose`]: the one-call `expose` body → definition

pub mod expose;
pub mod generate;
pub mod openapi;

use crate::filters::jwt_auth::{JwtAuthFilter, JwtProvider, JwtRule};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::filters::cors::CorsPolicy;
use crate::filters::global_rate_limit::GlobalRateLimitOverride;
use crate::filters::local_rate_limit::LocalRateLimitFilter;
use crate::header_changes::HeaderChanges;
use crate::resource::Spec;
use crate::route_config::{METHODS, PathMatchType};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiDefinitionSpec {
    /// The host name clients call (`api.example.com`). Unique across Flowplane. Absent: any
    /// host (`*`), which one shared definition per team may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `shared`: a virtual host on the team's `default-gateway-listener` (port 10000).
    /// `dedicated`: the definition's own listener on `port`.
    #[serde(default)]
    pub listener_isolation: ListenerIsolation,
    /// The dedicated listener's port (required for, and only allowed with, `dedicated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    pub routes: Vec<ApiRoute>,
    /// Filters for every route of the definition.
    #[serde(default, skip_serializing_if = "ApiFilters::is_empty")]
    pub filters: ApiFilters,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ListenerIsolation {
    #[default]
    Shared,
    Dedicated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiRoute {
    /// Names the route in change reports (defaults to its position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The request path (or prefix, or `/pets/{id}` template) clients call.
    pub path: String,
    /// How `path` matches: `prefix` (default), `exact`, `template` or `regex`.
    #[serde(default = "prefix")]
    pub match_type: PathMatchType,
    /// HTTP methods routed (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Where requests go: `http://host:port` or `https://host[:port]`, without a path.
    pub upstream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// Replaces the matched prefix before forwarding (prefix matches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
    /// Filters for this route, replacing the definition's of the same kind.
    #[serde(default, skip_serializing_if = "ApiFilters::is_empty")]
    pub filters: ApiFilters,
}

fn prefix() -> PathMatchType {
    PathMatchType::Prefix
}

/// The HTTP filters a definition can switch on, each with the native model's options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiFilters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rate_limit: Option<LocalRateLimitFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_mutation: Option<HeaderChanges>,
    /// Requests need a valid JWT from one of these providers (401 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<ApiJwt>,
    /// Limits counted by the ratelimit service across every Envoy of the team (429 over
    /// them). Each definition (and route) counts on its own, whatever the limit names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_rate_limit: Option<GlobalRateLimitOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiJwt {
    pub providers: Vec<JwtProvider>,
}

impl ApiJwt {
    /// The listener filter these providers would form alone: used to check them with the
    /// native rules, at this definition's paths.
    fn as_filter(&self) -> JwtAuthFilter {
        JwtAuthFilter {
            providers: self.providers.clone(),
            rules: vec![JwtRule {
                path_prefix: "/".into(),
                providers: Vec::new(),
            }],
            requirements: Default::default(),
        }
    }
}

impl ApiFilters {
    pub fn is_empty(&self) -> bool {
        self.cors.is_none()
            && self.local_rate_limit.is_none()
            && self.header_mutation.is_none()
            && self.jwt.is_none()
            && self.global_rate_limit.is_none()
    }

    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if let Some(cors) = &self.cors {
            cors.validate(&at.field("cors"), errors);
        }
        if let Some(limit) = &self.local_rate_limit {
            limit.validate(&at.field("localRateLimit"), errors);
        }
        if let Some(changes) = &self.header_mutation {
            if changes.is_empty() {
                errors.add(
                    at.field("headerMutation").as_str(),
                    "at least one header change is required",
                );
            }
            changes.validate(&at.field("headerMutation"), errors);
        }
        if let Some(jwt) = &self.jwt {
            jwt.as_filter().validate(&at.field("jwt"), errors);
        }
        if let Some(limits) = &self.global_rate_limit {
            limits.validate(&at.field("globalRateLimit"), errors);
        }
    }
}

/// An upstream URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u32,
    /// The path after the authority (`""` when none).
    pub path: String,
}

impl Upstream {
    /// Parses `http(s)://host[:port][/path]`; query strings and user info are refused.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err("must start with http:// or https://".into());
        };
        if rest.contains(['?', '#', '@']) {
            return Err("must not contain a query, fragment or user info".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = if path == "/" { "" } else { path };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            // An IPv6 literal's colons sit inside brackets.
            Some((host, port)) if !port.contains(']') => {
                let port: u32 = port
                    .parse()
                    .map_err(|_| format!("port '{port}' is not a number"))?;
                (host, port)
            }
            _ => (authority, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("must name a host".into());
        }
        if !(1..=65535).contains(&port) {
            return Err("port must be 1-65535".into());
        }
        Ok(Self {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_string(),
        })
    }
}

impl Spec for ApiDefinitionSpec {
    fn validate(&self, errors: &mut ValidationErrors) {
        let root = Path::root();
        if let Some(domain) = &self.domain {
            let valid = !domain.is_empty()
                && domain
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c))
                && !domain.starts_with(['-', '.']);
            if !valid {
                errors.add(
                    root.field("domain").as_str(),
                    "must be a lowercase host name (letters, digits, '-' and '.'), without a port",
                );
            }
        }
        match (self.listener_isolation, self.port) {
            (ListenerIsolation::Dedicated, None) => errors.add(
                root.field("port").as_str(),
                "is required with listenerIsolation 'dedicated'",
            ),
            (ListenerIsolation::Shared, Some(_)) => errors.add(
                root.field("port").as_str(),
                "is only allowed with listenerIsolation 'dedicated' (shared definitions use the team's gateway listener)",
            ),
            (_, Some(port)) if !(1..=65535).contains(&port) => {
                errors.add(root.field("port").as_str(), "must be 1-65535")
            }
            _ => {}
        }
        let routes = root.field("routes");
        if self.routes.is_empty() {
            errors.add(routes.as_str(), "at least one route is required");
        }
        let mut names = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = routes.index(i);
            if let Some(name) = &route.name {
                crate::names::check_name(name, &at.field("name"), errors);
            }
            if !names.insert(route.display_name(i)) {
                errors.add(at.field("name").as_str(), "route names must be unique");
            }
            if !route.path.starts_with('/') {
                errors.add(at.field("path").as_str(), "must start with '/'");
            }
            for (j, method) in route.methods.iter().enumerate() {
                if !METHODS.contains(&method.as_str()) {
                    errors.add(
                        at.field("methods").index(j).as_str(),
                        format!("must be one of {}", METHODS.join(", ")),
                    );
                }
            }
            match Upstream::parse(&route.upstream) {
                Ok(upstream) if !upstream.path.is_empty() => errors.add(
                    at.field("upstream").as_str(),
                    "must not have a path; use prefixRewrite to change the forwarded path",
                ),
                Ok(_) => {}
                Err(message) => errors.add(at.field("upstream").as_str(), message),
            }
            if route.prefix_rewrite.is_some() && route.match_type != PathMatchType::Prefix {
                errors.add(
                    at.field("prefixRewrite").as_str(),
                    "applies to prefix matches only",
                );
            }
            route.filters.validate(&at.field("filters"), errors);
        }
        self.filters.validate(&root.field("filters"), errors);
    }
}

impl ApiRoute {
    /// The route's name, or `route-<index>` when it has none.
    pub fn display_name(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("route-{index}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::parse_spec;

    fn fields(body: &str) -> Vec<String> {
        match parse_spec::<ApiDefinitionSpec>(body) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_errors().into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn upstream_urls_are_taken_apart() {
        let up = Upstream::parse("https://API.example.com").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (up.tls, up.host.as_str(), up.port),
            (true, "api.example.com", 443)
        );
        let up = Upstream::parse("http://127.0.0.1:8080/v1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((up.port, up.path.as_str()), (8080, "/v1"));
        assert!(Upstream::parse("ftp://x").is_err());
        assert!(Upstream::parse("http://x:99999").is_err());
    }

    #[test]
    fn invalid_definitions_name_each_field() {
        assert_eq!(
            fields(
                r#"{"listenerIsolation":"dedicated","routes":[{"path":"pets","upstream":"tcp://x","methods":["FETCH"]}]}"#
            ),
            [
                "/port",
                "/routes/0/path",
                "/routes/0/methods/0",
                "/routes/0/upstream"
            ]
        );
        assert_eq!(
            fields(r#"{"domain":"a b","port":9000,"routes":[]}"#),
            ["/domain", "/port", "/routes"]
        );
        assert!(
            fields(r#"{"domain":"pets.example.com","routes":[{"path":"/","upstream":"http://127.0.0.1:1"}]}"#)
                .is_empty()
        );
    }
}
