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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use flowplane_xds::resource::{CLUSTER_TYPE, ENDPOINT_TYPE, EncodedResource};
use tonic::Streaming;

use crate::outbox::Outbox;
use crate::status::Reporter;
use crate::stream::{
    self, ByType, Connected, PUSH_ORDER, Peer, Protocol, StreamContext, StreamCredential, Verdict,
};
use crate::views::{View, ViewKey, Views};
use crate::wire;

/// The name that stands for "every resource of this type".
const WILDCARD: &str = "*";

/// Responses of one type still waiting for Envoy's answer. Envoy answers each in turn, so
/// this stays tiny; the bound only stops a client that never answers from growing it.
const MAX_IN_FLIGHT: usize = 64;

/// Serves one delta stream until either side ends it; responses go to `tx`.
pub(crate) async fn serve(
    context: StreamContext,
    requests: Streaming<DeltaDiscoveryRequest>,
    tx: Outbox,
) {
    let StreamContext {
        views,
        reporter,
        credential,
        deliveries,
    } = context;
    let session = Session {
        views,
        reporter,
        deliveries,
        tx,
        types: ByType::default(),
        nonce: 0,
    };
    session.run(requests, credential).await;
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
    /// The view the subscriptions select, and the last one read of it.
    view: Option<(ViewKey, Arc<View>)>,
}

struct Sent {
    view: Arc<View>,
    /// Positions in `view` of the resources the response carried.
    updated: Vec<usize>,
}

impl Sent {
    fn resources(&self) -> impl Iterator<Item = &EncodedResource> + Clone {
        self.updated
            .iter()
            .filter_map(|&i| self.view.resources.get(i))
            .map(Arc::as_ref)
    }
}

/// What the client should change to hold what the node may see now.
struct Diff {
    /// Everything the client should hold of this type; its version is the response's.
    view: Arc<View>,
    /// Positions in `view` of the resources to send.
    updated: Vec<usize>,
    removed: Vec<String>,
}

struct Session {
    views: Arc<Views>,
    reporter: Reporter,
    deliveries: Arc<crate::delivery::Deliveries>,
    tx: Outbox,
    types: ByType<TypeState>,
    nonce: u64,
}

impl Session {
    async fn run(
        mut self,
        mut requests: Streaming<DeltaDiscoveryRequest>,
        credential: StreamCredential,
    ) {
        let first = match requests.message().await {
            Ok(Some(first)) => first,
            _ => return,
        };
        let store = self.views.store().clone();
        let peer = match stream::identify(&store, first.node.as_ref(), &credential) {
            Ok(peer) => peer,
            Err(status) => {
                tracing::warn!(error = %status.message(), "refused a delta ADS stream");
                self.tx.send(Err(status)).await;
                return;
            }
        };
        let connected = Connected::new(&peer, Protocol::Delta, &self.deliveries);
        let mut changes = crate::per_core::watch(&store, &peer.team);
        changes.mark_unchanged();
        let mut next = Some(first);
        loop {
            if let Some(request) = next.take() {
                // A change not pushed yet goes first, in push order: the answer to this request
                // may carry the new version of a route, whose new cluster must arrive before it.
                if changes.has_changed().unwrap_or(false) {
                    changes.mark_unchanged();
                    self.push_changes(&peer, &connected).await;
                }
                self.on_request(&peer, &connected, request).await;
            }
            tokio::select! {
                request = requests.message() => match request {
                    Ok(Some(request)) => next = Some(request),
                    _ => break,
                },
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if let Err(status) = stream::still_registered(&store, &peer) {
                        tracing::info!(node = %peer.node_id, error = %status.message(), "ending the stream");
                        self.tx.send(Err(status)).await;
                        break;
                    }
                    self.push_changes(&peer, &connected).await;
                }
            }
        }
    }

    async fn on_request(
        &mut self,
        peer: &Peer,
        connected: &Connected,
        request: DeltaDiscoveryRequest,
    ) {
        let type_url = request.type_url.clone();
        if type_url.is_empty() {
            return;
        }
        let first = !self.types.contains(&type_url);
        let state = self.types.entry(&type_url);

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
                        connected.note_nack(
                            peer,
                            &type_url,
                            &sent.view.version,
                            sent.resources().map(|r| r.name.as_str()),
                            &error.message,
                        );
                        Verdict::Rejected(error.message.clone())
                    }
                    None => {
                        connected.acked(&type_url, &sent.view.version);
                        Verdict::Accepted
                    }
                };
                // A response that only removed resources has nothing to report status on.
                if !sent.updated.is_empty() {
                    stream::report(
                        &self.reporter,
                        peer,
                        &type_url,
                        &sent.view.version,
                        sent.resources(),
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
            return;
        }
        state.view = None;
        let mut diff = self.diff(peer, &type_url);
        if !unsubscribed.is_empty() {
            // The client drops what it unsubscribed from by itself: forget it rather than tell
            // it to remove it. Dropping the wildcard forgets everything not named explicitly.
            let state = self.types.entry(&type_url);
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
            connected,
            &type_url,
            &diff.view,
            &diff.updated,
            diff.removed,
            answer_empty,
        )
        .await
    }

    /// After a change of the team's resources: send every subscribed type what changed.
    async fn push_changes(&mut self, peer: &Peer, connected: &Connected) {
        let mut cluster_removals = None;
        let mut changed_clusters: Vec<String> = Vec::new();
        for type_url in PUSH_ORDER {
            if !self.types.contains(type_url) {
                continue;
            }
            if type_url == ENDPOINT_TYPE && !changed_clusters.is_empty() {
                // A new or changed cluster waits (warming) for its endpoints, and Envoy would
                // only ask for them after taking the cluster: subscribe them on its behalf so
                // they follow the cluster on this push, before any route that uses it.
                let state = self.types.entry(ENDPOINT_TYPE);
                if !state.wildcard {
                    let before = state.subscribed.len();
                    state.subscribed.extend(changed_clusters.iter().cloned());
                    if state.subscribed.len() != before {
                        state.view = None;
                    }
                }
            }
            let mut diff = self.diff(peer, type_url);
            if type_url == ENDPOINT_TYPE {
                // Envoy re-creates a changed cluster and waits for its endpoints again, even
                // when they did not change: send them with the cluster.
                for name in &changed_clusters {
                    if let Some(i) = diff.view.position(name)
                        && !diff.updated.contains(&i)
                    {
                        diff.updated.push(i);
                    }
                }
            }
            if type_url == CLUSTER_TYPE {
                changed_clusters = diff
                    .updated
                    .iter()
                    .filter_map(|&i| diff.view.resources.get(i))
                    .map(|r| r.name.clone())
                    .collect();
                // Routes and listeners may still use these until their own updates land.
                self.send(
                    connected,
                    type_url,
                    &diff.view,
                    &diff.updated,
                    Vec::new(),
                    false,
                )
                .await;
                cluster_removals = Some((diff.view, diff.removed));
            } else {
                self.send(
                    connected,
                    type_url,
                    &diff.view,
                    &diff.updated,
                    diff.removed,
                    false,
                )
                .await;
            }
        }
        if let Some((view, removed)) = cluster_removals {
            self.send(connected, CLUSTER_TYPE, &view, &[], removed, false)
                .await;
        }
    }

    /// What the client should receive and remove for `type_url` to match the store.
    fn diff(&mut self, peer: &Peer, type_url: &str) -> Diff {
        let state = self.types.entry(type_url);
        let (key, previous) = match state.view.take() {
            Some((key, view)) => (key, Some(view)),
            None => {
                let names = (!state.wildcard).then(|| state.subscribed.iter().cloned().collect());
                (
                    ViewKey::new(&peer.team, &peer.dataplane, type_url, names),
                    None,
                )
            }
        };
        let view = self.views.get(&key, &peer.dataplane, previous.as_ref());
        state.view = Some((key, view.clone()));
        let removed = state
            .held
            .keys()
            .filter(|name| view.position(name).is_none())
            .cloned()
            .collect();
        let updated = view
            .resources
            .iter()
            .enumerate()
            .filter(|(_, r)| state.held.get(&r.name) != Some(&r.version))
            .map(|(i, _)| i)
            .collect();
        Diff {
            view,
            updated,
            removed,
        }
    }

    /// Sends one response unless it would be empty (and `even_if_empty` is not set), and
    /// records what the client now holds.
    async fn send(
        &mut self,
        connected: &Connected,
        type_url: &str,
        view: &Arc<View>,
        updated: &[usize],
        removed: Vec<String>,
        even_if_empty: bool,
    ) {
        if updated.is_empty() && removed.is_empty() && !even_if_empty {
            return;
        }
        self.nonce += 1;
        let nonce = self.nonce;
        let state = self.types.entry(type_url);
        for resource in updated.iter().filter_map(|&i| view.resources.get(i)) {
            // Most updates replace a version the client held: reuse its strings.
            match state.held.get_mut(&resource.name) {
                Some(version) => version.clone_from(&resource.version),
                None => {
                    state
                        .held
                        .insert(resource.name.clone(), resource.version.clone());
                }
            }
        }
        for name in &removed {
            state.held.remove(name);
        }
        state.in_flight.insert(
            nonce,
            Sent {
                view: view.clone(),
                updated: updated.to_vec(),
            },
        );
        while state.in_flight.len() > MAX_IN_FLIGHT {
            state.in_flight.pop_first();
        }
        let response = wire::delta(
            &view.version,
            updated.iter().map(|&i| view.delta_entry(i)),
            type_url,
            nonce,
            &removed,
        );
        connected.pushed(type_url, &view.version);
        self.tx.send(Ok(response)).await;
    }
}
