//! Where Envoy sends a request, worked out from the very resources it is served (decoded from
//! the encoded form replicas push), following Envoy's own order: the listener on the port, the
//! filter chain by SNI, the connection manager's route table, the virtual host by domain
//! (exact, then the longest suffix and prefix wildcards, then `*`), the first route whose path,
//! headers and query parameters all match, and the action's clusters and endpoints.

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    FilterConfig, HeaderMatcher, QueryParameterMatcher, Route, RouteConfiguration, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier as TcpClusterSpecifier;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::request_trace::{
    Trace, TraceCluster, TraceEndpoint, TraceFilter, TraceOutcome, TraceRequest, TraceStep,
};
use prost::Message;

use crate::resource::{CLUSTER_TYPE, ENDPOINT_TYPE, EncodedResource, LISTENER_TYPE, ROUTE_TYPE};

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const FILTER_CONFIG_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

/// The decoded resources one dataplane is served.
#[derive(Default)]
pub struct Snapshot {
    listeners: Vec<Listener>,
    routes: HashMap<String, RouteConfiguration>,
    clusters: HashMap<String, Cluster>,
    endpoints: HashMap<String, ClusterLoadAssignment>,
}

impl Snapshot {
    /// Adds one encoded resource (types Envoy routing does not involve are ignored).
    pub fn add(&mut self, resource: &EncodedResource) -> Result<(), prost::DecodeError> {
        let bytes = resource.any.value.as_slice();
        match resource.type_url {
            LISTENER_TYPE => self.listeners.push(Listener::decode(bytes)?),
            ROUTE_TYPE => {
                self.routes
                    .insert(resource.name.clone(), RouteConfiguration::decode(bytes)?);
            }
            CLUSTER_TYPE => {
                self.clusters
                    .insert(resource.name.clone(), Cluster::decode(bytes)?);
            }
            ENDPOINT_TYPE => {
                self.endpoints
                    .insert(resource.name.clone(), ClusterLoadAssignment::decode(bytes)?);
            }
            _ => {}
        }
        Ok(())
    }

    /// Traces `request` through the snapshot.
    pub fn trace(&self, request: &TraceRequest) -> Trace {
        let mut trace = Trace::default();
        let Some(listener) = self.listener(request, &mut trace) else {
            trace.outcome = outcome(
                "noListener",
                None,
                "nothing listens there: the connection is refused",
            );
            return trace;
        };
        trace.listener = Some(listener.name.clone());
        let Some(chain) = filter_chain(listener, request, &mut trace) else {
            trace.outcome = outcome(
                "noFilterChain",
                None,
                "no filter chain matches: Envoy closes the connection",
            );
            return trace;
        };
        trace.filter_chain = Some(chain.name.clone());
        let Some(filter) = chain.filters.first() else {
            trace.outcome = outcome("noFilterChain", None, "the filter chain has no filters");
            return trace;
        };
        let Some(ConfigType::TypedConfig(config)) = &filter.config_type else {
            trace.outcome = outcome(
                "noFilterChain",
                None,
                "the network filter has no configuration",
            );
            return trace;
        };
        match config.type_url.as_str() {
            HCM_TYPE => match HttpConnectionManager::decode(config.value.as_slice()) {
                Ok(hcm) => self.http(&hcm, request, &mut trace),
                Err(e) => {
                    trace.outcome = outcome(
                        "noFilterChain",
                        None,
                        &format!("undecodable connection manager: {e}"),
                    )
                }
            },
            TCP_PROXY_TYPE => match TcpProxy::decode(config.value.as_slice()) {
                Ok(tcp) => {
                    let clusters = match tcp.cluster_specifier {
                        Some(TcpClusterSpecifier::Cluster(name)) => vec![(name, None)],
                        Some(TcpClusterSpecifier::WeightedClusters(w)) => w
                            .clusters
                            .into_iter()
                            .map(|c| (c.name, Some(c.weight)))
                            .collect(),
                        None => Vec::new(),
                    };
                    trace.outcome = TraceOutcome {
                        kind: "tcpProxy".into(),
                        clusters: self.clusters(clusters),
                        detail: "the connection is proxied as TCP".into(),
                        ..Default::default()
                    };
                }
                Err(e) => {
                    trace.outcome = outcome(
                        "noFilterChain",
                        None,
                        &format!("undecodable TCP proxy: {e}"),
                    )
                }
            },
            other => {
                trace.outcome = outcome(
                    "noFilterChain",
                    None,
                    &format!("unknown network filter {other}"),
                )
            }
        }
        trace
    }

    fn listener<'a>(&'a self, request: &TraceRequest, trace: &mut Trace) -> Option<&'a Listener> {
        let mut found = None;
        for listener in &self.listeners {
            let port = listener_port(listener);
            let (matched, reason) = match (&request.listener, request.port) {
                (Some(name), _) if *name == listener.name => {
                    (true, "named in the request".to_string())
                }
                (Some(_), _) => (false, "not the listener named".to_string()),
                (None, Some(p)) if port == Some(u32::from(p)) => {
                    (true, format!("listens on port {p}"))
                }
                (None, _) => (
                    false,
                    format!("listens on port {}", port.unwrap_or_default()),
                ),
            };
            let matched = matched && found.is_none();
            trace
                .steps
                .push(step("listener", &listener.name, matched, reason));
            if matched {
                found = Some(listener);
            }
        }
        found
    }

    fn http(&self, hcm: &HttpConnectionManager, request: &TraceRequest, trace: &mut Trace) {
        let table = match &hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => {
                trace.route_config = Some(rds.route_config_name.clone());
                match self.routes.get(&rds.route_config_name) {
                    Some(table) => table,
                    None => {
                        trace.outcome = outcome(
                            "noRoute",
                            Some(404),
                            &format!(
                                "route config {} is not served: Envoy answers 404 until it arrives",
                                rds.route_config_name
                            ),
                        );
                        return;
                    }
                }
            }
            Some(RouteSpecifier::RouteConfig(inline)) => {
                trace.route_config = Some(inline.name.clone());
                inline
            }
            _ => {
                trace.outcome =
                    outcome("noRoute", Some(404), "the connection manager has no routes");
                return;
            }
        };
        let host = if hcm.strip_matching_host_port || table.ignore_port_in_host_matching {
            strip_port(&request.host)
        } else {
            request.host.as_str()
        };
        let Some(vhost) = virtual_host(table, host, trace) else {
            trace.outcome = outcome(
                "noRoute",
                Some(404),
                &format!("no virtual host serves {host}"),
            );
            return;
        };
        trace.virtual_host = Some(vhost.name.clone());
        let Some(route) = first_route(vhost, request, trace) else {
            trace.outcome = outcome("noRoute", Some(404), "no route of the virtual host matches");
            return;
        };
        trace.route = Some(route.name.clone());
        trace.filters = filters(hcm, vhost, route);
        trace.outcome = match &route.action {
            Some(Action::Route(action)) => {
                let clusters = match &action.cluster_specifier {
                    Some(ClusterSpecifier::Cluster(name)) => vec![(name.clone(), None)],
                    Some(ClusterSpecifier::WeightedClusters(w)) => w
                        .clusters
                        .iter()
                        .map(|c| (c.name.clone(), c.weight.map(|w| w.value)))
                        .collect(),
                    _ => Vec::new(),
                };
                let clusters = self.clusters(clusters);
                let detail = if clusters.iter().any(|c| !c.exists) {
                    "forwarded; a cluster that does not exist is answered with 503"
                } else {
                    "forwarded upstream"
                };
                TraceOutcome {
                    kind: "forward".into(),
                    clusters,
                    detail: detail.into(),
                    ..Default::default()
                }
            }
            Some(Action::Redirect(_)) => {
                outcome("redirect", Some(301), "Envoy answers with a redirect")
            }
            Some(Action::DirectResponse(d)) => outcome(
                "directResponse",
                u16::try_from(d.status).ok(),
                "Envoy answers itself",
            ),
            _ => outcome("noRoute", Some(404), "the route has no action"),
        };
    }

    fn clusters(&self, named: Vec<(String, Option<u32>)>) -> Vec<TraceCluster> {
        named
            .into_iter()
            .map(|(name, weight)| {
                let cluster = self.clusters.get(&name);
                let assignment = self
                    .endpoints
                    .get(&name)
                    .or_else(|| cluster.and_then(|c| c.load_assignment.as_ref()));
                TraceCluster {
                    exists: cluster.is_some(),
                    endpoints: assignment.map(endpoints).unwrap_or_default(),
                    name,
                    weight,
                }
            })
            .collect()
    }
}

fn outcome(kind: &str, status: Option<u16>, detail: &str) -> TraceOutcome {
    TraceOutcome {
        kind: kind.into(),
        status,
        clusters: Vec::new(),
        detail: detail.into(),
    }
}

fn step(stage: &str, name: &str, matched: bool, reason: String) -> TraceStep {
    TraceStep {
        stage: stage.into(),
        name: name.into(),
        matched,
        reason,
    }
}

fn listener_port(listener: &Listener) -> Option<u32> {
    match listener.address.as_ref()?.address.as_ref()? {
        AddressKind::SocketAddress(socket) => match socket.port_specifier {
            Some(PortSpecifier::PortValue(port)) => Some(port),
            _ => None,
        },
        _ => None,
    }
}

/// Envoy's choice among filter chains: the most specific server name (exact, then the
/// longest `*.` wildcard), else a chain without server names, else the default chain.
fn filter_chain<'a>(
    listener: &'a Listener,
    request: &TraceRequest,
    trace: &mut Trace,
) -> Option<&'a FilterChain> {
    let sni = request
        .sni
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let rank = |chain: &FilterChain| -> Option<usize> {
        let names = chain
            .filter_chain_match
            .as_ref()
            .map(|m| m.server_names.as_slice())
            .unwrap_or_default();
        if names.is_empty() {
            return Some(0);
        }
        names
            .iter()
            .filter_map(|name| {
                let name = name.to_ascii_lowercase();
                if !sni.is_empty() && name == sni {
                    Some(usize::MAX)
                } else {
                    name.strip_prefix('*')
                        .filter(|suffix| !sni.is_empty() && sni.ends_with(suffix))
                        .map(|suffix| suffix.len())
                }
            })
            .max()
    };
    let best = listener
        .filter_chains
        .iter()
        .enumerate()
        .filter_map(|(i, chain)| rank(chain).map(|r| (r, std::cmp::Reverse(i), chain)))
        .max_by_key(|(r, i, _)| (*r, *i))
        .map(|(_, _, chain)| chain);
    for chain in &listener.filter_chains {
        let chosen = best.is_some_and(|b| std::ptr::eq(b, chain));
        let reason = match rank(chain) {
            None => format!("server names do not match SNI {sni:?}"),
            Some(0) => "matches any server name".to_string(),
            Some(_) => format!("a server name matches SNI {sni:?}"),
        };
        trace
            .steps
            .push(step("filterChain", &chain.name, chosen, reason));
    }
    best.or_else(|| {
        let default = listener.default_filter_chain.as_ref()?;
        trace.steps.push(step(
            "filterChain",
            &default.name,
            true,
            "the listener's default chain".into(),
        ));
        Some(default)
    })
}

fn strip_port(host: &str) -> &str {
    let Some((name, port)) = host.rsplit_once(':') else {
        return host;
    };
    let bracketed = name.starts_with('[') && name.ends_with(']');
    let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if numeric && (bracketed || !name.contains(':')) {
        name
    } else {
        host
    }
}

/// Envoy's domain search: exact, then the longest suffix wildcard (`*.example.com`), then the
/// longest prefix wildcard (`api.*`), then `*`. Case-insensitive.
fn virtual_host<'a>(
    table: &'a RouteConfiguration,
    host: &str,
    trace: &mut Trace,
) -> Option<&'a VirtualHost> {
    let host = host.to_ascii_lowercase();
    let score = |domain: &str| -> Option<(u8, usize)> {
        let domain = domain.to_ascii_lowercase();
        if domain == host {
            Some((4, domain.len()))
        } else if domain == "*" {
            Some((1, 0))
        } else if let Some(suffix) = domain.strip_prefix('*') {
            (host.len() > suffix.len() && host.ends_with(suffix)).then_some((3, suffix.len()))
        } else if let Some(prefix) = domain.strip_suffix('*') {
            (host.len() > prefix.len() && host.starts_with(prefix)).then_some((2, prefix.len()))
        } else {
            None
        }
    };
    let best = table
        .virtual_hosts
        .iter()
        .filter_map(|vh| {
            vh.domains
                .iter()
                .filter_map(|d| score(d))
                .max()
                .map(|s| (s, vh))
        })
        .max_by_key(|(s, _)| *s)
        .map(|(_, vh)| vh);
    for vh in &table.virtual_hosts {
        let chosen = best.is_some_and(|b| std::ptr::eq(b, vh));
        let reason = match (vh.domains.iter().any(|d| score(d).is_some()), chosen) {
            (true, true) => format!("the best domain match for {host}"),
            (true, false) => {
                format!("matches {host}, but another virtual host matches it more specifically")
            }
            (false, _) => format!("no domain of {:?} matches {host}", vh.domains),
        };
        trace
            .steps
            .push(step("virtualHost", &vh.name, chosen, reason));
    }
    best
}

/// The first route whose every condition holds; each earlier one records why it did not.
fn first_route<'a>(
    vhost: &'a VirtualHost,
    request: &TraceRequest,
    trace: &mut Trace,
) -> Option<&'a Route> {
    let (path, query) = request
        .path
        .split_once('?')
        .unwrap_or((request.path.as_str(), ""));
    let query = parse_query(query);
    let headers: BTreeMap<String, String> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .chain([
            (":method".to_string(), request.method().to_string()),
            (":path".to_string(), request.path.clone()),
            (":authority".to_string(), request.host.clone()),
        ])
        .collect();
    for route in &vhost.routes {
        let Some(m) = &route.r#match else { continue };
        let failed = path_mismatch(
            m.path_specifier.as_ref(),
            path,
            m.case_sensitive.map(|c| c.value).unwrap_or(true),
        )
        .or_else(|| m.headers.iter().find_map(|h| header_mismatch(h, &headers)))
        .or_else(|| {
            m.query_parameters
                .iter()
                .find_map(|q| query_mismatch(q, &query))
        });
        match failed {
            Some(reason) => trace.steps.push(step("route", &route.name, false, reason)),
            None => {
                trace.steps.push(step(
                    "route",
                    &route.name,
                    true,
                    "path, headers and query match".into(),
                ));
                return Some(route);
            }
        }
    }
    None
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (pair.to_string(), String::new()),
        })
        .collect()
}

/// Why the path does not match, or `None` when it does.
fn path_mismatch(
    specifier: Option<&PathSpecifier>,
    path: &str,
    case_sensitive: bool,
) -> Option<String> {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_ascii_lowercase()
        }
    };
    match specifier? {
        PathSpecifier::Prefix(prefix) => (!fold(path).starts_with(&fold(prefix)))
            .then(|| format!("path does not start with {prefix}")),
        PathSpecifier::Path(exact) => {
            (fold(path) != fold(exact)).then(|| format!("path is not {exact}"))
        }
        PathSpecifier::PathSeparatedPrefix(prefix) => {
            let rest = path.strip_prefix(prefix.as_str());
            (!rest.is_some_and(|r| r.is_empty() || r.starts_with('/')))
                .then(|| format!("path is not {prefix} or under {prefix}/"))
        }
        PathSpecifier::SafeRegex(re) => match whole_match(&re.regex, path) {
            Ok(true) => None,
            Ok(false) => Some(format!("path does not match the regex {}", re.regex)),
            Err(e) => Some(format!("regex {} cannot be evaluated here: {e}", re.regex)),
        },
        PathSpecifier::PathMatchPolicy(policy) => {
            let template = policy
                .typed_config
                .as_ref()
                .and_then(|c| UriTemplateMatchConfig::decode(c.value.as_slice()).ok())
                .map(|c| c.path_template)
                .unwrap_or_default();
            (!template_matches(&template, path))
                .then(|| format!("path does not fit the template {template}"))
        }
        PathSpecifier::ConnectMatcher(_) => Some("matches only CONNECT requests".into()),
    }
}

fn whole_match(pattern: &str, value: &str) -> Result<bool, regex::Error> {
    Ok(regex::Regex::new(&format!("^(?:{pattern})$"))?.is_match(value))
}

/// Envoy's URI templates: `{var}` and `*` take one segment, `{var=**}` and `**` the rest.
fn template_matches(template: &str, path: &str) -> bool {
    let template: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    fn matches(template: &[&str], path: &[&str]) -> bool {
        match template.split_first() {
            None => path.is_empty(),
            Some((segment, rest)) => {
                let wildcard = segment.trim_start_matches('{').trim_end_matches('}');
                let pattern = wildcard.split_once('=').map(|(_, p)| p).unwrap_or(
                    if segment.starts_with('{') {
                        "*"
                    } else {
                        wildcard
                    },
                );
                match pattern {
                    "**" => rest.is_empty(),
                    "*" => path
                        .split_first()
                        .is_some_and(|(s, tail)| !s.is_empty() && matches(rest, tail)),
                    literal => path
                        .split_first()
                        .is_some_and(|(s, tail)| *s == literal && matches(rest, tail)),
                }
            }
        }
    }
    matches(&template, &path)
}

fn string_matches(matcher: &StringMatcher, value: &str) -> bool {
    let fold = |s: &str| {
        if matcher.ignore_case {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    match &matcher.match_pattern {
        Some(MatchPattern::Exact(e)) => fold(value) == fold(e),
        Some(MatchPattern::Prefix(p)) => fold(value).starts_with(&fold(p)),
        Some(MatchPattern::Suffix(s)) => fold(value).ends_with(&fold(s)),
        Some(MatchPattern::Contains(c)) => fold(value).contains(&fold(c)),
        Some(MatchPattern::SafeRegex(re)) => whole_match(&re.regex, value).unwrap_or(false),
        _ => false,
    }
}

fn header_mismatch(matcher: &HeaderMatcher, headers: &BTreeMap<String, String>) -> Option<String> {
    let name = matcher.name.to_ascii_lowercase();
    let value = headers.get(&name);
    let holds = match &matcher.header_match_specifier {
        Some(HeaderMatchSpecifier::PresentMatch(present)) => value.is_some() == *present,
        Some(HeaderMatchSpecifier::StringMatch(m)) => value.is_some_and(|v| string_matches(m, v)),
        // Translation emits only the two above (the others are deprecated).
        None => value.is_some(),
        _ => false,
    };
    (holds == matcher.invert_match).then(|| match (name.as_str(), value) {
        (":method", Some(method)) => format!("method {method} is not one the route takes"),
        (_, None) => format!("header {name} is absent"),
        (_, Some(v)) => format!("header {name}: {v:?} does not match"),
    })
}

fn query_mismatch(matcher: &QueryParameterMatcher, query: &[(String, String)]) -> Option<String> {
    let value = query
        .iter()
        .find(|(k, _)| *k == matcher.name)
        .map(|(_, v)| v.as_str());
    let holds = match &matcher.query_parameter_match_specifier {
        Some(QueryParameterMatchSpecifier::PresentMatch(present)) => value.is_some() == *present,
        Some(QueryParameterMatchSpecifier::StringMatch(m)) => {
            value.is_some_and(|v| string_matches(m, v))
        }
        None => value.is_some(),
    };
    (!holds).then(|| match value {
        None => format!("query parameter {} is absent", matcher.name),
        Some(v) => format!("query parameter {}={v:?} does not match", matcher.name),
    })
}

/// The connection manager's HTTP filters as this route sees them: a per-route configuration
/// replaces a filter's, a virtual host's applies when the route sets none, and a
/// `FilterConfig` with `disabled` turns the filter off.
fn filters(hcm: &HttpConnectionManager, vhost: &VirtualHost, route: &Route) -> Vec<TraceFilter> {
    hcm.http_filters
        .iter()
        .map(|filter| {
            let over = route
                .typed_per_filter_config
                .get(&filter.name)
                .or_else(|| vhost.typed_per_filter_config.get(&filter.name));
            let effect = match over {
                Some(config) if disabled(config) => "disabled",
                Some(_) => "overridden",
                None if filter.disabled => "disabled",
                None => "listener",
            };
            TraceFilter {
                name: filter.name.clone(),
                effect: effect.into(),
            }
        })
        .collect()
}

fn disabled(config: &Any) -> bool {
    config.type_url == FILTER_CONFIG_TYPE
        && FilterConfig::decode(config.value.as_slice()).is_ok_and(|c| c.disabled)
}

fn endpoints(assignment: &ClusterLoadAssignment) -> Vec<TraceEndpoint> {
    assignment
        .endpoints
        .iter()
        .flat_map(|locality| &locality.lb_endpoints)
        .filter_map(|lb| match &lb.host_identifier {
            Some(HostIdentifier::Endpoint(endpoint)) => endpoint.address.as_ref(),
            _ => None,
        })
        .filter_map(|address| match address.address.as_ref()? {
            AddressKind::SocketAddress(socket) => Some(TraceEndpoint {
                address: socket.address.clone(),
                port: match socket.port_specifier {
                    Some(PortSpecifier::PortValue(port)) => port,
                    _ => 0,
                },
            }),
            _ => None,
        })
        .collect()
}
