//! Route configurations: a `RouteConfigSpec` becomes one Envoy `RouteConfiguration` (served
//! over RDS). Virtual hosts and route order are kept as written, because Envoy takes the first
//! route that matches. What a route matches lives in `route_match`, what it does in `action`.

mod action;
mod filter_overrides;
pub(crate) mod route_match;

use std::collections::HashSet;

use envoy_types::pb::envoy::config::route::v3::{
    Route as EnvoyRoute, RouteConfiguration, VirtualHost as EnvoyVirtualHost,
};
use flowplane_domain::error::Path;
use flowplane_domain::route_config::{Route, RouteConfigSpec, VirtualHost};

use crate::TranslateError;
use crate::headers::header_value_options;

pub fn translate_route_config(
    name: &str,
    spec: &RouteConfigSpec,
) -> Result<RouteConfiguration, TranslateError> {
    let hosts = Path::root().field("virtualHosts");
    check_unique_domains(spec, &hosts)?;
    let virtual_hosts = spec
        .virtual_hosts
        .iter()
        .enumerate()
        .map(|(i, vh)| virtual_host(vh, &hosts.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        ..Default::default()
    })
}

/// Envoy rejects the whole route configuration when two virtual hosts claim one domain.
fn check_unique_domains(spec: &RouteConfigSpec, hosts: &Path) -> Result<(), TranslateError> {
    let mut seen = HashSet::new();
    for (i, vh) in spec.virtual_hosts.iter().enumerate() {
        for (j, domain) in vh.domains.iter().enumerate() {
            if !seen.insert(domain.as_str()) {
                let path = hosts.index(i).field("domains").index(j);
                let message = format!("domain '{domain}' is already used by another virtual host");
                return Err(TranslateError::at(&path, message));
            }
        }
    }
    Ok(())
}

fn virtual_host(vh: &VirtualHost, path: &Path) -> Result<EnvoyVirtualHost, TranslateError> {
    if vh.domains.is_empty() {
        let message = "at least one domain is required (use \"*\" for any host)";
        return Err(TranslateError::at(&path.field("domains"), message));
    }
    let routes_path = path.field("routes");
    let routes = vh
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| route(r, r.label(&vh.name, i), &routes_path.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EnvoyVirtualHost {
        name: vh.name.clone(),
        domains: vh.domains.clone(),
        routes,
        request_headers_to_add: header_value_options(&vh.request_headers_to_add),
        request_headers_to_remove: vh.request_headers_to_remove.clone(),
        response_headers_to_add: header_value_options(&vh.response_headers_to_add),
        response_headers_to_remove: vh.response_headers_to_remove.clone(),
        typed_per_filter_config: filter_overrides::translate(
            &vh.filter_overrides,
            &path.field("filterOverrides"),
        )?,
        ..Default::default()
    })
}

fn route(route: &Route, name: String, path: &Path) -> Result<EnvoyRoute, TranslateError> {
    let route_match = route_match::translate(&route.route_match, &path.field("match"))?;
    let action = action::translate(
        &route.action,
        &route.route_match.path,
        &path.field("action"),
    )?;
    Ok(EnvoyRoute {
        name,
        r#match: Some(route_match),
        action: Some(action),
        request_headers_to_add: header_value_options(&route.request_headers_to_add),
        request_headers_to_remove: route.request_headers_to_remove.clone(),
        response_headers_to_add: header_value_options(&route.response_headers_to_add),
        response_headers_to_remove: route.response_headers_to_remove.clone(),
        typed_per_filter_config: filter_overrides::translate(
            &route.filter_overrides,
            &path.field("filterOverrides"),
        )?,
        ..Default::default()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use flowplane_domain::route_config::{
        ForwardAction, PathMatch, PathMatchType, RouteAction, RouteMatch,
    };

    fn forward_route(name: Option<&str>) -> Route {
        Route {
            name: name.map(str::to_string),
            route_match: RouteMatch {
                path: PathMatch {
                    kind: PathMatchType::Prefix,
                    value: "/".into(),
                },
                headers: vec![],
                query_parameters: vec![],
                methods: vec![],
            },
            action: RouteAction::Forward(ForwardAction {
                cluster: "backend".into(),
                timeout_seconds: None,
                prefix_rewrite: None,
                regex_rewrite: None,
                template_rewrite: None,
                host_rewrite: None,
                retry_policy: None,
                request_mirror: None,
            }),
            request_headers_to_add: vec![],
            request_headers_to_remove: vec![],
            response_headers_to_add: vec![],
            response_headers_to_remove: vec![],
            filter_overrides: Default::default(),
        }
    }

    fn host(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            routes,
            request_headers_to_add: vec![],
            request_headers_to_remove: vec![],
            response_headers_to_add: vec![],
            response_headers_to_remove: vec![],
            filter_overrides: Default::default(),
        }
    }

    #[test]
    fn virtual_hosts_and_routes_keep_their_order_and_names() {
        let spec = RouteConfigSpec {
            virtual_hosts: vec![
                host(
                    "api",
                    &["api.example.com", "api.example.com:8080"],
                    vec![forward_route(Some("first")), forward_route(None)],
                ),
                host("any", &["*"], vec![forward_route(Some("fallback"))]),
            ],
        };
        let config = translate_route_config("rc", &spec).unwrap();
        assert_eq!(config.name, "rc");
        let names: Vec<_> = config
            .virtual_hosts
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["api", "any"]);
        assert_eq!(
            config.virtual_hosts[0].domains,
            ["api.example.com", "api.example.com:8080"]
        );
        let routes: Vec<_> = config.virtual_hosts[0]
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            routes,
            ["first", "api#1"],
            "an unnamed route is named by position"
        );
        assert!(config.virtual_hosts[1].routes[0].r#match.is_some());
        assert!(config.virtual_hosts[1].routes[0].action.is_some());
    }

    #[test]
    fn a_virtual_host_needs_a_domain() {
        let spec = RouteConfigSpec {
            virtual_hosts: vec![host("ok", &["*"], vec![]), host("empty", &[], vec![])],
        };
        let error = translate_route_config("rc", &spec).unwrap_err();
        assert_eq!(error.field, "/virtualHosts/1/domains");
    }

    #[test]
    fn a_domain_may_belong_to_one_virtual_host_only() {
        let spec = RouteConfigSpec {
            virtual_hosts: vec![
                host("a", &["x.example", "*"], vec![]),
                host("b", &["*"], vec![]),
            ],
        };
        let error = translate_route_config("rc", &spec).unwrap_err();
        assert_eq!(error.field, "/virtualHosts/1/domains/0");
    }

    #[test]
    fn errors_inside_routes_carry_the_full_path() {
        let mut bad = forward_route(None);
        bad.route_match.methods = vec!["get".into()];
        let spec = RouteConfigSpec {
            virtual_hosts: vec![host("a", &["*"], vec![forward_route(None), bad])],
        };
        let error = translate_route_config("rc", &spec).unwrap_err();
        assert_eq!(error.field, "/virtualHosts/0/routes/1/match/methods/0");
    }
}
