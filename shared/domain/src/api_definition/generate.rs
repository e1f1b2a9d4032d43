//! Compiles API definitions into native resource bodies. The output is the JSON a user would
//! send to `/api/v1/clusters`, `/route-configs` and `/listeners`, so config validates and
//! translates it exactly like a hand-written resource: there is no second translation path.
//!
//! Names: a definition's clusters are `api-<definition>-<host>-<port>`, a dedicated
//! definition's route config and listener `api-<definition>`. Shared definitions of a team are
//! virtual hosts of one route config, [`SHARED_ROUTE_CONFIG`], served by the team's
//! [`SHARED_LISTENER`].

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{ApiDefinitionSpec, ApiFilters, ApiRoute, ListenerIsolation, Upstream};
use crate::ResourceKind;
use crate::filters::global_rate_limit::GlobalRateLimitOverride;
use crate::names::MAX_NAME_LEN;

pub const SHARED_LISTENER: &str = "default-gateway-listener";
pub const SHARED_ROUTE_CONFIG: &str = "default-gateway-routes";
pub const DEFAULT_SHARED_PORT: u32 = 10000;
/// `managed_by` of the shared gateway: every shared definition of the team contributes to it.
pub const SHARED_OWNER: &str = "api-definitions";

const CORS: &str = "cors";
const LOCAL_RATE_LIMIT: &str = "local-rate-limit";
const HEADER_MUTATION: &str = "header-mutation";
const JWT: &str = "jwt";
const GLOBAL_RATE_LIMIT: &str = "global-rate-limit";

/// One native resource a definition (or the team's shared gateway) needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub kind: ResourceKind,
    pub name: String,
    /// The body without `team`/`name`, as the native API takes it.
    pub body: Value,
    /// A definition's name, or [`SHARED_OWNER`].
    pub owner: String,
}

/// The resources `definition` owns alone: its clusters, and when dedicated, its route config
/// and listener.
pub fn owned_resources(definition: &str, spec: &ApiDefinitionSpec) -> Vec<Generated> {
    let mut out: Vec<Generated> = clusters(definition, spec)
        .into_iter()
        .map(|(name, body)| Generated {
            kind: ResourceKind::Cluster,
            name,
            body,
            owner: definition.to_string(),
        })
        .collect();
    if let (ListenerIsolation::Dedicated, Some(port)) = (spec.listener_isolation, spec.port) {
        let name = dedicated_name(definition);
        let defs = [(definition, spec)];
        out.push(Generated {
            kind: ResourceKind::RouteConfig,
            name: name.clone(),
            body: route_config(&defs),
            owner: definition.to_string(),
        });
        out.push(Generated {
            kind: ResourceKind::Listener,
            name: name.clone(),
            body: listener(&name, port, &defs),
            owner: definition.to_string(),
        });
    }
    out
}

/// The team's shared gateway for its shared definitions (in name order); empty when none.
pub fn shared_gateway(definitions: &[(&str, &ApiDefinitionSpec)], port: u32) -> Vec<Generated> {
    let mut shared: Vec<(&str, &ApiDefinitionSpec)> = definitions
        .iter()
        .copied()
        .filter(|(_, spec)| spec.listener_isolation == ListenerIsolation::Shared)
        .collect();
    if shared.is_empty() {
        return Vec::new();
    }
    shared.sort_by_key(|(name, _)| *name);
    vec![
        Generated {
            kind: ResourceKind::RouteConfig,
            name: SHARED_ROUTE_CONFIG.into(),
            body: route_config(&shared),
            owner: SHARED_OWNER.into(),
        },
        Generated {
            kind: ResourceKind::Listener,
            name: SHARED_LISTENER.into(),
            body: listener(SHARED_ROUTE_CONFIG, port, &shared),
            owner: SHARED_OWNER.into(),
        },
    ]
}

pub fn dedicated_name(definition: &str) -> String {
    resource_name(&format!("api-{definition}"))
}

pub fn cluster_name(definition: &str, upstream: &Upstream) -> String {
    resource_name(&format!(
        "api-{definition}-{}-{}",
        upstream.host, upstream.port
    ))
}

/// One cluster per distinct upstream, by name.
fn clusters(definition: &str, spec: &ApiDefinitionSpec) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for route in &spec.routes {
        let Ok(upstream) = Upstream::parse(&route.upstream) else {
            continue;
        };
        let mut body = json!({
            "serviceName": upstream.host,
            "endpoints": [{"host": upstream.host, "port": upstream.port}],
        });
        if upstream.tls {
            body["useTls"] = json!(true);
            body["tlsServerName"] = json!(upstream.host);
        }
        out.insert(cluster_name(definition, &upstream), body);
    }
    out
}

fn route_config(definitions: &[(&str, &ApiDefinitionSpec)]) -> Value {
    let used = used_filters(definitions);
    let hosts: Vec<Value> = definitions
        .iter()
        .map(|(name, spec)| virtual_host(name, spec, &used))
        .collect();
    json!({ "virtualHosts": hosts })
}

fn virtual_host(definition: &str, spec: &ApiDefinitionSpec, used: &UsedFilters) -> Value {
    let domains = match &spec.domain {
        // Clients send the port in Host when it is not the default one.
        Some(domain) => json!([domain, format!("{domain}:*")]),
        None => json!(["*"]),
    };
    let routes: Vec<Value> = spec
        .routes
        .iter()
        .enumerate()
        .map(|(i, route)| native_route(definition, i, route))
        .collect();
    let mut host = json!({"name": definition, "domains": domains, "routes": routes});
    let overrides = overrides(
        &spec.filters,
        used,
        true,
        &jwt_requirement(definition, None),
    );
    if !overrides.is_empty() {
        host["filterOverrides"] = Value::Object(overrides);
    }
    host
}

fn native_route(definition: &str, index: usize, route: &ApiRoute) -> Value {
    let cluster = Upstream::parse(&route.upstream)
        .map(|u| cluster_name(definition, &u))
        .unwrap_or_default();
    let mut action = json!({"type": "forward", "cluster": cluster});
    if let Some(timeout) = route.timeout_seconds {
        action["timeoutSeconds"] = json!(timeout);
    }
    if let Some(rewrite) = &route.prefix_rewrite {
        action["prefixRewrite"] = json!(rewrite);
    }
    let mut route_match = json!({"path": {"type": route.match_type, "value": route.path}});
    if !route.methods.is_empty() {
        route_match["methods"] = json!(route.methods);
    }
    let mut native = json!({
        "name": route.display_name(index),
        "match": route_match,
        "action": action,
    });
    let overrides = overrides(
        &route.filters,
        &UsedFilters::default(),
        false,
        &jwt_requirement(definition, Some(index)),
    );
    if !overrides.is_empty() {
        native["filterOverrides"] = Value::Object(overrides);
    }
    native
}

/// Which filters a listener needs, with the listener-level configuration for those that
/// require one. Every virtual host states its own setting (or `disabled`), so the
/// listener-level configuration never applies by itself.
#[derive(Debug, Default)]
struct UsedFilters {
    cors: bool,
    local_rate_limit: Option<Value>,
    header_mutation: Option<Value>,
    /// Every JWT provider of the listener's definitions, renamed per definition (and route),
    /// and the named requirement each virtual host or route selects.
    jwt_providers: Vec<Value>,
    jwt_requirements: BTreeMap<String, Vec<String>>,
    /// The limits of the first definition (or route) that has any, already scoped.
    global_rate_limit: Option<Value>,
}

/// A definition's (or route's) global limits with names made its own: counters are keyed by
/// team and limit name, so two definitions with a `per-client` limit must not share one.
fn scoped_limits(limits: &GlobalRateLimitOverride, scope: &str) -> Value {
    let renamed: Vec<Value> = limits
        .limits
        .iter()
        .map(|limit| {
            let mut limit = json!(limit);
            limit["name"] = json!(resource_name(&format!(
                "{scope}-{}",
                limit["name"].as_str().unwrap_or_default()
            )));
            limit
        })
        .collect();
    json!({ "limits": renamed })
}

/// The name of the JWT requirement of a definition (`route: None`) or one of its routes.
/// Provider names are prefixed with it, so definitions sharing a listener cannot collide.
fn jwt_requirement(definition: &str, route: Option<usize>) -> String {
    match route {
        None => definition.to_string(),
        Some(i) => format!("{definition}-route{i}"),
    }
}

fn used_filters(definitions: &[(&str, &ApiDefinitionSpec)]) -> UsedFilters {
    let mut used = UsedFilters::default();
    for (definition, spec) in definitions {
        let scopes = std::iter::once((None, &spec.filters)).chain(
            spec.routes
                .iter()
                .enumerate()
                .map(|(i, r)| (Some(i), &r.filters)),
        );
        for (route, filters) in scopes {
            if let Some(limits) = &filters.global_rate_limit
                && used.global_rate_limit.is_none()
            {
                let scope = jwt_requirement(definition, route);
                used.global_rate_limit = Some(scoped_limits(limits, &scope));
            }
            let Some(jwt) = &filters.jwt else { continue };
            let requirement = jwt_requirement(definition, route);
            let mut names = Vec::new();
            for provider in &jwt.providers {
                let name = format!("{requirement}-{}", provider.name);
                let mut renamed = json!(provider);
                renamed["name"] = json!(name);
                used.jwt_providers.push(renamed);
                names.push(name);
            }
            used.jwt_requirements.insert(requirement, names);
        }
    }
    let all_filters = definitions.iter().flat_map(|(_, spec)| {
        std::iter::once(&spec.filters).chain(spec.routes.iter().map(|r| &r.filters))
    });
    for filters in all_filters {
        used.cors |= filters.cors.is_some();
        if used.local_rate_limit.is_none() {
            used.local_rate_limit = filters.local_rate_limit.as_ref().map(|f| json!(f));
        }
        if used.header_mutation.is_none() {
            used.header_mutation = filters.header_mutation.as_ref().map(|f| json!(f));
        }
    }
    used
}

/// `filterOverrides` for a virtual host (`disable_unset`: filters the listener runs but this
/// host does not use are switched off) or a route. `scope` names the host's or route's JWT
/// requirement and prefixes its global limits.
fn overrides(
    filters: &ApiFilters,
    used: &UsedFilters,
    disable_unset: bool,
    scope: &str,
) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    // The listener's JWT filter checks nothing by its rules; a host or route with `jwt`
    // selects its own requirement.
    if filters.jwt.is_some() {
        out.insert(JWT.into(), json!({ "jwtRequirement": scope }));
    }
    match &filters.global_rate_limit {
        Some(limits) => {
            out.insert(
                GLOBAL_RATE_LIMIT.into(),
                json!({ "globalRateLimit": scoped_limits(limits, scope) }),
            );
        }
        None if disable_unset && used.global_rate_limit.is_some() => {
            out.insert(GLOBAL_RATE_LIMIT.into(), json!({ "disabled": true }));
        }
        None => {}
    }
    if let Some(cors) = &filters.cors {
        out.insert(CORS.into(), json!({ "cors": cors }));
    }
    match &filters.local_rate_limit {
        Some(limit) => {
            out.insert(LOCAL_RATE_LIMIT.into(), json!({ "localRateLimit": limit }));
        }
        None if disable_unset && used.local_rate_limit.is_some() => {
            out.insert(LOCAL_RATE_LIMIT.into(), json!({ "disabled": true }));
        }
        None => {}
    }
    match &filters.header_mutation {
        Some(changes) => {
            out.insert(HEADER_MUTATION.into(), json!({ "headerMutation": changes }));
        }
        None if disable_unset && used.header_mutation.is_some() => {
            out.insert(HEADER_MUTATION.into(), json!({ "disabled": true }));
        }
        None => {}
    }
    out
}

fn listener(route_config: &str, port: u32, definitions: &[(&str, &ApiDefinitionSpec)]) -> Value {
    let used = used_filters(definitions);
    let mut filters = Vec::new();
    if used.cors {
        filters.push(json!({"name": CORS, "filter": {"type": "cors"}}));
    }
    if !used.jwt_providers.is_empty() {
        filters.push(json!({"name": JWT, "filter": {"type": "jwtAuth",
            "providers": used.jwt_providers,
            "rules": [{"pathPrefix": "/", "providers": []}],
            "requirements": used.jwt_requirements}}));
    }
    if let Some(limits) = &used.global_rate_limit {
        let mut filter = limits.clone();
        filter["type"] = json!("globalRateLimit");
        filters.push(json!({"name": GLOBAL_RATE_LIMIT, "filter": filter}));
    }
    if let Some(limit) = &used.local_rate_limit {
        let mut filter = limit.clone();
        filter["type"] = json!("localRateLimit");
        filters.push(json!({"name": LOCAL_RATE_LIMIT, "filter": filter}));
    }
    if let Some(changes) = &used.header_mutation {
        let mut filter = changes.clone();
        filter["type"] = json!("headerMutation");
        filters.push(json!({"name": HEADER_MUTATION, "filter": filter}));
    }
    filters.push(json!({"filter": {"type": "router"}}));
    json!({
        "address": "0.0.0.0",
        "port": port,
        "protocol": "HTTP",
        "filterChains": [{"name": "default", "filters": [{
            "type": "httpConnectionManager",
            "routeConfigName": route_config,
            "httpFilters": filters,
        }]}],
    })
}

/// A valid resource name from `raw`: lowercase, disallowed characters replaced by `-`, and
/// when too long, shortened with a hash of the whole so distinct inputs stay distinct.
fn resource_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.len() > MAX_NAME_LEN {
        let hash = fnv1a(raw.as_bytes());
        name.truncate(MAX_NAME_LEN - 9);
        name = format!("{}-{hash:08x}", name.trim_end_matches(['-', '_', '.']));
    }
    name.trim_end_matches(['-', '_', '.']).to_string()
}

/// FNV-1a (32-bit): a stable, dependency-free hash for shortening names.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AnySpec;
    use crate::resource::parse_spec;

    fn spec(body: Value) -> ApiDefinitionSpec {
        parse_spec::<ApiDefinitionSpec>(&body.to_string())
            .unwrap_or_else(|e| panic!("{e}"))
            .spec
    }

    /// Every generated body must pass the native validation unchanged.
    fn assert_valid(generated: &[Generated]) {
        for g in generated {
            AnySpec::parse(g.kind, &g.body.to_string())
                .unwrap_or_else(|e| panic!("{} {}: {e}\n{}", g.kind.singular(), g.name, g.body));
        }
    }

    #[test]
    fn a_dedicated_definition_owns_its_clusters_route_config_and_listener() {
        let def = spec(
            json!({"domain": "pets.example.com", "listenerIsolation": "dedicated", "port": 18000,
            "filters": {"localRateLimit": {"maxTokens": 5}},
            "routes": [
                {"path": "/pets/{id}", "matchType": "template", "methods": ["GET"], "upstream": "http://127.0.0.1:9000"},
                {"path": "/pets", "upstream": "http://127.0.0.1:9000", "timeoutSeconds": 3},
                {"path": "/admin", "upstream": "https://admin.example.com"}]}),
        );
        let generated = owned_resources("pets", &def);
        let names: Vec<(&str, &str)> = generated
            .iter()
            .map(|g| (g.kind.collection(), g.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("clusters", "api-pets-127.0.0.1-9000"),
                ("clusters", "api-pets-admin.example.com-443"),
                ("route-configs", "api-pets"),
                ("listeners", "api-pets")
            ]
        );
        assert_valid(&generated);
        let vhost = &generated[2].body["virtualHosts"][0];
        assert_eq!(
            vhost["domains"],
            json!(["pets.example.com", "pets.example.com:*"])
        );
        assert_eq!(vhost["routes"][0]["match"]["path"]["type"], "template");
        assert_eq!(vhost["routes"][0]["match"]["methods"], json!(["GET"]));
        assert_eq!(
            vhost["filterOverrides"]["local-rate-limit"]["localRateLimit"]["maxTokens"],
            5
        );
        assert!(generated.iter().all(|g| g.owner == "pets"));
    }

    #[test]
    fn shared_definitions_become_virtual_hosts_of_one_gateway() {
        let a = spec(
            json!({"domain": "a.example.com", "filters": {"headerMutation": {"requestHeadersToAdd": [{"name": "x-a", "value": "1"}]}},
            "routes": [{"path": "/", "upstream": "http://127.0.0.1:9001"}]}),
        );
        let b = spec(json!({"routes": [{"path": "/b", "upstream": "http://127.0.0.1:9002"}]}));
        let generated = shared_gateway(&[("b", &b), ("a", &a)], DEFAULT_SHARED_PORT);
        assert_valid(&generated);
        assert_eq!(generated[0].name, SHARED_ROUTE_CONFIG);
        assert_eq!(generated[1].name, SHARED_LISTENER);
        assert_eq!(generated[1].body["port"], 10000);
        let hosts = &generated[0].body["virtualHosts"];
        assert_eq!(hosts[0]["name"], "a");
        assert_eq!(hosts[1]["domains"], json!(["*"]));
        // b does not use a's header mutation.
        assert_eq!(
            hosts[1]["filterOverrides"]["header-mutation"],
            json!({"disabled": true})
        );
        assert!(
            owned_resources("a", &a)
                .iter()
                .all(|g| g.kind == ResourceKind::Cluster)
        );
        assert!(shared_gateway(&[], DEFAULT_SHARED_PORT).is_empty());
    }

    #[test]
    fn jwt_providers_are_named_per_definition_and_selected_per_host_or_route() {
        let provider = |name: &str| {
            json!({"name": name, "issuer": "https://idp.example",
                "jwks": {"type": "local",
                    "inline": r#"{"keys":[{"kty":"oct","alg":"HS256","k":"c2VjcmV0"}]}"#}})
        };
        let a = spec(
            json!({"domain": "a.example.com", "filters": {"jwt": {"providers": [provider("idp")]}},
            "routes": [{"path": "/", "upstream": "http://127.0.0.1:9001"}]}),
        );
        let b = spec(json!({"domain": "b.example.com",
            "routes": [{"path": "/open", "upstream": "http://127.0.0.1:9002"},
                {"path": "/admin", "upstream": "http://127.0.0.1:9002",
                 "filters": {"jwt": {"providers": [provider("idp")]}}}]}));
        let generated = shared_gateway(&[("a", &a), ("b", &b)], DEFAULT_SHARED_PORT);
        assert_valid(&generated);
        let filters = &generated[1].body["filterChains"][0]["filters"][0]["httpFilters"];
        let jwt = &filters[0];
        assert_eq!(jwt["name"], JWT);
        let names: Vec<&str> = jwt["filter"]["providers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names, ["a-idp", "b-route1-idp"]);
        assert_eq!(
            jwt["filter"]["requirements"],
            json!({"a": ["a-idp"], "b-route1": ["b-route1-idp"]})
        );
        // Nothing is checked by rule: only hosts and routes that ask select a requirement.
        assert_eq!(
            jwt["filter"]["rules"],
            json!([{"pathPrefix": "/", "providers": []}])
        );
        let hosts = &generated[0].body["virtualHosts"];
        assert_eq!(
            hosts[0]["filterOverrides"][JWT],
            json!({"jwtRequirement": "a"})
        );
        assert!(hosts[1]["filterOverrides"].get(JWT).is_none());
        assert!(hosts[1]["routes"][0].get("filterOverrides").is_none());
        assert_eq!(
            hosts[1]["routes"][1]["filterOverrides"][JWT],
            json!({"jwtRequirement": "b-route1"})
        );
    }

    #[test]
    fn long_names_are_shortened_but_stay_distinct() {
        let long = "x".repeat(80);
        let a = resource_name(&format!("api-{long}-a"));
        let b = resource_name(&format!("api-{long}-b"));
        assert!(a.len() <= MAX_NAME_LEN && b.len() <= MAX_NAME_LEN);
        assert_ne!(a, b);
        assert_eq!(
            resource_name("api-Pets_API-HOST-80"),
            "api-pets_api-host-80"
        );
    }
}
