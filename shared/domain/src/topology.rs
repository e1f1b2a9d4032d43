//! The shape of the topology report: a team's resources as a graph, listeners → route configs
//! → clusters → endpoints (and the secrets and dataplanes they name), each node with what
//! every dataplane's Envoys said about it. The edges are the references the API checks on
//! every write ([`AnySpec::references`]), so the graph is exactly what the resources say; the
//! per-route view of the same is the route-flows report.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::resource::{AnySpec, RefTarget, ResourceKind};

/// The team's graph.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Topology {
    /// Dataplanes, listeners, route configs, clusters and secrets, in that order, by name.
    pub nodes: Vec<TopologyNode>,
    /// One per reference, from the referring resource to the one it names.
    pub edges: Vec<TopologyEdge>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopologyNode {
    /// `{kind}/{name}`, what edges name.
    pub id: String,
    /// `dataplanes`, `listeners`, `route-configs`, `clusters` or `secrets`.
    pub kind: String,
    pub name: String,
    /// A line about it: a listener's address, a cluster's endpoints, a secret's type.
    pub detail: String,
    /// What each dataplane's Envoys last said about it.
    pub status: Vec<NodeStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NodeStatus {
    pub dataplane: String,
    /// `accepted`, `programmed`, `rejected` or `quarantined`.
    pub state: String,
    /// Envoy's message when rejected.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TopologyEdge {
    pub from: String,
    pub to: String,
    /// Where in `from` the reference is (JSON pointer).
    pub field: String,
}

/// One resource as stored: its id (dataplanes are referenced by it), name and spec; secrets
/// come as their type alone (their material is never read for this).
pub enum Stored<'a> {
    Spec {
        id: &'a str,
        name: &'a str,
        spec: &'a AnySpec,
    },
    Secret {
        name: &'a str,
        secret_type: &'a str,
    },
}

/// The graph of `resources`, with `status` keyed by (kind, name).
pub fn topology(
    resources: &[Stored<'_>],
    status: &HashMap<(String, String), Vec<NodeStatus>>,
) -> Topology {
    let order = [
        ResourceKind::Dataplane,
        ResourceKind::Listener,
        ResourceKind::RouteConfig,
        ResourceKind::Cluster,
        ResourceKind::Secret,
    ];
    let dataplane_names: HashMap<&str, &str> = resources
        .iter()
        .filter_map(|r| match r {
            Stored::Spec {
                id,
                name,
                spec: AnySpec::Dataplane(_),
            } => Some((*id, *name)),
            _ => None,
        })
        .collect();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for resource in resources {
        let (kind, name, detail) = match resource {
            Stored::Secret { name, secret_type } => {
                (ResourceKind::Secret, *name, (*secret_type).to_string())
            }
            Stored::Spec { name, spec, .. } => (spec.kind(), *name, detail_of(spec)),
        };
        if !order.contains(&kind) {
            continue;
        }
        let id = format!("{}/{name}", kind.collection());
        if let Stored::Spec { spec, .. } = resource {
            for reference in spec.references() {
                let target = match &reference.target {
                    RefTarget::Name(n) => n.as_str(),
                    RefTarget::Id(id) => dataplane_names.get(id.as_str()).copied().unwrap_or(id),
                };
                edges.push(TopologyEdge {
                    from: id.clone(),
                    to: format!("{}/{target}", reference.kind.collection()),
                    field: reference.field,
                });
            }
        }
        nodes.push(TopologyNode {
            status: status
                .get(&(kind.collection().to_string(), name.to_string()))
                .cloned()
                .unwrap_or_default(),
            id,
            kind: kind.collection().to_string(),
            name: name.to_string(),
            detail,
        });
    }
    let rank = |kind: &str| {
        order
            .iter()
            .position(|k| k.collection() == kind)
            .unwrap_or(usize::MAX)
    };
    nodes.sort_by(|a, b| (rank(&a.kind), &a.name).cmp(&(rank(&b.kind), &b.name)));
    edges.sort_by(|a, b| (&a.from, &a.field).cmp(&(&b.from, &b.field)));
    Topology { nodes, edges }
}

fn detail_of(spec: &AnySpec) -> String {
    match spec {
        AnySpec::Listener(l) => format!("{}:{}", l.address, l.port),
        AnySpec::Cluster(c) => c
            .endpoints
            .iter()
            .map(|e| format!("{}:{}", e.host, e.port))
            .collect::<Vec<_>>()
            .join(", "),
        AnySpec::RouteConfig(r) => {
            let routes: usize = r.virtual_hosts.iter().map(|v| v.routes.len()).sum();
            format!("{} virtual hosts, {routes} routes", r.virtual_hosts.len())
        }
        AnySpec::Dataplane(_) | AnySpec::Secret(_) | AnySpec::LearningSession(_) => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn spec(kind: ResourceKind, body: &str) -> AnySpec {
        match AnySpec::parse(kind, body) {
            Ok(parsed) => parsed.spec,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn references_become_edges_and_status_lands_on_its_node() {
        let cluster = spec(
            ResourceKind::Cluster,
            r#"{"endpoints": [{"host": "10.0.0.5", "port": 8080}]}"#,
        );
        let routes = spec(
            ResourceKind::RouteConfig,
            r#"{"virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"path": {"type": "prefix", "value": "/"}},
                 "action": {"type": "forward", "cluster": "web"}}]}]}"#,
        );
        let resources = [
            Stored::Spec {
                id: "2",
                name: "routes",
                spec: &routes,
            },
            Stored::Spec {
                id: "1",
                name: "web",
                spec: &cluster,
            },
            Stored::Secret {
                name: "cert",
                secret_type: "tlsCertificate",
            },
        ];
        let status = HashMap::from([(
            ("clusters".to_string(), "web".to_string()),
            vec![NodeStatus {
                dataplane: "edge".into(),
                state: "rejected".into(),
                error: "bad".into(),
            }],
        )]);
        let graph = topology(&resources, &status);
        let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            ["route-configs/routes", "clusters/web", "secrets/cert"]
        );
        assert_eq!(graph.nodes[1].detail, "10.0.0.5:8080");
        assert_eq!(graph.nodes[1].status[0].state, "rejected");
        assert!(graph.nodes[0].status.is_empty());
        assert_eq!(
            graph.edges,
            [TopologyEdge {
                from: "route-configs/routes".into(),
                to: "clusters/web".into(),
                field: "/virtualHosts/0/routes/0/action/cluster".into(),
            }]
        );
    }
}
