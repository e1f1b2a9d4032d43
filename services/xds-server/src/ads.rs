//! The state-of-the-world ADS protocol: one task per Envoy stream that tracks, per type,
//! what was sent (version, nonce) and what Envoy answered. It asks the snapshot store what the
//! node should have; it never translates anything itself.
//!
//! Rules it keeps:
//! - a response goes out only when the node's view differs from what it last got, so an
//!   Envoy reconnecting with the current version (from any replica) is not re-pushed;
//! - a NACK is recorded and reported, never answered with the same content again (no loop);
//!   Envoy keeps its last good config until the next change;
//! - pushes go clusters first, then their endpoints, then listeners, then routes
//!   (make-before-break); endpoints follow every cluster push, since Envoy waits for them
//!   again for each cluster it re-creates.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use prost::bytes::Bytes;
use tonic::Streaming;

use crate::delivery::Deliveries;
use crate::outbox::Outbox;
use crate::status::Reporter;
use crate::stream::{
    self, ByType, Connected, PUSH_ORDER, Peer, Protocol, StreamContext, StreamCredential, Verdict,
};
use crate::views::{View, ViewKey, Views};
use crate::wire::{self, Encoded};
use flowplane_xds::resource::{CLUSTER_TYPE, ENDPOINT_TYPE};

/// Serves one SotW stream until either side ends it; responses go to `tx`.
pub(crate) async fn serve(
    context: StreamContext,
    requests: Streaming<DiscoveryRequest>,
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
    names: Vec<String>,
    /// The view the names select, and the last one read of it.
    view: Option<(ViewKey, Arc<View>)>,
    sent: Option<Sent>,
    reported: Option<(String, bool)>,
}

/// What the node got (or, after a reconnect, already had) of a type.
struct Sent {
    view: Arc<View>,
    /// `None` when nothing was sent because the node already had the view.
    nonce: Option<u64>,
}

struct Session {
    views: Arc<Views>,
    reporter: Reporter,
    deliveries: Arc<Deliveries>,
    tx: Outbox,
    types: ByType<TypeState>,
    nonce: u64,
}

impl Session {
    async fn run(
        mut self,
        mut requests: Streaming<DiscoveryRequest>,
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
                tracing::warn!(error = %status.message(), "refused an ADS stream");
                self.tx.send(Err(status)).await;
                return;
            }
        };
        let connected = Connected::new(&peer, Protocol::Sotw, &self.deliveries);
        let mut changes = crate::per_core::watch(&store, &peer.team);
        changes.mark_unchanged();
        let mut next = Some(first);
        loop {
            if let Some(request) = next.take() {
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

    async fn on_request(&mut self, peer: &Peer, connected: &Connected, request: DiscoveryRequest) {
        let state = self.types.entry(&request.type_url);
        let type_url = request.type_url.as_str();
        if !request.response_nonce.is_empty() {
            let Some(sent) = &state.sent else {
                return;
            };
            if sent
                .nonce
                .is_none_or(|nonce| !wire::is_nonce(&request.response_nonce, nonce))
            {
                // An answer to an older response; the newer one is still in flight.
                return;
            }
            let (version, verdict) = match &request.error_detail {
                Some(error) => {
                    connected.note_nack(
                        peer,
                        type_url,
                        &sent.view.version,
                        sent.view.resources.iter().map(|r| r.name.as_str()),
                        &error.message,
                    );
                    (
                        sent.view.version.as_str(),
                        Verdict::Rejected(error.message.clone()),
                    )
                }
                None => {
                    connected.acked(type_url, &request.version_info);
                    (request.version_info.as_str(), Verdict::Accepted)
                }
            };
            let accepted = verdict == Verdict::Accepted;
            let news = state
                .reported
                .as_ref()
                .is_none_or(|(v, a)| v != version || *a != accepted);
            if news {
                state.reported = Some((version.to_string(), accepted));
                stream::report(
                    &self.reporter,
                    peer,
                    type_url,
                    version,
                    sent.view.resources.iter().map(Arc::as_ref),
                    &verdict,
                );
            }
        }
        let names_changed = state.names != request.resource_names;
        if names_changed {
            state.names = request.resource_names;
            state.view = None;
        }
        if request.response_nonce.is_empty() || names_changed {
            self.respond(
                peer,
                connected,
                &request.type_url,
                Some(&request.version_info),
                false,
            )
            .await;
        }
    }

    async fn push_changes(&mut self, peer: &Peer, connected: &Connected) {
        let mut clusters_sent = false;
        for type_url in PUSH_ORDER {
            if self.types.contains(type_url) {
                // Envoy re-creates changed clusters and waits for their endpoints again, even
                // when those did not change: after new clusters, endpoints always follow.
                let force = type_url == ENDPOINT_TYPE && clusters_sent;
                if force {
                    self.follow_clusters();
                }
                let sent = self.respond(peer, connected, type_url, None, force).await;
                clusters_sent |= type_url == CLUSTER_TYPE && sent;
            }
        }
    }

    /// Adds every cluster the node was just sent to the endpoints it asked for: a new cluster
    /// waits (warming) for its endpoints, and Envoy would ask for them only after taking the
    /// cluster, by which time a route using it may already have arrived. Names without
    /// endpoints (clusters of host names) select nothing.
    fn follow_clusters(&mut self) {
        let Some(clusters) = self
            .types
            .get(CLUSTER_TYPE)
            .and_then(|s| s.sent.as_ref())
            .map(|sent| sent.view.names())
        else {
            return;
        };
        let Some(state) = self.types.get_mut(ENDPOINT_TYPE) else {
            return;
        };
        let mut names: Vec<String> = state.names.clone();
        names.extend(clusters);
        names.sort_unstable();
        names.dedup();
        if names != state.names {
            state.names = names;
            state.view = None;
        }
    }

    /// Sends the node's current view of `type_url` unless it already has it (or `force`);
    /// says whether it sent one.
    async fn respond(
        &mut self,
        peer: &Peer,
        connected: &Connected,
        type_url: &str,
        client_version: Option<&str>,
        force: bool,
    ) -> bool {
        let Some(state) = self.types.get_mut(type_url) else {
            return false;
        };
        let (key, previous) = match state.view.take() {
            Some((key, view)) => (key, Some(view)),
            None => (
                ViewKey::sotw(&peer.team, &peer.dataplane, type_url, &state.names),
                None,
            ),
        };
        let view = self.views.get(&key, &peer.dataplane, previous.as_ref());
        state.view = Some((key, view.clone()));
        let already_has = match &state.sent {
            Some(sent) => sent.view.version == view.version,
            // A reconnecting Envoy that already holds exactly this state needs nothing.
            None => client_version == Some(view.version.as_str()),
        };
        if already_has && !force {
            if state.sent.is_none() {
                connected.held(type_url, &view.version);
                state.sent = Some(Sent { view, nonce: None });
            }
            return false;
        }
        self.nonce += 1;
        let response = Encoded {
            head: view.sotw_body(type_url),
            nonce: self.nonce,
            tail: Bytes::new(),
        };
        connected.pushed(type_url, &view.version);
        state.sent = Some(Sent {
            view,
            nonce: Some(self.nonce),
        });
        self.tx.send(Ok(response)).await;
        true
    }
}
