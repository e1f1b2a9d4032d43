//! The state-of-the-world ADS protocol: one task per Envoy stream that tracks, per type,
//! what was sent (version, nonce) and what Envoy answered. It asks the snapshot store what the
//! node should have; it never translates anything itself.
//!
//! Rules it keeps:
//! - a response goes out only when the node's view differs from what it last got, so an
//!   Envoy reconnecting with the current version (from any replica) is not re-pushed;
//! - a NACK is recorded and reported, never answered with the same content again (no loop);
//!   Envoy keeps its last good config until the next change;
//! - pushes go clusters first, then listeners, then routes (make-before-break).

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::snapshot::Store;
use crate::status::Reporter;
use crate::stream::{self, Closed, Connected, PUSH_ORDER, Peer, Protocol, Verdict};

/// Serves one SotW stream until either side ends it; responses go to `tx`.
pub(crate) async fn serve(
    store: Arc<Store>,
    reporter: Reporter,
    requests: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
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
    names: Vec<String>,
    sent: Option<Sent>,
    reported: Option<(String, bool)>,
}

struct Sent {
    version: String,
    nonce: String,
    names: Vec<String>,
}

struct Session {
    store: Arc<Store>,
    reporter: Reporter,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    types: HashMap<String, TypeState>,
    nonce: u64,
}

impl Session {
    async fn run(mut self, mut requests: Streaming<DiscoveryRequest>) {
        let first = match requests.message().await {
            Ok(Some(first)) => first,
            _ => return,
        };
        let peer = match stream::identify(&self.store, first.node.as_ref()) {
            Ok(peer) => peer,
            Err(status) => {
                tracing::warn!(error = %status.message(), "refused an ADS stream");
                let _ = self.tx.send(Err(status)).await;
                return;
            }
        };
        let _connected = Connected::new(&peer, Protocol::Sotw);
        let mut changes = self.store.watch(&peer.team);
        changes.mark_unchanged();
        let mut next = Some(first);
        loop {
            if let Some(request) = next.take()
                && self.on_request(&peer, request).await.is_err()
            {
                break;
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

    async fn on_request(&mut self, peer: &Peer, request: DiscoveryRequest) -> Result<(), Closed> {
        let type_url = request.type_url.clone();
        let state = self.types.entry(type_url.clone()).or_default();
        if !request.response_nonce.is_empty() {
            let Some(sent) = &state.sent else {
                return Ok(());
            };
            if sent.nonce != request.response_nonce {
                // An answer to an older response; the newer one is still in flight.
                return Ok(());
            }
            let (version, verdict) = match &request.error_detail {
                Some(error) => {
                    stream::note_nack(peer, Protocol::Sotw, &type_url, &error.message);
                    (
                        sent.version.clone(),
                        Verdict::Rejected(error.message.clone()),
                    )
                }
                None => (request.version_info.clone(), Verdict::Accepted),
            };
            let accepted = verdict == Verdict::Accepted;
            if state.reported.as_ref() != Some(&(version.clone(), accepted)) {
                state.reported = Some((version.clone(), accepted));
                stream::report(
                    &self.reporter,
                    peer,
                    &type_url,
                    &version,
                    sent.names.clone(),
                    &verdict,
                );
            }
        }
        let names_changed = state.names != request.resource_names;
        state.names = request.resource_names;
        if request.response_nonce.is_empty() || names_changed {
            self.respond(peer, &type_url, Some(&request.version_info))
                .await?;
        }
        Ok(())
    }

    async fn push_changes(&mut self, peer: &Peer) -> Result<(), Closed> {
        for type_url in PUSH_ORDER {
            if self.types.contains_key(type_url) {
                self.respond(peer, type_url, None).await?;
            }
        }
        Ok(())
    }

    /// Sends the node's current view of `type_url` unless it already has it.
    async fn respond(
        &mut self,
        peer: &Peer,
        type_url: &str,
        client_version: Option<&str>,
    ) -> Result<(), Closed> {
        let state = self.types.entry(type_url.to_string()).or_default();
        let set = self
            .store
            .view(&peer.team, &peer.dataplane, type_url, &state.names);
        let names: Vec<String> = set.resources.iter().map(|r| r.name.clone()).collect();
        let already_has = match &state.sent {
            Some(sent) => sent.version == set.version,
            // A reconnecting Envoy that already holds exactly this state needs nothing.
            None => client_version == Some(set.version.as_str()),
        };
        if already_has {
            if state.sent.is_none() {
                state.sent = Some(Sent {
                    version: set.version,
                    nonce: String::new(),
                    names,
                });
            }
            return Ok(());
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let response = DiscoveryResponse {
            version_info: set.version.clone(),
            resources: set.resources.iter().map(|r| r.any.clone()).collect(),
            type_url: type_url.to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        state.sent = Some(Sent {
            version: set.version,
            nonce,
            names,
        });
        stream::count_push(Protocol::Sotw, type_url);
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }
}
