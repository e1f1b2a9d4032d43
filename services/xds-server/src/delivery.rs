//! What this replica delivered: for each Envoy stream, per type, the version last sent and
//! last acknowledged and whether a response awaits its answer; per dataplane, the last
//! [`NACK_HISTORY`] NACKs. Held in memory only and answered to config's delivery questions
//! over the bus ([`Deliveries::answer`]), so config can show the whole fleet's delivery
//! without a registry of replicas.
//!
//! Each stream updates its own entry (an uncontended lock per push and per answer); the
//! replica-wide registry is locked only when a stream starts or ends, on a NACK, and when a
//! question is answered.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use flowplane_domain::delivery::{
    DeliveryQuery, NACK_HISTORY, Nack, NodeDelivery, ReplicaDelivery, TypeDelivery,
};

use crate::stream::{PUSH_ORDER, Peer, short_type};

type Key = (String, String);

/// This replica's streams and NACKs.
pub struct Deliveries {
    replica: String,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    streams: HashMap<Key, HashMap<u64, Arc<Mutex<NodeDelivery>>>>,
    nacks: HashMap<Key, VecDeque<Nack>>,
}

/// One stream's entry, removed from the registry when the stream ends.
pub struct Tracked {
    deliveries: Arc<Deliveries>,
    key: Key,
    id: u64,
    node: Arc<Mutex<NodeDelivery>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Deliveries {
    pub fn new(replica: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            replica: replica.into(),
            registry: Mutex::default(),
        })
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Starts tracking a stream of `peer`.
    pub fn track(self: &Arc<Self>, peer: &Peer, protocol: &str) -> Tracked {
        let key = (peer.team.clone(), peer.dataplane.name.clone());
        let node = Arc::new(Mutex::new(NodeDelivery {
            node_id: peer.node_id.clone(),
            replica: self.replica.clone(),
            protocol: protocol.to_string(),
            connected_at: now(),
            types: Vec::new(),
        }));
        let mut registry = locked(&self.registry);
        registry.next_id += 1;
        let id = registry.next_id;
        registry
            .streams
            .entry(key.clone())
            .or_default()
            .insert(id, node.clone());
        Tracked {
            deliveries: self.clone(),
            key,
            id,
            node,
        }
    }

    /// This replica's answer about one dataplane.
    pub fn report(&self, query: &DeliveryQuery) -> ReplicaDelivery {
        let key = (query.team.clone(), query.dataplane.clone());
        let registry = locked(&self.registry);
        let mut nodes: Vec<NodeDelivery> = registry
            .streams
            .get(&key)
            .into_iter()
            .flat_map(HashMap::values)
            .map(|node| locked(node).clone())
            .collect();
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        ReplicaDelivery {
            replica: self.replica.clone(),
            nodes,
            nacks: registry
                .nacks
                .get(&key)
                .map(|n| n.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// Answers a question (a [`DeliveryQuery`] in JSON) with this replica's report in JSON;
    /// a question it cannot read gets no answer.
    pub fn answer(&self, question: &[u8]) -> Option<Vec<u8>> {
        let query: DeliveryQuery = serde_json::from_slice(question).ok()?;
        serde_json::to_vec(&self.report(&query)).ok()
    }
}

impl Tracked {
    /// A response of `type_url` at `version` went out.
    pub fn pushed(&self, type_url: &str, version: &str) {
        self.with_type(type_url, |t| {
            t.sent_version = Some(version.to_string());
            t.pending = true;
            t.pushes += 1;
        });
    }

    /// The Envoy already held `version` (a reconnect): nothing was sent.
    pub fn held(&self, type_url: &str, version: &str) {
        self.with_type(type_url, |t| {
            t.sent_version = Some(version.to_string());
            t.acked_version = Some(version.to_string());
        });
    }

    /// Envoy acknowledged `version`.
    pub fn acked(&self, type_url: &str, version: &str) {
        self.with_type(type_url, |t| {
            t.acked_version = Some(version.to_string());
            t.pending = false;
        });
    }

    /// Envoy rejected `version` of `type_url`, a response holding `resources`.
    pub fn nacked<'r>(
        &self,
        type_url: &str,
        version: &str,
        resources: impl Iterator<Item = &'r str>,
        error: &str,
    ) {
        let node_id = self.with_type(type_url, |t| {
            t.pending = false;
            t.nacks += 1;
        });
        let nack = Nack {
            at: now(),
            node_id,
            replica: self.deliveries.replica.clone(),
            type_name: short_type(type_url).to_string(),
            version: version.to_string(),
            resources: resources.map(str::to_string).collect(),
            error: error.to_string(),
        };
        let mut registry = locked(&self.deliveries.registry);
        let history = registry.nacks.entry(self.key.clone()).or_default();
        history.push_front(nack);
        history.truncate(NACK_HISTORY);
    }

    /// Changes the entry of `type_url` (made on first use, kept in push order); the node id.
    fn with_type(&self, type_url: &str, change: impl FnOnce(&mut TypeDelivery)) -> String {
        let mut node = locked(&self.node);
        let name = short_type(type_url);
        let index = match node.types.iter().position(|t| t.type_name == name) {
            Some(index) => index,
            None => {
                node.types.push(TypeDelivery {
                    type_name: name.to_string(),
                    sent_version: None,
                    acked_version: None,
                    pending: false,
                    pushes: 0,
                    nacks: 0,
                });
                let order = |t: &TypeDelivery| {
                    PUSH_ORDER
                        .iter()
                        .position(|u| short_type(u) == t.type_name)
                        .unwrap_or(usize::MAX)
                };
                node.types.sort_by_key(order);
                node.types
                    .iter()
                    .position(|t| t.type_name == name)
                    .unwrap_or(0)
            }
        };
        if let Some(entry) = node.types.get_mut(index) {
            change(entry);
        }
        node.node_id.clone()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut registry = locked(&self.deliveries.registry);
        if let Some(streams) = registry.streams.get_mut(&self.key) {
            streams.remove(&self.id);
            if streams.is_empty() {
                registry.streams.remove(&self.key);
            }
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
