//! Reports about a team. Route flows, from its configuration: where a request arriving on
//! each listener goes — through which route config, virtual host and route, to which
//! clusters and endpoints — one row per route, in listener order, as a person reading "what
//! serves what" wants it. Usage, from Envoy's access logs: how many requests each listener,
//! route and cluster served in a window, by status class, busiest first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cluster::ClusterSpec;
use crate::listener::{ListenerSpec, NetworkFilter};
use crate::route_config::{PathMatch, RouteAction, RouteConfigSpec};

/// One route of one listener, end to end.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteFlow {
    pub listener: String,
    pub address: String,
    pub port: u32,
    /// The dataplane (id) the listener is bound to; absent: every dataplane of the team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataplane_id: Option<String>,
    pub route_config: String,
    pub virtual_host: String,
    pub domains: Vec<String>,
    /// The route's name, or `<virtual host>#<index>` (as Envoy's stats and logs name it).
    pub route: String,
    pub path: PathMatch,
    /// Methods the route is limited to; empty: any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// `forward`, `weighted`, `redirect` or `directResponse`.
    pub action: &'static str,
    /// Where the traffic goes (none for redirects and direct responses).
    pub destinations: Vec<Destination>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub cluster: String,
    /// Share of the route's traffic, in percent of the weights (100 for a forward).
    pub percent: f64,
    /// `host:port` of each endpoint; empty when the cluster does not exist.
    pub endpoints: Vec<String>,
}

/// The route flows of one team's listeners. A listener whose route config is missing (it
/// cannot be, while references are checked) contributes no rows.
pub fn route_flows(
    listeners: &[(String, ListenerSpec)],
    route_configs: &BTreeMap<String, RouteConfigSpec>,
    clusters: &BTreeMap<String, ClusterSpec>,
) -> Vec<RouteFlow> {
    let mut flows = Vec::new();
    for (listener_name, listener) in listeners {
        let route_config_names = listener.filter_chains.iter().flat_map(|chain| {
            chain.filters.iter().filter_map(|filter| match filter {
                NetworkFilter::HttpConnectionManager(h) => Some(&h.route_config_name),
                _ => None,
            })
        });
        for route_config_name in route_config_names {
            let Some(route_config) = route_configs.get(route_config_name) else {
                continue;
            };
            for host in &route_config.virtual_hosts {
                for (i, route) in host.routes.iter().enumerate() {
                    let (action, destinations) = destinations(&route.action, clusters);
                    flows.push(RouteFlow {
                        listener: listener_name.clone(),
                        address: listener.address.clone(),
                        port: listener.port,
                        dataplane_id: listener.dataplane_id.clone(),
                        route_config: route_config_name.clone(),
                        virtual_host: host.name.clone(),
                        domains: host.domains.clone(),
                        route: route.label(&host.name, i),
                        path: route.route_match.path.clone(),
                        methods: route.route_match.methods.clone(),
                        action,
                        destinations,
                    });
                }
            }
        }
    }
    flows
}

fn destinations(
    action: &RouteAction,
    clusters: &BTreeMap<String, ClusterSpec>,
) -> (&'static str, Vec<Destination>) {
    let to = |cluster: &str, percent: f64| Destination {
        cluster: cluster.to_string(),
        percent,
        endpoints: clusters
            .get(cluster)
            .map(|c| {
                c.endpoints
                    .iter()
                    .map(|e| format!("{}:{}", e.host, e.port))
                    .collect()
            })
            .unwrap_or_default(),
    };
    match action {
        RouteAction::Forward(f) => ("forward", vec![to(&f.cluster, 100.0)]),
        RouteAction::Weighted(w) => {
            let total: u32 = w.clusters.iter().map(|c| c.weight).sum();
            let share = |weight: u32| {
                if total == 0 {
                    0.0
                } else {
                    // Two decimals: a share, not a measurement.
                    (f64::from(weight) * 10_000.0 / f64::from(total)).round() / 100.0
                }
            };
            let destinations = w
                .clusters
                .iter()
                .map(|c| to(&c.name, share(c.weight)))
                .collect();
            ("weighted", destinations)
        }
        RouteAction::Redirect(_) => ("redirect", Vec::new()),
        RouteAction::DirectResponse(_) => ("directResponse", Vec::new()),
    }
}

/// Requests one listener, route and cluster served in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    pub listener: String,
    /// Envoy's route name: the route's own, or `<virtual host>#<index>`; empty when no route
    /// matched.
    pub route: String,
    /// Empty when no upstream was involved (a direct response, a redirect, no route).
    pub cluster: String,
    pub requests: u64,
    /// Requests by status class: `2xx`, `4xx`…; `none` when no response was sent.
    pub statuses: BTreeMap<String, u64>,
    /// Mean time from the first byte received to the last byte sent.
    pub mean_duration_ms: f64,
}

/// One group of stored counts: (listener, route, cluster, status class, requests, summed
/// duration in ms).
pub type UsageGroup = (String, String, String, u16, u64, u64);

/// Rows from counts grouped by listener, route, cluster and status class; busiest first, then
/// by listener, route and cluster.
pub fn usage_rows(groups: impl IntoIterator<Item = UsageGroup>) -> Vec<UsageRow> {
    let mut rows: BTreeMap<(String, String, String), (UsageRow, u64)> = BTreeMap::new();
    for (listener, route, cluster, class, requests, duration_ms) in groups {
        let key = (listener.clone(), route.clone(), cluster.clone());
        let (row, duration) = rows.entry(key).or_insert_with(|| {
            let row = UsageRow {
                listener,
                route,
                cluster,
                requests: 0,
                statuses: BTreeMap::new(),
                mean_duration_ms: 0.0,
            };
            (row, 0)
        });
        row.requests = row.requests.saturating_add(requests);
        *duration = duration.saturating_add(duration_ms);
        *row.statuses.entry(status_class_label(class)).or_default() += requests;
    }
    let mut rows: Vec<UsageRow> = rows
        .into_values()
        .map(|(mut row, duration)| {
            if row.requests > 0 {
                // Two decimals: finer than Envoy's millisecond durations are not.
                let mean = duration as f64 / row.requests as f64;
                row.mean_duration_ms = (mean * 100.0).round() / 100.0;
            }
            row
        })
        .collect();
    // Stable: equal counts keep the key order they came in.
    rows.sort_by_key(|row| std::cmp::Reverse(row.requests));
    rows
}

/// `2xx` for 2, …; `none` for 0 (no response was sent).
pub fn status_class_label(class: u16) -> String {
    match class {
        1..=5 => format!("{class}xx"),
        _ => "none".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::resource::parse_spec;

    fn spec<T: crate::resource::Spec>(json: &str) -> T {
        parse_spec::<T>(json).unwrap_or_else(|e| panic!("{e}")).spec
    }

    #[test]
    fn each_route_of_each_listener_is_one_row_with_its_destinations() {
        let listener: ListenerSpec = spec(
            r#"{"port":10000,"filterChains":[{"filters":[{"type":"httpConnectionManager","routeConfigName":"r"}]}]}"#,
        );
        let routes: RouteConfigSpec = spec(
            r#"{"virtualHosts":[{"name":"api","domains":["api.example.com"],"routes":[
                {"name":"users","match":{"path":{"type":"prefix","value":"/users"},"methods":["GET"]},
                 "action":{"type":"forward","cluster":"users"}},
                {"match":{"path":{"type":"prefix","value":"/canary"}},
                 "action":{"type":"weighted","clusters":[{"name":"users","weight":3},{"name":"next","weight":1}]}},
                {"match":{"path":{"type":"exact","value":"/old"}},
                 "action":{"type":"redirect","pathRedirect":"/new"}}]}]}"#,
        );
        let users: ClusterSpec = spec(r#"{"endpoints":[{"host":"10.0.0.1","port":8080}]}"#);
        let flows = route_flows(
            &[("edge".into(), listener)],
            &BTreeMap::from([("r".to_string(), routes)]),
            &BTreeMap::from([("users".to_string(), users)]),
        );
        assert_eq!(flows.len(), 3);
        assert_eq!(flows[0].listener, "edge");
        assert_eq!(flows[0].port, 10000);
        assert_eq!(flows[0].route, "users");
        assert_eq!(flows[0].methods, ["GET"]);
        assert_eq!(flows[0].action, "forward");
        assert_eq!(flows[0].destinations[0].endpoints, ["10.0.0.1:8080"]);
        assert_eq!(flows[1].route, "api#1");
        let shares: Vec<f64> = flows[1].destinations.iter().map(|d| d.percent).collect();
        assert_eq!(shares, [75.0, 25.0]);
        assert!(
            flows[1].destinations[1].endpoints.is_empty(),
            "no such cluster"
        );
        assert_eq!(flows[2].action, "redirect");
        assert!(flows[2].destinations.is_empty());
    }

    #[test]
    fn usage_groups_become_one_row_per_route_and_cluster_busiest_first() {
        let group = |route: &str, class: u16, requests: u64, duration: u64| {
            let cluster = if route == "health" { "" } else { "users" };
            (
                "edge".to_string(),
                route.to_string(),
                cluster.to_string(),
                class,
                requests,
                duration,
            )
        };
        let rows = usage_rows([
            group("health", 2, 3, 3),
            group("users", 2, 8, 80),
            group("users", 5, 2, 120),
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].route, "users");
        assert_eq!(rows[0].requests, 10);
        assert_eq!(rows[0].statuses["2xx"], 8);
        assert_eq!(rows[0].statuses["5xx"], 2);
        assert_eq!(rows[0].mean_duration_ms, 20.0);
        assert_eq!(rows[1].cluster, "");
        assert_eq!(rows[1].mean_duration_ms, 1.0);
        assert_eq!(status_class_label(0), "none");
    }
}
