//! Whole-team findings (the *validate* report): what is valid resource by resource but wrong
//! together: routes that can never match because an earlier one takes all their traffic,
//! clusters, secrets and route configs nothing uses, listeners clashing on a port or served by
//! no Envoy, and certificates expired or about to.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::listener::ListenerSpec;
use crate::resource::{AnySpec, RefTarget, ResourceKind};
use crate::route_config::{PathMatchType, Route, RouteConfigSpec};
use crate::secret::SecretSummary;

/// How far ahead an expiring certificate is reported.
pub const EXPIRY_WARNING: Duration = Duration::days(30);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Traffic is or will be affected.
    Error,
    /// Probably a mistake.
    Warning,
    /// Worth knowing.
    Info,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    /// `shadowedRoute`, `unreferencedCluster`, `unreferencedSecret`, `unreferencedRouteConfig`,
    /// `portClash`, `noDataplane`, `certificateExpired`, `certificateExpiring`.
    pub code: String,
    /// The resource it is about: its kind (`clusters`, `route-configs`, …) and name.
    pub kind: String,
    pub name: String,
    /// JSON pointer into the resource, where there is one place to look.
    pub field: String,
    pub message: String,
}

/// One team's resources, as stored.
pub struct TeamResources<'a> {
    /// Every spec of the team but secrets, by name.
    pub specs: &'a [(String, AnySpec)],
    /// Secrets by name, as their summaries (material is never read for this).
    pub secrets: &'a [(String, SecretSummary)],
}

/// Everything worth telling about the team's resources, most severe first.
pub fn findings(team: &TeamResources<'_>, now: DateTime<Utc>) -> Vec<Finding> {
    let mut out = Vec::new();
    let referenced: BTreeSet<(ResourceKind, String)> = team
        .specs
        .iter()
        .flat_map(|(_, spec)| spec.references())
        .filter_map(|r| match r.target {
            RefTarget::Name(name) => Some((r.kind, name)),
            RefTarget::Id(_) => None,
        })
        .collect();
    let dataplanes = team
        .specs
        .iter()
        .filter(|(_, s)| matches!(s, AnySpec::Dataplane(_)))
        .count();
    let mut listeners = Vec::new();
    for (name, spec) in team.specs {
        let unreferenced = |kind: ResourceKind, what: &str| -> Option<Finding> {
            (!referenced.contains(&(kind, name.clone()))).then(|| Finding {
                severity: Severity::Warning,
                code: format!("unreferenced{what}"),
                kind: kind.collection().into(),
                name: name.clone(),
                field: String::new(),
                message: format!("no resource of the team uses this {}", kind.singular()),
            })
        };
        match spec {
            AnySpec::Cluster(_) => out.extend(unreferenced(ResourceKind::Cluster, "Cluster")),
            AnySpec::RouteConfig(routes) => {
                out.extend(unreferenced(ResourceKind::RouteConfig, "RouteConfig"));
                shadowed_routes(name, routes, &mut out);
            }
            AnySpec::Listener(listener) => {
                if dataplanes == 0 {
                    out.push(Finding {
                        severity: Severity::Warning,
                        code: "noDataplane".into(),
                        kind: ResourceKind::Listener.collection().into(),
                        name: name.clone(),
                        field: String::new(),
                        message: "the team has no dataplane, so no Envoy serves this listener"
                            .into(),
                    });
                }
                listeners.push((name, listener));
            }
            _ => {}
        }
    }
    port_clashes(&listeners, &mut out);
    for (name, secret) in team.secrets {
        if !referenced.contains(&(ResourceKind::Secret, name.clone())) {
            out.push(Finding {
                severity: Severity::Info,
                code: "unreferencedSecret".into(),
                kind: ResourceKind::Secret.collection().into(),
                name: name.clone(),
                field: String::new(),
                message: "no listener or cluster of the team uses this secret".into(),
            });
        }
        for (i, cert) in secret.certificates.iter().enumerate() {
            let Ok(not_after) = DateTime::parse_from_rfc3339(&cert.not_after) else {
                continue;
            };
            let not_after = not_after.with_timezone(&Utc);
            let (severity, code, message) = if not_after <= now {
                (
                    Severity::Error,
                    "certificateExpired",
                    format!("{} expired at {}", cert.subject, cert.not_after),
                )
            } else if not_after <= now + EXPIRY_WARNING {
                (
                    Severity::Warning,
                    "certificateExpiring",
                    format!("{} expires at {}", cert.subject, cert.not_after),
                )
            } else {
                continue;
            };
            out.push(Finding {
                severity,
                code: code.into(),
                kind: ResourceKind::Secret.collection().into(),
                name: name.clone(),
                field: format!("/certificates/{i}/notAfter"),
                message,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.severity, &a.kind, &a.name, &a.field).cmp(&(&b.severity, &b.kind, &b.name, &b.field))
    });
    out
}

/// Routes an earlier route of the same virtual host takes every request of.
fn shadowed_routes(name: &str, routes: &RouteConfigSpec, out: &mut Vec<Finding>) {
    for (v, vhost) in routes.virtual_hosts.iter().enumerate() {
        for (j, later) in vhost.routes.iter().enumerate() {
            let Some((i, earlier)) = vhost.routes[..j]
                .iter()
                .enumerate()
                .find(|(_, earlier)| covers(earlier, later))
            else {
                continue;
            };
            out.push(Finding {
                severity: Severity::Warning,
                code: "shadowedRoute".into(),
                kind: ResourceKind::RouteConfig.collection().into(),
                name: name.to_string(),
                field: format!("/virtualHosts/{v}/routes/{j}"),
                message: format!(
                    "route {} can never match: route {} before it matches every request it would",
                    later.label(&vhost.name, j),
                    earlier.label(&vhost.name, i)
                ),
            });
        }
    }
}

/// Whether every request `later` matches is matched by `earlier` (conservatively: only when
/// that is certain from the match alone).
fn covers(earlier: &Route, later: &Route) -> bool {
    let (a, b) = (&earlier.route_match, &later.route_match);
    if !a.headers.is_empty() || !a.query_parameters.is_empty() {
        return false;
    }
    let methods = a.methods.is_empty()
        || (!b.methods.is_empty() && b.methods.iter().all(|m| a.methods.contains(m)));
    let path = match (&a.path.kind, &b.path.kind) {
        (PathMatchType::Prefix, PathMatchType::Prefix | PathMatchType::Exact) => {
            b.path.value.starts_with(&a.path.value)
        }
        (PathMatchType::Prefix, PathMatchType::Template) => {
            literal_prefix(&b.path.value).starts_with(&a.path.value)
        }
        // Every request path starts with `/`.
        (PathMatchType::Prefix, PathMatchType::Regex) => a.path.value == "/",
        (x, y) => x == y && a.path.value == b.path.value,
    };
    methods && path
}

/// A URI template's part before its first variable or wildcard.
fn literal_prefix(template: &str) -> &str {
    let end = template.find(['{', '*']).unwrap_or(template.len());
    &template[..end]
}

/// Listeners binding the same port on the same address (or the wildcard) for the same
/// dataplane (or all): the second cannot bind, and Envoy rejects it.
fn port_clashes(listeners: &[(&String, &ListenerSpec)], out: &mut Vec<Finding>) {
    let wildcard = |a: &str| matches!(a, "0.0.0.0" | "::" | "[::]");
    for (j, (name, later)) in listeners.iter().enumerate() {
        let clash = listeners[..j].iter().find(|(_, earlier)| {
            earlier.port == later.port
                && (earlier.address == later.address
                    || wildcard(&earlier.address)
                    || wildcard(&later.address))
                && match (&earlier.dataplane_id, &later.dataplane_id) {
                    (Some(x), Some(y)) => x == y,
                    _ => true,
                }
        });
        if let Some((other, _)) = clash {
            out.push(Finding {
                severity: Severity::Error,
                code: "portClash".into(),
                kind: ResourceKind::Listener.collection().into(),
                name: (*name).clone(),
                field: "/port".into(),
                message: format!(
                    "listener {other} binds {}:{} for the same Envoys: one of them cannot bind",
                    later.address, later.port
                ),
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(kind: ResourceKind, value: serde_json::Value) -> AnySpec {
        AnySpec::from_stored(kind, &value.to_string()).unwrap()
    }

    fn route(path_type: &str, path: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({"path": {"type": path_type, "value": path}});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"match": m, "action": {"type": "forward", "cluster": "app"}})
    }

    fn run(specs: Vec<(&str, AnySpec)>) -> Vec<(String, String, String)> {
        let specs: Vec<(String, AnySpec)> =
            specs.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
        let team = TeamResources {
            specs: &specs,
            secrets: &[],
        };
        findings(&team, Utc::now())
            .into_iter()
            .map(|f| (f.code, f.name, f.field))
            .collect()
    }

    #[test]
    fn a_route_behind_a_broader_one_is_shadowed_and_narrower_ones_are_not() {
        let routes = spec(
            ResourceKind::RouteConfig,
            json!({"virtualHosts": [{"name": "vh", "domains": ["*"], "routes": [
                route("prefix", "/api", json!({"headers": [{"name": "x", "exact": "1"}]})),
                route("prefix", "/api/v1", json!({})),
                route("exact", "/api/v1/users", json!({})),
                route("template", "/api/v1/{id}", json!({})),
                route("prefix", "/api", json!({"methods": ["POST"]})),
                route("prefix", "/other", json!({})),
                route("prefix", "/", json!({"methods": ["GET"]})),
                route("regex", "/x.*", json!({"methods": ["GET"]})),
                route("regex", "/y.*", json!({"methods": ["PUT"]})),
            ]}]}),
        );
        let cluster = spec(
            ResourceKind::Cluster,
            json!({"endpoints": [{"host": "127.0.0.1", "port": 1}]}),
        );
        let found = run(vec![("app", cluster), ("routes", routes)]);
        let shadowed: Vec<&str> = found
            .iter()
            .filter(|(code, _, _)| code == "shadowedRoute")
            .map(|(_, _, field)| field.as_str())
            .collect();
        // The header-conditioned first route shadows nothing; /api/v1 shadows the exact and
        // template routes; GET / shadows the GET regex but not the PUT one.
        assert_eq!(
            shadowed,
            [
                "/virtualHosts/0/routes/2",
                "/virtualHosts/0/routes/3",
                "/virtualHosts/0/routes/7"
            ]
        );
        // The route config itself is used by no listener.
        assert!(
            found
                .iter()
                .any(|(c, n, _)| c == "unreferencedRouteConfig" && n == "routes")
        );
        assert!(!found.iter().any(|(c, _, _)| c == "unreferencedCluster"));
    }

    #[test]
    fn listeners_on_one_port_for_the_same_envoys_clash() {
        let listener = |address: &str, port: u32, dataplane: Option<&str>| {
            spec(
                ResourceKind::Listener,
                json!({"address": address, "port": port, "dataplaneId": dataplane,
                    "filterChains": [{"filters": [{"type": "tcpProxy", "cluster": "app"}]}]}),
            )
        };
        let found = run(vec![
            ("a", listener("0.0.0.0", 80, None)),
            ("b", listener("127.0.0.1", 80, Some("dp"))),
            ("c", listener("127.0.0.1", 81, Some("dp"))),
            ("d", listener("127.0.0.1", 81, Some("other"))),
        ]);
        let clashes: Vec<&str> = found
            .iter()
            .filter(|(code, _, _)| code == "portClash")
            .map(|(_, name, _)| name.as_str())
            .collect();
        assert_eq!(clashes, ["b"]);
        assert!(found.iter().any(|(c, n, _)| c == "noDataplane" && n == "a"));
    }
}
