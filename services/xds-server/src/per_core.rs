//! ADS served thread-per-core: one accept loop hands each Envoy connection, round-robin, to one
//! of N threads, and each thread runs its own single-threaded runtime and ADS server for the
//! connections it owns (as Envoy's own workers do).
//!
//! Why not the shared multi-threaded runtime: there, a stream that queues a response wakes its
//! connection's HTTP/2 task, which the scheduler runs next (its "LIFO slot"), so the connection
//! writes that one response and then the next stream's, one `writev` each: 10,000 streams made
//! 10,000 system calls per change, and the client paid as much again to read them. On a
//! single-threaded runtime the woken connection task waits its turn behind the streams already
//! woken by the change, and then writes all their responses at once. The benchmark
//! (docs/performance.md) measured 39% less server CPU per change on one thread than on two
//! shared ones.
//!
//! The same goes for the change that wakes the streams: woken one by one from the thread that
//! applied it, each stream ran (and wrote) on its own. So each thread relays a team's changes
//! to its own streams ([`watch`]): one wake crosses threads, and the rest are local and run as
//! one batch.
//!
//! Streams of different connections do not share a thread's time, so a connection that takes
//! long (a first response of a million clusters) delays only the connections of its thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;

use flowplane_runtime::shutdown::Shutdown;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{mpsc, watch as watch_channel};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::service::AdsService;
use crate::snapshot::Store;

/// How often an idle connection is pinged, so a dead Envoy's streams are noticed.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `ads` on `addr` with `threads` threads until `shutdown`, over TLS when `tls` is
/// given (each thread does the handshakes of its own connections).
pub async fn serve(
    ads: AdsService,
    addr: SocketAddr,
    threads: usize,
    tls: Option<TlsAcceptor>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let mut workers = Vec::with_capacity(threads);
    let mut queues = Vec::with_capacity(threads);
    for index in 0..threads.max(1) {
        let (queue, connections) = mpsc::unbounded_channel::<std::net::TcpStream>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (ads, shutdown, tls) = (ads.clone(), shutdown.clone(), tls.clone());
        let worker = std::thread::Builder::new()
            .name(format!("ads-{index}"))
            .spawn(move || runtime.block_on(serve_connections(ads, connections, tls, shutdown)))?;
        workers.push(worker);
        queues.push(queue);
    }

    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.clone().wait() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: the connection is lost, the server is not.
            Err(e) => {
                tracing::warn!(error = %e, "could not accept an ADS connection");
                continue;
            }
        };
        // Responses are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        match stream.into_std() {
            Ok(stream) => {
                let _ = queues[next % queues.len()].send(stream);
                next += 1;
            }
            Err(e) => tracing::warn!(error = %e, "could not hand over an ADS connection"),
        }
    }
    drop(queues);
    tokio::task::spawn_blocking(move || {
        for worker in workers {
            let _ = worker.join();
        }
    })
    .await?;
    Ok(())
}

/// One thread's ADS server, over the connections handed to it.
async fn serve_connections(
    ads: AdsService,
    connections: mpsc::UnboundedReceiver<std::net::TcpStream>,
    tls: Option<TlsAcceptor>,
    shutdown: Shutdown,
) {
    // Registered with this thread's runtime, which then drives all of the connection's I/O.
    let incoming = UnboundedReceiverStream::new(connections).map(TcpStream::from_std);
    match tls {
        None => serve_incoming(ads, incoming, shutdown).await,
        Some(acceptor) => {
            let handshakes = flowplane_runtime::tls::handshakes(incoming, acceptor);
            serve_incoming(ads, handshakes, shutdown).await;
        }
    }
}

async fn serve_incoming<IO>(
    ads: AdsService,
    incoming: impl futures::Stream<Item = Result<IO, std::io::Error>>,
    shutdown: Shutdown,
) where
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
{
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .add_service(ads)
        .serve_with_incoming_shutdown(incoming, shutdown.wait())
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "an ADS thread stopped");
    }
}

thread_local! {
    /// This thread's relays: (store, team) → the channel its streams watch.
    static RELAYS: RefCell<HashMap<(usize, String), watch_channel::Sender<u64>>> =
        RefCell::new(HashMap::new());
}

/// A receiver that changes whenever `team`'s resources in `store` change, like
/// [`Store::watch`]. On a single-threaded runtime (an ADS thread) it is fed by one relay task
/// per team on this thread, so a change wakes this thread once and its streams locally.
pub fn watch(store: &Store, team: &str) -> watch_channel::Receiver<u64> {
    let single_threaded = Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::CurrentThread);
    if !single_threaded {
        return store.watch(team);
    }
    let key = (std::ptr::from_ref(store) as usize, team.to_string());
    RELAYS.with_borrow_mut(|relays| {
        if let Some(local) = relays.get(&key) {
            return local.subscribe();
        }
        let (local, receiver) = watch_channel::channel(0);
        relays.insert(key.clone(), local.clone());
        // Subscribed now, not when the relay first runs: no change falls in between.
        let global = store.watch(team);
        tokio::spawn(relay(global, local, key));
        receiver
    })
}

/// Passes each change of `global` on to `local` until `local` has no receivers left (or the
/// store is gone), then removes itself from this thread's relays.
async fn relay(
    mut global: watch_channel::Receiver<u64>,
    local: watch_channel::Sender<u64>,
    key: (usize, String),
) {
    // Also when the task is dropped unfinished (its runtime shut down): a later stream on this
    // thread must not subscribe to a relay that no longer runs.
    let _registered = Registered(key);
    loop {
        tokio::select! {
            changed = global.changed() => {
                if changed.is_err() {
                    break;
                }
                local.send_modify(|generation| *generation += 1);
            }
            _ = local.closed() => {
                // Nothing awaits between this check and the removal, and a new stream on
                // this thread subscribes only while this task is not running.
                if local.receiver_count() == 0 {
                    break;
                }
            }
        }
    }
}

/// Removes a relay's entry when the relay ends, however it ends.
struct Registered((usize, String));

impl Drop for Registered {
    fn drop(&mut self) {
        // The thread may be exiting, its relays already gone.
        let _ = RELAYS.try_with(|relays| relays.borrow_mut().remove(&self.0));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use flowplane_proto::resources::v1::{Resource, ResourceKind};
    use flowplane_proto::state::v1::{ChangeEvent, ChangeOp};

    fn change(store: &Store, revision: i64) {
        let resource = Resource {
            kind: ResourceKind::Cluster as i32,
            team: "t".into(),
            name: "a".into(),
            spec_json: format!(r#"{{"endpoints":[{{"host":"localhost","port":{revision}}}]}}"#),
            ..Default::default()
        };
        let event = ChangeEvent {
            revision,
            op: ChangeOp::Upsert as i32,
            kind: ResourceKind::Cluster as i32,
            team: "t".into(),
            name: "a".into(),
            resource: Some(resource),
            changes: Vec::new(),
        };
        assert!(store.apply(&event).unwrap());
    }

    fn relays() -> usize {
        RELAYS.with_borrow(HashMap::len)
    }

    async fn settle() {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn streams_of_a_thread_share_one_relay_that_ends_with_them() {
        let store = Store::new();
        let mut a = watch(&store, "t");
        let mut b = watch(&store, "t");
        let other_team = watch(&store, "u");
        assert_eq!(relays(), 2, "one relay per team on this thread");

        change(&store, 1);
        a.changed().await.unwrap();
        b.changed().await.unwrap();
        settle().await;
        assert!(!other_team.has_changed().unwrap());

        drop((a, b));
        settle().await;
        assert_eq!(relays(), 1, "the relay of t ended with its last stream");

        // A stream arriving later gets a new relay that works.
        let mut c = watch(&store, "t");
        change(&store, 2);
        c.changed().await.unwrap();
        drop((c, other_team));
        settle().await;
        assert_eq!(relays(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_runtime_watches_the_store_directly() {
        let store = Store::new();
        let mut a = watch(&store, "t");
        assert_eq!(relays(), 0);
        change(&store, 1);
        a.changed().await.unwrap();
    }
}
