//! Listeners: an address and port on a dataplane, and the filter chains that handle
//! connections arriving there.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::filters::cors::CorsFilter;
use crate::filters::jwt_auth::JwtAuthFilter;
use crate::filters::local_rate_limit::LocalRateLimitFilter;
use crate::filters::rbac::RbacFilter;
use crate::header_changes::HeaderChanges;
use crate::names::check_name;
use crate::resource::Spec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerSpec {
    /// Bind address (default `0.0.0.0`).
    #[serde(default = "default_address")]
    pub address: String,
    pub port: u32,
    /// The dataplane that serves this listener; empty means every dataplane of the team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_id: Option<String>,
    #[serde(default)]
    pub protocol: ListenerProtocol,
    pub filter_chains: Vec<FilterChain>,
}

fn default_address() -> String {
    "0.0.0.0".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ListenerProtocol {
    #[default]
    Http,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterChain {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub filters: Vec<NetworkFilter>,
}

/// A network filter, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum NetworkFilter {
    HttpConnectionManager(HttpConnectionManager),
    TcpProxy(TcpProxy),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConnectionManager {
    /// Envoy filter name (informational; defaults to `envoy.filters.network.http_connection_manager`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The route config (same team) that this listener serves, fetched over RDS.
    pub route_config_name: String,
    /// Prefix for this listener's HTTP statistics (defaults to the listener name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
    /// HTTP filters in order; a router is appended when the list does not end with one.
    #[serde(default)]
    pub http_filters: Vec<HttpFilterEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpProxy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFilterEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub filter: HttpFilter,
}

/// An HTTP filter, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum HttpFilter {
    Router(RouterFilter),
    /// Answers CORS preflights and checks origins; the policy is set per virtual host or
    /// route through `filterOverrides`.
    Cors(CorsFilter),
    LocalRateLimit(LocalRateLimitFilter),
    /// Adds and removes request and response headers for every request on the listener.
    HeaderMutation(HeaderChanges),
    /// Ordered allow/deny rules on path, method and headers; a denied request gets 403.
    Rbac(RbacFilter),
    /// Requires a valid JWT on the paths its rules name; a missing or bad token gets 401.
    JwtAuth(JwtAuthFilter),
}

impl HttpFilter {
    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        match self {
            HttpFilter::Router(_) | HttpFilter::Cors(_) => {}
            HttpFilter::LocalRateLimit(limit) => limit.validate(at, errors),
            HttpFilter::Rbac(rbac) => rbac.validate(at, errors),
            HttpFilter::JwtAuth(jwt) => jwt.validate(at, errors),
            HttpFilter::HeaderMutation(changes) => {
                if changes.is_empty() {
                    errors.add(at.as_str(), "at least one header change is required");
                }
                changes.validate(at, errors);
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterFilter {}

impl ListenerSpec {
    /// Route configs this listener needs, in chain order.
    pub fn referenced_route_configs(&self) -> Vec<&str> {
        self.http_connection_managers()
            .map(|hcm| hcm.route_config_name.as_str())
            .collect()
    }

    /// Clusters referenced directly (TCP proxies, remote JWKS), with the field naming each.
    pub fn cluster_references(&self) -> Vec<(&str, Path)> {
        let chains = Path::root().field("filterChains");
        let mut refs = Vec::new();
        for (i, chain) in self.filter_chains.iter().enumerate() {
            for (j, filter) in chain.filters.iter().enumerate() {
                let at = chains.index(i).field("filters").index(j);
                match filter {
                    NetworkFilter::TcpProxy(t) => {
                        refs.push((t.cluster.as_str(), at.field("cluster")))
                    }
                    NetworkFilter::HttpConnectionManager(h) => {
                        for (k, entry) in h.http_filters.iter().enumerate() {
                            if let HttpFilter::JwtAuth(jwt) = &entry.filter {
                                let filter = at.field("httpFilters").index(k).field("filter");
                                refs.extend(jwt.referenced_clusters(&filter));
                            }
                        }
                    }
                }
            }
        }
        refs
    }

    /// Clusters referenced directly (TCP proxies, remote JWKS).
    pub fn referenced_clusters(&self) -> Vec<&str> {
        self.cluster_references()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    fn http_connection_managers(&self) -> impl Iterator<Item = &HttpConnectionManager> {
        self.filter_chains
            .iter()
            .flat_map(|c| c.filters.iter())
            .filter_map(|f| match f {
                NetworkFilter::HttpConnectionManager(h) => Some(h),
                NetworkFilter::TcpProxy(_) => None,
            })
    }
}

impl Spec for ListenerSpec {
    fn validate(&self, errors: &mut ValidationErrors) {
        let root = Path::root();
        if self.address.parse::<std::net::IpAddr>().is_err() {
            errors.add(
                root.field("address").as_str(),
                "must be an IP address such as 0.0.0.0",
            );
        }
        if self.port == 0 || self.port > 65535 {
            errors.add(root.field("port").as_str(), "must be between 1 and 65535");
        }
        let chains = root.field("filterChains");
        if self.filter_chains.is_empty() {
            errors.add(chains.as_str(), "at least one filter chain is required");
        }
        if self.filter_chains.len() > 1 {
            // Several chains need distinct match criteria (server names), which arrive with
            // TLS support; until then Envoy would reject identical chains.
            errors.add(
                chains.as_str(),
                "only one filter chain is supported without filterChainMatch",
            );
        }
        for (i, chain) in self.filter_chains.iter().enumerate() {
            let at = chains.index(i);
            if let Some(name) = &chain.name {
                check_name(name, &at.field("name"), errors);
            }
            if chain.filters.len() != 1 {
                errors.add(
                    at.field("filters").as_str(),
                    "exactly one terminal network filter (httpConnectionManager or tcpProxy) is required",
                );
            }
            for (j, filter) in chain.filters.iter().enumerate() {
                let fp = at.field("filters").index(j);
                match filter {
                    NetworkFilter::HttpConnectionManager(hcm) => {
                        if self.protocol == ListenerProtocol::Tcp {
                            errors.add(
                                fp.field("type").as_str(),
                                "a TCP listener cannot use httpConnectionManager",
                            );
                        }
                        check_name(&hcm.route_config_name, &fp.field("routeConfigName"), errors);
                        let filters = &hcm.http_filters;
                        let mut names = std::collections::HashSet::new();
                        for (k, entry) in filters.iter().enumerate() {
                            let at = fp.field("httpFilters").index(k);
                            entry.filter.validate(&at.field("filter"), errors);
                            if let Some(name) = &entry.name
                                && !names.insert(name.as_str())
                            {
                                // filterOverrides address filters by name, so names must be unique.
                                errors
                                    .add(at.field("name").as_str(), "filter names must be unique");
                            }
                            let is_last = k + 1 == filters.len();
                            if matches!(entry.filter, HttpFilter::Router(_)) && !is_last {
                                errors.add(
                                    fp.field("httpFilters").index(k).as_str(),
                                    "the router must be the last HTTP filter",
                                );
                            }
                        }
                    }
                    NetworkFilter::TcpProxy(tcp) => {
                        if self.protocol == ListenerProtocol::Http {
                            errors.add(
                                fp.field("type").as_str(),
                                "an HTTP listener cannot use tcpProxy; set protocol: TCP",
                            );
                        }
                        check_name(&tcp.cluster, &fp.field("cluster"), errors);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::parse_spec;

    #[test]
    fn the_api_md_example_parses() {
        let body = r#"{"name":"httpbin-listener","address":"0.0.0.0","port":10000,"team":"my-org-default",
            "dataplaneId":"dp-1","protocol":"HTTP",
            "filterChains":[{"name":"default","filters":[{
            "name":"envoy.filters.network.http_connection_manager","type":"httpConnectionManager",
            "routeConfigName":"httpbin-route","httpFilters":[{"filter":{"type":"router"}}]}]}]}"#;
        let parsed = parse_spec::<ListenerSpec>(body).expect("valid");
        assert_eq!(
            parsed.spec.referenced_route_configs(),
            vec!["httpbin-route"]
        );
        assert_eq!(parsed.spec.dataplane_id.as_deref(), Some("dp-1"));
    }

    #[test]
    fn errors_carry_field_paths() {
        let chain =
            |filter: &str| format!(r#"{{"port":10000,"filterChains":[{{"filters":[{filter}]}}]}}"#);
        let cases = [
            (r#"{"port":70000,"filterChains":[]}"#.to_string(), "/port"),
            (
                r#"{"port":1,"address":"localhost","filterChains":[]}"#.to_string(),
                "/address",
            ),
            (
                chain(r#"{"type":"httpConnectionManager"}"#),
                "/filterChains/0/filters/0",
            ),
            (
                chain(
                    r#"{"type":"httpConnectionManager","routeConfigName":"r","httpFilters":[{"filter":{"type":"router"}},{"filter":{"type":"router"}}]}"#,
                ),
                "/filterChains/0/filters/0/httpFilters/0",
            ),
            (
                chain(r#"{"type":"tcpProxy","cluster":"c"}"#),
                "/filterChains/0/filters/0/type",
            ),
            (
                chain(
                    r#"{"type":"httpConnectionManager","routeConfigName":"r","httpFilters":[{"filter":{"type":"magic"}}]}"#,
                ),
                // serde buffers internally tagged enums, so the path stops at the nearest tagged object.
                "/filterChains/0/filters/0",
            ),
            (
                chain(
                    r#"{"type":"httpConnectionManager","routeConfigName":"r","httpFilters":[{"filter":{"type":"localRateLimit","maxTokens":0}}]}"#,
                ),
                "/filterChains/0/filters/0/httpFilters/0/filter/maxTokens",
            ),
            (
                chain(
                    r#"{"type":"httpConnectionManager","routeConfigName":"r","httpFilters":[{"filter":{"type":"headerMutation"}}]}"#,
                ),
                "/filterChains/0/filters/0/httpFilters/0/filter",
            ),
            (
                chain(
                    r#"{"type":"httpConnectionManager","routeConfigName":"r","httpFilters":[{"filter":{"type":"rbac","rules":[]}}]}"#,
                ),
                "/filterChains/0/filters/0/httpFilters/0/filter/rules",
            ),
            (
                chain(
                    r#"{"type":"httpConnectionManager","routeConfigName":"r","httpFilters":[{"filter":{"type":"jwtAuth","providers":[],"rules":[]}}]}"#,
                ),
                "/filterChains/0/filters/0/httpFilters/0/filter/providers",
            ),
            (
                chain(
                    r#"{"type":"httpConnectionManager","routeConfigName":"r","httpFilters":[{"name":"a","filter":{"type":"cors"}},{"name":"a","filter":{"type":"cors"}}]}"#,
                ),
                "/filterChains/0/filters/0/httpFilters/1/name",
            ),
        ];
        for (body, field) in cases {
            let errors = parse_spec::<ListenerSpec>(&body).expect_err(&body);
            assert!(
                errors.errors().iter().any(|e| e.field == field),
                "{body}: expected an error at {field}, got {errors}"
            );
        }
    }
}
