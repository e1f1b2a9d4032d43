//! The incremental (delta) ADS protocol: one task per Envoy stream that tracks, per type, what
//! the client subscribed to and which version of each resource it holds, and sends only the
//! difference. It asks the snapshot store what the node may see; it never translates anything.
//!
//! Rules it keeps (xDS protocol, "Incremental xDS"):
//! - a type's first request is a wildcard subscription when `resource_names_subscribe` is
//!   empty or contains `*`; `*` can be subscribed or unsubscribed later like any name;
//! - a name subscribed before its resource exists is sent once the resource appears;
//! - a resource the client holds that disappears (or leaves the node's scope) is listed in
//!   `removed_resources`; an unsubscribed one is simply forgotten, the client drops it itself;
//! - `initial_resource_versions` on a reconnect say what the client already holds, so only
//!   resources whose version differs are sent, whichever replica answers (versions are content
//!   hashes);
//! - every response has its own nonce and is answered on its own; a NACK is reported and never
//!   answered with the same content again, since Envoy keeps its last good version;
//! - on a change, updates go clusters → listeners → routes, and clusters are removed last,
//!   after the listeners and routes that might still use them were updated (make-before-break).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use flowplane_xds::resource::{CLUSTER_TYPE, EncodedResource, version_of};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::snapshot::{Interest, Store};
use crate::status::Reporter;
use crate::stream::{self, Closed, Connected, PUSH_ORDER, Peer, Protocol, Verdict};

/// The name that stands for "every resource of this type".
const WILDCARD: &str = "*";

/// Responses of one type still waiting for Envoy's answer. Envoy answers each in turn, so
/// this stays tiny; the bound only stops a client that never answers from growing it.
const MAX_IN_FLIGHT: usize = 64;

/// Serves one delta stream until either side ends it; responses go to `tx`.
pub(crate) async fn serve(
    store: Arc<Store>,
    reporter: Reporter,
    requests: Streaming<DeltaDiscoveryRequest>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
) {
    let session = Session {
        store,
        reporter,
        tx,
        types: HashMap::new(),
        nonce: 0,
    };
    session.run(requests).await;
}

#[derive(Default)]
struct TypeState {
    wildcard: bool,
    /// Names subscribed explicitly (never `*`).
    subscribed: BTreeSet<String>,
    /// name → version of each resource the client holds as far as this stream knows: what was
    /// sent to it, or what it declared in `initial_resource_versions`.
    held: BTreeMap<String, String>,
    /// nonce → what that response carried, until Envoy answers it.
    in_flight: BTreeMap<u64, Sent>,
}

struct Sent {
    version: String,
    names: Vec<String>,
}

/// What the client should change to hold what the node may see now.
struct Diff {
    /// The version of everything the client should hold of this type.
    version: String,
    updated: Vec<Arc<EncodedResource>>,
    removed: Vec<String>,
}

struct Session {
    store: Arc<Store>,
    reporter: Reporter,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    types: HashMap<String, TypeState>,
    nonce: u64,
}

impl Session {
    async fn run(mut self, mut requests: Streaming<DeltaDiscoveryRequest>) {
        let first = match requests.message().await {
            Ok(Some(first)) => first,
            _ => return,
        };
        let peer = match stream::identify(&self.store, first.node.as_ref()) {
            Ok(peer) => peer,
            Err(status) => {
                tracing::warn!(error = %status.message(), "refused a delta ADS stream");
                let _ = self.tx.send(Err(status)).await;
                return;
            }
        };
        let _connected = Connected::new(&peer, Protocol::Delta);
        let mut changes = self.store.watch(&peer.team);
        changes.mark_unchanged();
        let mut next = Some(first);
        loop {
            if let Some(request) = next.take() {
                // A change not pushed yet goes first, in push order: the answer to this request
                // may carry the new version of a route, whose new cluster must arrive before it.
                if changes.has_changed().unwrap_or(false) {
                    changes.mark_unchanged();
                    if self.push_changes(&peer).await.is_err() {
                        break;
                    }
                }
                if self.on_request(&peer, request).await.is_err() {
                    break;
                }
            }
            tokio::select! {
                request = requests.message() => match request {
                    Ok(Some(request)) => next = Some(request),
                    _ => break,
                },
                changed = changes.changed() => {
                    if changed.is_err() || self.push_changes(&peer).await.is_err() {
                        break;
                    }
                }
            }
        }
    }

    async fn on_request(
        &mut self,
        peer: &Peer,
        request: DeltaDiscoveryRequest,
    ) -> Result<(), Closed> {
        let type_url = request.type_url.clone();
        if type_url.is_empty() {
            return Ok(());
        }
        let first = !self.types.contains_key(&type_url);
        let state = self.types.entry(type_url.clone()).or_default();

        if !request.response_nonce.is_empty() {
            let answered = request
                .response_nonce
                .parse::<u64>()
                .ok()
                .and_then(|nonce| state.in_flight.remove(&nonce).map(|sent| (nonce, sent)));
            if let Some((nonce, sent)) = answered {
                // Envoy answers in order: anything older is no longer waiting for an answer.
                state.in_flight = state.in_flight.split_off(&nonce);
                let verdict = match &request.error_detail {
                    Some(error) => {
                        stream::note_nack(peer, Protocol::Delta, &type_url, &error.message);
                        Verdict::Rejected(error.message.clone())
                    }
                    None => Verdict::Accepted,
                };
                // A response that only removed resources has nothing to report status on.
                if !sent.names.is_empty() {
                    stream::report(
                        &self.reporter,
                        peer,
                        &type_url,
                        &sent.version,
                        sent.names,
                        &verdict,
                    );
                }
            }
        }

        let fresh = first && request.initial_resource_versions.is_empty();
        if first {
            // The legacy wildcard: a first request that names nothing wants everything.
            state.wildcard = request.resource_names_subscribe.is_empty();
            state.held = request.initial_resource_versions.into_iter().collect();
        }
        let mut subscriptions_changed = first;
        for name in request.resource_names_subscribe {
            subscriptions_changed = true;
            if name == WILDCARD {
                state.wildcard = true;
            } else {
                state.subscribed.insert(name);
            }
        }
        let mut unsubscribed = Vec::new();
        for name in request.resource_names_unsubscribe {
            subscriptions_changed = true;
            if name == WILDCARD {
                state.wildcard = false;
            } else {
                state.subscribed.remove(&name);
            }
            unsubscribed.push(name);
        }
        if !subscriptions_changed {
            return Ok(());
        }
        let mut diff = self.diff(peer, &type_url);
        if !unsubscribed.is_empty() {
            // The client drops what it unsubscribed from by itself: forget it rather than tell
            // it to remove it. Dropping the wildcard forgets everything not named explicitly.
            let state = self.types.entry(type_url.clone()).or_default();
            let dropped_wildcard = unsubscribed.iter().any(|n| n == WILDCARD);
            let forgotten: BTreeSet<String> = diff
                .removed
                .iter()
                .filter(|name| dropped_wildcard || unsubscribed.contains(name))
                .cloned()
                .collect();
            for name in &forgotten {
                state.held.remove(name);
            }
            diff.removed.retain(|name| !forgotten.contains(name));
        }
        // A fresh wildcard subscription is answered even when empty: Envoy waits for the
        // first CDS and LDS answer before it finishes initializing.
        let answer_empty = fresh && self.types.get(&type_url).is_some_and(|s| s.wildcard);
        self.send(
            &type_url,
            diff.version,
            diff.updated,
            diff.removed,
            answer_empty,
        )
        .await
    }

    /// After a change of the team's resources: send every subscribed type what changed.
    async fn push_changes(&mut self, peer: &Peer) -> Result<(), Closed> {
        let mut cluster_removals = None;
        for type_url in PUSH_ORDER {
            if !self.types.contains_key(type_url) {
                continue;
            }
            let diff = self.diff(peer, type_url);
            if type_url == CLUSTER_TYPE {
                // Routes and listeners may still use these until their own updates land.
                cluster_removals = Some((diff.version.clone(), diff.removed));
                self.send(type_url, diff.version, diff.updated, Vec::new(), false)
                    .await?;
            } else {
                self.send(type_url, diff.version, diff.updated, diff.removed, false)
                    .await?;
            }
        }
        if let Some((version, removed)) = cluster_removals {
            self.send(CLUSTER_TYPE, version, Vec::new(), removed, false)
                .await?;
        }
        Ok(())
    }

    /// What the client should receive and remove for `type_url` to match the store.
    fn diff(&self, peer: &Peer, type_url: &str) -> Diff {
        let Some(state) = self.types.get(type_url) else {
            return Diff {
                version: version_of(&[]),
                updated: Vec::new(),
                removed: Vec::new(),
            };
        };
        let names: Vec<String>;
        let interest = if state.wildcard {
            Interest::All
        } else {
            names = state.subscribed.iter().cloned().collect();
            Interest::Named(&names)
        };
        let desired = self
            .store
            .select(&peer.team, &peer.dataplane, type_url, interest);
        let refs: Vec<&EncodedResource> = desired.iter().map(|r| r.as_ref()).collect();
        let version = version_of(&refs);
        let wanted: BTreeSet<&str> = desired.iter().map(|r| r.name.as_str()).collect();
        let removed = state
            .held
            .keys()
            .filter(|name| !wanted.contains(name.as_str()))
            .cloned()
            .collect();
        let updated = desired
            .into_iter()
            .filter(|r| state.held.get(&r.name) != Some(&r.version))
            .collect();
        Diff {
            version,
            updated,
            removed,
        }
    }

    /// Sends one response unless it would be empty (and `even_if_empty` is not set), and
    /// records what the client now holds.
    async fn send(
        &mut self,
        type_url: &str,
        version: String,
        updated: Vec<Arc<EncodedResource>>,
        removed: Vec<String>,
        even_if_empty: bool,
    ) -> Result<(), Closed> {
        if updated.is_empty() && removed.is_empty() && !even_if_empty {
            return Ok(());
        }
        self.nonce += 1;
        let nonce = self.nonce;
        let state = self.types.entry(type_url.to_string()).or_default();
        for resource in &updated {
            state
                .held
                .insert(resource.name.clone(), resource.version.clone());
        }
        for name in &removed {
            state.held.remove(name);
        }
        state.in_flight.insert(
            nonce,
            Sent {
                version: version.clone(),
                names: updated.iter().map(|r| r.name.clone()).collect(),
            },
        );
        while state.in_flight.len() > MAX_IN_FLIGHT {
            state.in_flight.pop_first();
        }
        let response = DeltaDiscoveryResponse {
            system_version_info: version,
            resources: updated
                .iter()
                .map(|r| Resource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.any.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce: nonce.to_string(),
            ..Default::default()
        };
        stream::count_push(Protocol::Delta, type_url);
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }
}
