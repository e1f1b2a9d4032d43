//! Listeners: an address and port on a dataplane, and the filter chains that handle
//! connections arriving there.

mod http_options;
pub use http_options::{
    AccessLog, AccessLogFormat, DEFAULT_ACCESS_LOG_DIR, HttpOptions, Tracing, access_log_dir,
    access_log_path_problem, set_access_log_dir,
};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::filters::compressor::CompressorFilter;
use crate::filters::cors::CorsFilter;
use crate::filters::credential_injector::CredentialInjectorFilter;
use crate::filters::custom_response::CustomResponseFilter;
use crate::filters::ext_authz::ExtAuthzFilter;
use crate::filters::ext_proc::ExtProcFilter;
use crate::filters::global_rate_limit::GlobalRateLimitFilter;
use crate::filters::health_check::HealthCheckFilter;
use crate::filters::jwt_auth::JwtAuthFilter;
use crate::filters::local_rate_limit::LocalRateLimitFilter;
use crate::filters::oauth2::OAuth2Filter;
use crate::filters::rbac::RbacFilter;
use crate::filters::wasm::WasmFilter;
use crate::header_changes::HeaderChanges;
use crate::names::check_name;
use crate::resource::Spec;
use crate::secret::SecretUse;

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
    /// TLS server names (SNI) this chain answers; `*.example.com` matches one label. Several
    /// chains on one listener are told apart by these; at most one chain may leave them empty
    /// (it takes every other connection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    /// Terminate TLS on this chain with a certificate from a secret (served over SDS, so a
    /// rotation reaches Envoy without touching the listener).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DownstreamTls>,
    pub filters: Vec<NetworkFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownstreamTls {
    /// A `tlsCertificate` secret of the same team.
    pub certificate_secret: String,
    /// A `validationContext` secret that verifies client certificates (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_secret: Option<String>,
    /// Refuse clients without a certificate (needs `validationSecret`).
    #[serde(default)]
    pub require_client_certificate: bool,
    /// ALPN protocols offered, in preference order (e.g. `["h2", "http/1.1"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
}

impl DownstreamTls {
    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        check_name(
            &self.certificate_secret,
            &at.field("certificateSecret"),
            errors,
        );
        if let Some(secret) = &self.validation_secret {
            check_name(secret, &at.field("validationSecret"), errors);
        } else if self.require_client_certificate {
            errors.add(
                at.field("requireClientCertificate").as_str(),
                "requires validationSecret to verify the client certificates",
            );
        }
        for (i, protocol) in self.alpn.iter().enumerate() {
            if protocol.is_empty() || protocol.len() > 255 {
                errors.add(
                    at.field("alpn").index(i).as_str(),
                    "must be 1 to 255 bytes long",
                );
            }
        }
    }
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
    /// Files Envoy appends a line to for each request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_logs: Vec<AccessLog>,
    /// Spans to an OpenTelemetry collector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    /// Timeouts, client address detection, header limits and the like.
    #[serde(default, skip_serializing_if = "HttpOptions::is_default")]
    pub options: HttpOptions,
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
    /// gzip-compresses responses for clients that accept it.
    Compressor(CompressorFilter),
    /// Envoy answers health checks on one path itself.
    HealthCheck(HealthCheckFilter),
    /// Asks an authorization service (a cluster) about each request; only a 2xx lets it pass.
    ExtAuthz(ExtAuthzFilter),
    /// Limits counted by Flowplane's `ratelimit` service across every Envoy of the team.
    GlobalRateLimit(GlobalRateLimitFilter),
    /// Adds a credential from a `genericSecret` to every request sent upstream.
    CredentialInjector(CredentialInjectorFilter),
    /// Replaces upstream responses with the listed statuses by the platform's own.
    CustomResponse(CustomResponseFilter),
    /// Streams headers (and optionally bodies) to a gRPC processing service (a cluster).
    ExtProc(ExtProcFilter),
    /// Sends users without a session to an OAuth2 identity provider to log in.
    #[serde(rename = "oauth2")]
    OAuth2(OAuth2Filter),
    /// A proxy-wasm plugin run by Envoy's V8 runtime.
    Wasm(WasmFilter),
}

impl HttpFilter {
    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        match self {
            HttpFilter::Router(_) | HttpFilter::Cors(_) => {}
            HttpFilter::LocalRateLimit(limit) => limit.validate(at, errors),
            HttpFilter::Rbac(rbac) => rbac.validate(at, errors),
            HttpFilter::JwtAuth(jwt) => jwt.validate(at, errors),
            HttpFilter::Compressor(compressor) => compressor.validate(at, errors),
            HttpFilter::HealthCheck(health) => health.validate(at, errors),
            HttpFilter::ExtAuthz(authz) => authz.validate(at, errors),
            HttpFilter::GlobalRateLimit(limits) => limits.validate(at, errors),
            HttpFilter::CredentialInjector(injector) => injector.validate(at, errors),
            HttpFilter::CustomResponse(custom) => custom.validate(at, errors),
            HttpFilter::ExtProc(processor) => processor.validate(at, errors),
            HttpFilter::OAuth2(oauth2) => oauth2.validate(at, errors),
            HttpFilter::Wasm(wasm) => wasm.validate(at, errors),
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

    /// Clusters referenced directly (TCP proxies, remote JWKS, authorization services), with
    /// the field naming each.
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
                        if let Some(tracing) = &h.tracing {
                            refs.push((
                                tracing.cluster.as_str(),
                                at.field("tracing").field("cluster"),
                            ));
                        }
                        for (k, entry) in h.http_filters.iter().enumerate() {
                            let filter = at.field("httpFilters").index(k).field("filter");
                            match &entry.filter {
                                HttpFilter::JwtAuth(jwt) => {
                                    refs.extend(jwt.referenced_clusters(&filter))
                                }
                                HttpFilter::ExtAuthz(authz) => {
                                    refs.extend(authz.referenced_clusters(&filter))
                                }
                                HttpFilter::ExtProc(processor) => {
                                    refs.extend(processor.referenced_clusters(&filter))
                                }
                                HttpFilter::OAuth2(oauth2) => {
                                    refs.extend(oauth2.referenced_clusters(&filter))
                                }
                                HttpFilter::Wasm(wasm) => {
                                    refs.extend(wasm.referenced_clusters(&filter))
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        refs
    }

    /// The fields naming clusters that are called over gRPC (external processors, trace
    /// collectors): those clusters must speak HTTP/2.
    pub fn grpc_cluster_fields(&self) -> Vec<Path> {
        let chains = Path::root().field("filterChains");
        let mut fields = Vec::new();
        for (i, chain) in self.filter_chains.iter().enumerate() {
            for (j, filter) in chain.filters.iter().enumerate() {
                let NetworkFilter::HttpConnectionManager(h) = filter else {
                    continue;
                };
                let at = chains.index(i).field("filters").index(j);
                if h.tracing.is_some() {
                    fields.push(at.field("tracing").field("cluster"));
                }
                for (k, entry) in h.http_filters.iter().enumerate() {
                    if let HttpFilter::ExtProc(_) = entry.filter {
                        let filter = at.field("httpFilters").index(k).field("filter");
                        fields.push(filter.field("cluster"));
                    }
                }
            }
        }
        fields
    }

    /// Secrets the chains' TLS settings and HTTP filters name, with the field naming each.
    pub fn secret_references(&self) -> Vec<(&str, Path, SecretUse)> {
        let chains = Path::root().field("filterChains");
        let mut refs = Vec::new();
        for (i, chain) in self.filter_chains.iter().enumerate() {
            for (j, filter) in chain.filters.iter().enumerate() {
                let NetworkFilter::HttpConnectionManager(hcm) = filter else {
                    continue;
                };
                let at = chains.index(i).field("filters").index(j);
                for (k, entry) in hcm.http_filters.iter().enumerate() {
                    let filter = at.field("httpFilters").index(k).field("filter");
                    match &entry.filter {
                        HttpFilter::CredentialInjector(injector) => refs.push((
                            injector.secret.as_str(),
                            filter.field("secret"),
                            SecretUse::Generic,
                        )),
                        HttpFilter::OAuth2(oauth2) => refs.extend(
                            oauth2
                                .referenced_secrets(&filter)
                                .into_iter()
                                .map(|(name, field)| (name, field, SecretUse::Generic)),
                        ),
                        _ => {}
                    }
                }
            }
            let Some(tls) = &chain.tls else { continue };
            let at = chains.index(i).field("tls");
            refs.push((
                tls.certificate_secret.as_str(),
                at.field("certificateSecret"),
                SecretUse::Certificate,
            ));
            if let Some(validation) = &tls.validation_secret {
                refs.push((
                    validation.as_str(),
                    at.field("validationSecret"),
                    SecretUse::Validation,
                ));
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
        check_chain_matches(&self.filter_chains, &chains, errors);
        for (i, chain) in self.filter_chains.iter().enumerate() {
            let at = chains.index(i);
            if let Some(name) = &chain.name {
                check_name(name, &at.field("name"), errors);
            }
            if let Some(tls) = &chain.tls {
                tls.validate(&at.field("tls"), errors);
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
                        for (k, log) in hcm.access_logs.iter().enumerate() {
                            log.validate(&fp.field("accessLogs").index(k), errors);
                        }
                        if let Some(tracing) = &hcm.tracing {
                            tracing.validate(&fp.field("tracing"), errors);
                        }
                        hcm.options.validate(&fp.field("options"), errors);
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

/// Envoy rejects a listener whose chains cannot be told apart, so chains are distinguished
/// by server names: each name belongs to one chain, and one chain at most matches everything.
fn check_chain_matches(chains: &[FilterChain], at: &Path, errors: &mut ValidationErrors) {
    let mut catch_all: Option<usize> = None;
    let mut owners: std::collections::HashMap<&str, usize> = Default::default();
    for (i, chain) in chains.iter().enumerate() {
        let names = at.index(i).field("serverNames");
        if chain.server_names.is_empty() {
            if let Some(first) = catch_all {
                errors.add(
                    names.as_str(),
                    format!(
                        "filter chain {first} already takes every connection; give this chain serverNames"
                    ),
                );
            }
            catch_all.get_or_insert(i);
        }
        for (j, name) in chain.server_names.iter().enumerate() {
            let host = name.strip_prefix("*.").unwrap_or(name);
            if !crate::cluster::is_valid_host(host) || host.parse::<std::net::IpAddr>().is_ok() {
                errors.add(
                    names.index(j).as_str(),
                    "must be a DNS name, optionally *.-prefixed",
                );
            } else if let Some(owner) = owners.insert(name.as_str(), i) {
                errors.add(
                    names.index(j).as_str(),
                    format!("'{name}' is already matched by filter chain {owner}"),
                );
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
    fn tls_and_server_name_rules_carry_field_paths() {
        let hcm = r#"{"type":"httpConnectionManager","routeConfigName":"r"}"#;
        let listener = |chains: &str| format!(r#"{{"port":10443,"filterChains":[{chains}]}}"#);
        let chain = |extra: &str| format!(r#"{{{extra}"filters":[{hcm}]}}"#);
        let cases = [
            (
                listener(&chain(r#""tls":{"certificateSecret":"Bad Name"},"#)),
                "/filterChains/0/tls/certificateSecret",
            ),
            (
                listener(&chain(
                    r#""tls":{"certificateSecret":"c","validationSecret":"-x-"},"#,
                )),
                "/filterChains/0/tls/validationSecret",
            ),
            (
                listener(&chain(
                    r#""tls":{"certificateSecret":"c","requireClientCertificate":true},"#,
                )),
                "/filterChains/0/tls/requireClientCertificate",
            ),
            (
                listener(&chain(
                    r#""tls":{"certificateSecret":"c","alpn":["h2",""]},"#,
                )),
                "/filterChains/0/tls/alpn/1",
            ),
            (
                listener(&chain(r#""tls":{"certificateSecret":"c","extra":1},"#)),
                "/filterChains/0/tls/extra",
            ),
            (
                listener(&chain(r#""serverNames":["a.example.com","not a host"],"#)),
                "/filterChains/0/serverNames/1",
            ),
            (
                listener(&chain(r#""serverNames":["10.0.0.1"],"#)),
                "/filterChains/0/serverNames/0",
            ),
            (
                listener(&format!("{},{}", chain(""), chain(""))),
                "/filterChains/1/serverNames",
            ),
            (
                listener(&format!(
                    "{},{}",
                    chain(r#""serverNames":["a.example.com"],"#),
                    chain(r#""serverNames":["b.example.com","a.example.com"],"#)
                )),
                "/filterChains/1/serverNames/1",
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

    #[test]
    fn chains_told_apart_by_server_names_are_accepted_and_reference_their_secrets() {
        let body = r#"{"port":10443,"filterChains":[
            {"serverNames":["a.example.com"],"tls":{"certificateSecret":"a-cert"},
             "filters":[{"type":"httpConnectionManager","routeConfigName":"r"}]},
            {"tls":{"certificateSecret":"b-cert","validationSecret":"clients","requireClientCertificate":true,"alpn":["http/1.1"]},
             "filters":[{"type":"httpConnectionManager","routeConfigName":"r"}]}]}"#;
        let parsed = parse_spec::<ListenerSpec>(body).expect("valid");
        let refs: Vec<(&str, String)> = parsed
            .spec
            .secret_references()
            .into_iter()
            .map(|(name, path, _)| (name, path.as_str().to_string()))
            .collect();
        assert_eq!(
            refs,
            [
                (
                    "a-cert",
                    "/filterChains/0/tls/certificateSecret".to_string()
                ),
                (
                    "b-cert",
                    "/filterChains/1/tls/certificateSecret".to_string()
                ),
                (
                    "clients",
                    "/filterChains/1/tls/validationSecret".to_string()
                ),
            ]
        );
    }

    #[test]
    fn edge_filter_rules_name_their_fields() {
        let with = |filter: &str| {
            format!(
                r#"{{"port":10000,"filterChains":[{{"filters":[{{"type":"httpConnectionManager","routeConfigName":"r","httpFilters":[{{"filter":{filter}}}]}}]}}]}}"#
            )
        };
        let at = |field: &str| format!("/filterChains/0/filters/0/httpFilters/0/filter/{field}");
        let cases = [
            (r#"{"type":"compressor","level":10}"#, at("level")),
            (
                r#"{"type":"compressor","contentTypes":["json"]}"#,
                at("contentTypes/0"),
            ),
            (r#"{"type":"healthCheck","path":"healthz"}"#, at("path")),
            (r#"{"type":"extAuthz","cluster":""}"#, at("cluster")),
            (
                r#"{"type":"extAuthz","cluster":"a","pathPrefix":"check/"}"#,
                at("pathPrefix"),
            ),
            (
                r#"{"type":"extAuthz","cluster":"a","timeoutMs":0}"#,
                at("timeoutMs"),
            ),
            (
                r#"{"type":"extAuthz","cluster":"a","allowedHeaders":["X-Allow"]}"#,
                at("allowedHeaders/0"),
            ),
        ];
        for (filter, field) in cases {
            let body = with(filter);
            let errors = parse_spec::<ListenerSpec>(&body).expect_err(&body);
            let fields: Vec<&str> = errors.errors().iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, [field.as_str()], "{filter}");
        }
        let ok = with(r#"{"type":"extAuthz","cluster":"authz","pathPrefix":"/check"}"#);
        let spec = parse_spec::<ListenerSpec>(&ok).unwrap();
        assert_eq!(
            spec.spec
                .cluster_references()
                .iter()
                .map(|(name, at)| (*name, at.as_str().to_string()))
                .collect::<Vec<_>>(),
            [("authz", at("cluster"))]
        );
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
