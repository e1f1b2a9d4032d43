//! What every ADS stream shares, whichever protocol variant it speaks: who the peer is, the
//! order in which types are pushed, how Envoy's answers reach config, and the stream metrics.
//! [`crate::ads`] (state of the world) and [`crate::delta`] (incremental) hold only their own
//! protocol state on top of this.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use flowplane_proto::state::v1::ReportStatusRequest;
use flowplane_xds::bootstrap::{NODE_DATAPLANE_ID_KEY, NODE_TEAM_KEY};
use flowplane_xds::resource::{CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use tonic::Status;

use crate::snapshot::{Dataplane, Store};
use crate::status::Reporter;

/// Types pushed on a change, in make-before-break order: a listener or route may only arrive
/// once the clusters it uses are there.
pub const PUSH_ORDER: [&str; 3] = [CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE];

/// The protocol variant of a stream, as it appears in metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Sotw,
    Delta,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Self::Sotw => "sotw",
            Self::Delta => "delta",
        }
    }
}

/// Who is on the other end of a stream.
#[derive(Debug, Clone)]
pub struct Peer {
    pub node_id: String,
    pub team: String,
    pub dataplane: Dataplane,
}

/// The stream's receiver is gone.
#[derive(Debug)]
pub struct Closed;

/// Identifies the node from the metadata its Flowplane bootstrap carries, and checks that the
/// dataplane exists in that team.
pub fn identify(store: &Store, node: Option<&Node>) -> Result<Peer, Status> {
    let node =
        node.ok_or_else(|| Status::invalid_argument("the first request must carry a node"))?;
    let field = |key: &str| {
        node.metadata
            .as_ref()
            .and_then(|m| m.fields.get(key))
            .and_then(|v| match &v.kind {
                Some(Kind::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
    };
    let team = field(NODE_TEAM_KEY).ok_or_else(|| {
        Status::permission_denied(format!(
            "node metadata lacks {NODE_TEAM_KEY}; use the bootstrap from the envoy-config endpoint"
        ))
    })?;
    let dataplane_id = field(NODE_DATAPLANE_ID_KEY).ok_or_else(|| {
        Status::permission_denied(format!("node metadata lacks {NODE_DATAPLANE_ID_KEY}"))
    })?;
    let dataplane = store
        .dataplane(&team, &dataplane_id)
        .ok_or_else(|| Status::permission_denied("unknown dataplane for this team"))?;
    Ok(Peer {
        node_id: node.id.clone(),
        team,
        dataplane,
    })
}

/// Counts a stream in `xds_connected_streams` for as long as it lives, however it ends.
pub struct Connected {
    protocol: Protocol,
    node_id: String,
}

impl Connected {
    pub fn new(peer: &Peer, protocol: Protocol) -> Self {
        tracing::info!(node = %peer.node_id, team = %peer.team, dataplane = %peer.dataplane.name, protocol = protocol.label(), "Envoy connected");
        metrics::gauge!("xds_connected_streams", "protocol" => protocol.label()).increment(1.0);
        Self {
            protocol,
            node_id: peer.node_id.clone(),
        }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!("xds_connected_streams", "protocol" => self.protocol.label())
            .decrement(1.0);
        tracing::info!(node = %self.node_id, protocol = self.protocol.label(), "Envoy disconnected");
    }
}

/// Counts one response sent.
pub fn count_push(protocol: Protocol, type_url: &str) {
    metrics::counter!("xds_pushes_total", "type" => short_type(type_url), "protocol" => protocol.label())
        .increment(1);
}

/// What Envoy said about one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Rejected(String),
}

/// Counts and logs a NACK. Envoy keeps its last good config for the rejected resources.
pub fn note_nack(peer: &Peer, protocol: Protocol, type_url: &str, error: &str) {
    metrics::counter!("xds_nacks_total", "type" => short_type(type_url), "protocol" => protocol.label())
        .increment(1);
    tracing::warn!(node = %peer.node_id, type_url = %type_url, protocol = protocol.label(), error = %error, "NACK");
}

/// Reports Envoy's answer about the resources of one response (named `names`, at `version`)
/// to config, which turns it into per-resource status. Both protocols report the same way.
pub fn report(
    reporter: &Reporter,
    peer: &Peer,
    type_url: &str,
    version: &str,
    names: Vec<String>,
    verdict: &Verdict,
) {
    let (accepted, error_message) = match verdict {
        Verdict::Accepted => (true, String::new()),
        Verdict::Rejected(error) => (false, error.clone()),
    };
    reporter.report(ReportStatusRequest {
        team: peer.team.clone(),
        dataplane: peer.dataplane.name.clone(),
        node_id: peer.node_id.clone(),
        type_url: type_url.to_string(),
        version: version.to_string(),
        resource_names: names,
        accepted,
        error_message,
    });
}

pub fn short_type(type_url: &str) -> &'static str {
    match type_url {
        CLUSTER_TYPE => "cds",
        LISTENER_TYPE => "lds",
        ROUTE_TYPE => "rds",
        _ => "other",
    }
}
