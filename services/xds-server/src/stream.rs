//! What every ADS stream shares, whichever protocol variant it speaks: who the peer is, the
//! order in which types are pushed, how Envoy's answers reach config, and the stream metrics.
//! [`crate::ads`] (state of the world) and [`crate::delta`] (incremental) hold only their own
//! protocol state on top of this.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use envoy_types::pb::envoy::config::core::v3::Node;
use flowplane_proto::state::v1::ReportStatusRequest;

use crate::delivery::{Deliveries, Tracked};
use flowplane_runtime::credential::DataplaneTokens;
use flowplane_xds::bootstrap::{
    DATAPLANE_TOKEN_HEADER, NODE_DATAPLANE_ID_KEY, NODE_TEAM_KEY, node_metadata,
};
use flowplane_xds::resource::{
    CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, EncodedResource, LISTENER_TYPE, ROUTE_TYPE,
    SECRET_TYPE,
};
use metrics::Counter;
use tonic::Status;

use crate::snapshot::{Dataplane, Store};
use crate::status::{News, Reporter};
use crate::views::Views;

/// Types pushed on a change, in make-before-break order: a listener or route may only arrive
/// once the clusters it uses (and their endpoints) are there, and a rotated secret reaches the
/// contexts that already name it before anything else changes.
pub const PUSH_ORDER: [&str; 6] = [
    SECRET_TYPE,
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    EXTENSION_CONFIG_TYPE,
];

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

/// What a stream's protocol machine starts with: the shared views, where Envoy's answers go,
/// and what the stream presented to prove its dataplane.
pub struct StreamContext {
    pub views: Arc<Views>,
    pub reporter: Reporter,
    pub credential: StreamCredential,
    /// Where the stream records what it delivered.
    pub deliveries: Arc<Deliveries>,
}

/// The dataplane token a stream presented (gRPC metadata [`DATAPLANE_TOKEN_HEADER`]), and the
/// keys that check it.
pub struct StreamCredential {
    pub presented: Option<String>,
    pub tokens: DataplaneTokens,
}

impl StreamCredential {
    /// Reads the token from a stream's request metadata.
    pub fn from_metadata(metadata: &tonic::metadata::MetadataMap, tokens: DataplaneTokens) -> Self {
        let presented = metadata
            .get(DATAPLANE_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Self { presented, tokens }
    }
}

/// Identifies the node: the team and dataplane its Flowplane bootstrap's metadata names, which
/// must exist, proven by the dataplane's token on the stream. A node that names a dataplane
/// without its token learns nothing, not even whether the dataplane exists.
pub fn identify(
    store: &Store,
    node: Option<&Node>,
    credential: &StreamCredential,
) -> Result<Peer, Status> {
    let node =
        node.ok_or_else(|| Status::invalid_argument("the first request must carry a node"))?;
    let field = |key: &str| node_metadata(node, key);
    let team = field(NODE_TEAM_KEY).ok_or_else(|| {
        Status::permission_denied(format!(
            "node metadata lacks {NODE_TEAM_KEY}; use the bootstrap from the envoy-config endpoint"
        ))
    })?;
    let dataplane_id = field(NODE_DATAPLANE_ID_KEY).ok_or_else(|| {
        Status::permission_denied(format!("node metadata lacks {NODE_DATAPLANE_ID_KEY}"))
    })?;
    let refused = || {
        Status::unauthenticated(format!(
            "unknown dataplane, or a missing or wrong {DATAPLANE_TOKEN_HEADER}; use the bootstrap from the envoy-config endpoint"
        ))
    };
    let dataplane = store.dataplane(&team, &dataplane_id).ok_or_else(refused)?;
    let proven = credential
        .presented
        .as_deref()
        .is_some_and(|token| credential.tokens.verify(&team, &dataplane.id, token));
    if !proven {
        return Err(refused());
    }
    Ok(Peer {
        node_id: node.id.clone(),
        team,
        dataplane,
    })
}

/// Whether the stream's dataplane still exists: a deleted dataplane's open streams end at the
/// next change of its team, so it stops receiving anything (rotated secrets included).
pub fn still_registered(store: &Store, peer: &Peer) -> Result<(), Status> {
    match store.dataplane(&peer.team, &peer.dataplane.id) {
        Some(_) => Ok(()),
        None => Err(Status::unauthenticated(format!(
            "dataplane {} of team {} was deleted",
            peer.dataplane.name, peer.team
        ))),
    }
}

/// Counts a stream in `xds_connected_streams` for as long as it lives, however it ends, and
/// holds the stream's metric handles: each is looked up by name and labels once, on its
/// first use, not on every push.
pub struct Connected {
    protocol: Protocol,
    node_id: String,
    delivery: Tracked,
    /// `xds_pushes_total` and `xds_nacks_total` for each of [`TYPES`].
    pushes: [OnceLock<Counter>; TYPES.len()],
    nacks: [OnceLock<Counter>; TYPES.len()],
}

/// The types whose metric handles a stream keeps; any other is looked up on each use.
const TYPES: [&str; 6] = [
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    EXTENSION_CONFIG_TYPE,
];

impl Connected {
    pub fn new(peer: &Peer, protocol: Protocol, deliveries: &Arc<Deliveries>) -> Self {
        tracing::info!(node = %peer.node_id, team = %peer.team, dataplane = %peer.dataplane.name, protocol = protocol.label(), "Envoy connected");
        metrics::gauge!("xds_connected_streams", "protocol" => protocol.label()).increment(1.0);
        Self {
            protocol,
            node_id: peer.node_id.clone(),
            delivery: deliveries.track(peer, protocol.label()),
            pushes: Default::default(),
            nacks: Default::default(),
        }
    }

    /// Counts and records one response sent, at `version`.
    pub fn pushed(&self, type_url: &str, version: &str) {
        self.increment(&self.pushes, "xds_pushes_total", type_url);
        self.delivery.pushed(type_url, version);
    }

    /// Records that the Envoy already held `version` (nothing was sent).
    pub fn held(&self, type_url: &str, version: &str) {
        self.delivery.held(type_url, version);
    }

    /// Records Envoy's ACK of `version`.
    pub fn acked(&self, type_url: &str, version: &str) {
        self.delivery.acked(type_url, version);
    }

    /// Counts, records and logs a NACK of `version` (a response holding `resources`). Envoy
    /// keeps its last good config for the rejected resources.
    pub fn note_nack<'r>(
        &self,
        peer: &Peer,
        type_url: &str,
        version: &str,
        resources: impl Iterator<Item = &'r str>,
        error: &str,
    ) {
        self.increment(&self.nacks, "xds_nacks_total", type_url);
        self.delivery.nacked(type_url, version, resources, error);
        tracing::warn!(node = %peer.node_id, type_url = %type_url, protocol = self.protocol.label(), error = %error, "NACK");
    }

    fn increment(
        &self,
        handles: &[OnceLock<Counter>; TYPES.len()],
        name: &'static str,
        type_url: &str,
    ) {
        let register = || metrics::counter!(name, "type" => short_type(type_url), "protocol" => self.protocol.label());
        match TYPES.iter().position(|t| *t == type_url) {
            Some(index) => handles[index].get_or_init(register).increment(1),
            None => register().increment(1),
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

/// What Envoy said about one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Rejected(String),
}

/// Reports Envoy's answer about the resources of one response (`resources`, at `version`)
/// to config, which turns it into per-resource status. Both protocols report the same way.
/// Most answers repeat what another Envoy of the dataplane already said, so the report is
/// only built when it is news.
pub fn report<'r>(
    reporter: &Reporter,
    peer: &Peer,
    type_url: &str,
    version: &str,
    resources: impl Iterator<Item = &'r EncodedResource> + Clone,
    verdict: &Verdict,
) {
    let (accepted, error_message) = match verdict {
        Verdict::Accepted => (true, ""),
        Verdict::Rejected(error) => (false, error.as_str()),
    };
    let news = News {
        team: &peer.team,
        dataplane: &peer.dataplane.name,
        type_url,
        version,
        accepted,
        error_message,
        resource_names: resources.clone().map(|r| r.name.as_str()),
    };
    reporter.report_news(news, || ReportStatusRequest {
        team: peer.team.clone(),
        dataplane: peer.dataplane.name.clone(),
        node_id: peer.node_id.clone(),
        type_url: type_url.to_string(),
        version: version.to_string(),
        resource_names: resources.clone().map(|r| r.name.clone()).collect(),
        resource_revisions: resources.map(|r| r.revision).collect(),
        accepted,
        error_message: error_message.to_string(),
    });
}

pub fn short_type(type_url: &str) -> &'static str {
    match type_url {
        CLUSTER_TYPE => "cds",
        LISTENER_TYPE => "lds",
        ROUTE_TYPE => "rds",
        SECRET_TYPE => "sds",
        ENDPOINT_TYPE => "eds",
        EXTENSION_CONFIG_TYPE => "ecds",
        _ => "other",
    }
}

/// A stream's state per type: a handful of entries found by type URL. A short list rather
/// than a hash map, with the well-known type URLs kept as `'static` strings: a lookup then
/// touches the list and the binary's constants, not a hash table and a heap string per
/// entry, which matters when a change walks 10,000 streams whose memory is not in cache.
pub struct ByType<T> {
    entries: Vec<(Cow<'static, str>, T)>,
}

/// The type URLs stored without an allocation of their own.
const KNOWN_TYPES: [&str; 6] = [
    CLUSTER_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
];

impl<T> Default for ByType<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<T: Default> ByType<T> {
    pub fn contains(&self, type_url: &str) -> bool {
        self.get(type_url).is_some()
    }

    pub fn get(&self, type_url: &str) -> Option<&T> {
        self.entries
            .iter()
            .find(|(t, _)| t == type_url)
            .map(|(_, state)| state)
    }

    pub fn get_mut(&mut self, type_url: &str) -> Option<&mut T> {
        self.entries
            .iter_mut()
            .find(|(t, _)| t == type_url)
            .map(|(_, state)| state)
    }

    /// The state of `type_url`, created empty if the stream had none.
    pub fn entry(&mut self, type_url: &str) -> &mut T {
        let index = match self.entries.iter().position(|(t, _)| t == type_url) {
            Some(index) => index,
            None => {
                let key = match KNOWN_TYPES.iter().find(|t| **t == type_url) {
                    Some(known) => Cow::Borrowed(*known),
                    None => Cow::Owned(type_url.to_string()),
                };
                self.entries.push((key, T::default()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[index].1
    }
}
