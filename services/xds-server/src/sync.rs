//! Keeps the snapshot store current: subscribe to the bus, load the full state from config,
//! then apply events in revision order. Any gap, bus failure, or revision lag seen by the
//! periodic check triggers a full re-sync, so a replica never serves stale config silently.
//! While the bus is away the replica still loads and serves, and polls config's revision at
//! the check interval instead: a change re-syncs it, and so does the bus coming back.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use flowplane_proto::state::v1::state_service_client::StateServiceClient;
use flowplane_proto::state::v1::{
    ChangeEvent, GetReplicaKeysRequest, GetRevisionRequest, StreamStateRequest,
};
use flowplane_runtime::bus::{Bus, EventKey, Origin};
use flowplane_runtime::credential::{ClientCredential, DataplaneTokens};
use flowplane_runtime::shutdown::Shutdown;
use futures::StreamExt;
use prost::Message;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::snapshot::{FullState, Store};

pub type StateClient = StateServiceClient<InterceptedService<Channel, ClientCredential>>;

/// The longest one answer from config (a revision, secret material, the next part of the full
/// state) may take: a config that hangs makes the replica re-sync, never stall with it.
const CONFIG_DEADLINE: Duration = Duration::from_secs(30);

/// `call`, or an error once it has taken [`CONFIG_DEADLINE`].
async fn within<T, E>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(CONFIG_DEADLINE, call).await {
        Ok(answer) => answer.map_err(Into::into),
        Err(_) => anyhow::bail!("config did not answer {what} within {CONFIG_DEADLINE:?}"),
    }
}

/// The keys a replica gets from config.
pub struct ReplicaKeys {
    /// Checks the tokens Envoys present.
    pub dataplanes: DataplaneTokens,
    /// Checks the MAC on every change event.
    pub events: EventKey,
}

/// The replica's keys, asked of config until it answers; `None` on shutdown first.
pub async fn replica_keys(client: &mut StateClient, shutdown: &Shutdown) -> Option<ReplicaKeys> {
    let mut backoff = Duration::from_millis(200);
    loop {
        let asked = within(
            "the replica keys",
            client.get_replica_keys(GetReplicaKeysRequest {}),
        )
        .await
        .and_then(|answer| {
            let keys = answer.into_inner();
            let dataplanes: [u8; 32] =
                keys.dataplane_tokens.as_slice().try_into().map_err(|_| {
                    anyhow::anyhow!(
                        "config sent a dataplane-token key of {} bytes",
                        keys.dataplane_tokens.len()
                    )
                })?;
            Ok(ReplicaKeys {
                dataplanes: DataplaneTokens::from_key(dataplanes),
                events: EventKey::from_bytes(&keys.change_events)?,
            })
        });
        match asked {
            Ok(keys) => return Some(keys),
            Err(e) => tracing::info!(error = %e, "waiting for config to hand out the replica keys"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.clone().wait() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

pub async fn run(
    store: Arc<Store>,
    mut client: StateClient,
    bus: Bus,
    key: EventKey,
    check_every: Duration,
    synced: oneshot::Sender<()>,
    shutdown: Shutdown,
) {
    let mut synced = Some(synced);
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_requested() {
        match follow(
            &store,
            &mut client,
            &bus,
            &key,
            check_every,
            &mut synced,
            &shutdown,
        )
        .await
        {
            Ok(()) => return,
            // Before the first load this is just config not being up yet.
            Err(e) if synced.is_some() => {
                tracing::info!(error = %e, "waiting for config to load the initial state");
            }
            Err(e) => {
                tracing::warn!(error = %e, revision = store.revision(), "re-syncing from config");
                metrics::counter!("xds_resyncs_total").increment(1);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.clone().wait() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Loads the full state from config, part by part: each part is translated on the blocking
/// pool (on every core) while the next one arrives, so a cold replica's start overlaps
/// config reading PostgreSQL with its own translation.
async fn load_state(client: &mut StateClient) -> anyhow::Result<(FullState, Origin)> {
    let mut parts = within(
        "the state request",
        client.stream_state(StreamStateRequest {}),
    )
    .await?
    .into_inner();
    let first = within("the first state part", parts.message())
        .await?
        .ok_or_else(|| anyhow::anyhow!("config sent no state"))?;
    let mut full = FullState::new(first.revision);
    let origin = Origin {
        installation: first.installation_id.clone(),
        epoch: first.epoch.clone(),
    };
    let mut next = Some(first);
    while let Some(part) = next.take() {
        anyhow::ensure!(
            part.revision == full.revision(),
            "state parts disagree: revision {} after {}",
            part.revision,
            full.revision()
        );
        let translating = tokio::task::spawn_blocking(move || {
            full.add(&part.resources);
            full
        });
        let (translated, following) =
            tokio::join!(translating, within("the next state part", parts.message()));
        full = translated?;
        next = following?;
    }
    Ok((full, origin))
}

/// One subscription's life: returns `Ok` only on shutdown; any reason to re-sync is an error.
async fn follow(
    store: &Store,
    client: &mut StateClient,
    bus: &Bus,
    key: &EventKey,
    check_every: Duration,
    synced: &mut Option<oneshot::Sender<()>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    // Subscribe before loading: every event after the loaded revision is then delivered.
    // Without the bus, load anyway and poll.
    let mut events = match bus.subscribe().await {
        Ok(events) => Some(events),
        Err(e) => {
            tracing::warn!(error = %e, "the bus is unavailable: polling config for changes");
            metrics::counter!("xds_bus_unavailable_total").increment(1);
            None
        }
    };
    let (full, origin) = load_state(client).await?;
    let loaded = full.len();
    store.install(full);
    metrics::gauge!("xds_revision").set(store.revision() as f64);
    tracing::info!(
        revision = store.revision(),
        resources = loaded,
        "loaded state from config"
    );
    if let Some(tx) = synced.take() {
        let _ = tx.send(());
    }
    let mut check = tokio::time::interval(check_every);
    check.tick().await;
    let mut revision_at_last_check = store.revision();
    loop {
        let next_event = async {
            match events.as_mut() {
                Some(events) => events.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = next_event => {
                let event = event.ok_or_else(|| anyhow::anyhow!("the bus closed the subscription"))??;
                if event.origin.installation != origin.installation {
                    // Another installation on the same NATS (or an older Flowplane's event):
                    // never ours to apply.
                    metrics::counter!("xds_foreign_events_total").increment(1);
                    continue;
                }
                if !key.verify(&event) {
                    // Not signed by config: whatever published it reached NATS, not config.
                    metrics::counter!("xds_forged_events_total").increment(1);
                    tracing::warn!(revision = event.revision, "dropped a change event without config's MAC");
                    continue;
                }
                if event.origin.epoch != origin.epoch {
                    anyhow::bail!("the database's epoch changed ({} → {}): re-syncing in full", origin.epoch, event.origin.epoch);
                }
                // The change's trace (from the request that wrote it): this replica's
                // translation and push of it.
                let span = tracing::info_span!("xds.apply", otel.kind = "consumer", revision = event.revision);
                flowplane_runtime::telemetry::set_parent(&span, &event.trace);
                async {
                    let mut change = ChangeEvent::decode(event.payload.as_slice())?;
                    within("secret material", crate::secret_material::fill(client, &mut change)).await?;
                    if store.apply(&change)? {
                        metrics::gauge!("xds_revision").set(store.revision() as f64);
                    }
                    anyhow::Ok(())
                }
                .instrument(span)
                .await?;
            }
            _ = check.tick() => {
                let answer = within("its revision", client.get_revision(GetRevisionRequest {})).await?.into_inner();
                if answer.installation_id != origin.installation || answer.epoch != origin.epoch {
                    anyhow::bail!("config now serves another database (installation {}, epoch {})", answer.installation_id, answer.epoch);
                }
                let (remote, local) = (answer.revision, store.revision());
                // A database restored to an earlier backup: its revisions are no longer ours.
                if remote < local {
                    anyhow::bail!("config's revision went back from {local} to {remote}: re-syncing in full");
                }
                if events.is_none() {
                    // Polling: a change since the last look is loaded in full, here.
                    if remote != local {
                        let (full, now) = load_state(client).await?;
                        anyhow::ensure!(now == origin, "config now serves another database");
                        store.install(full);
                        metrics::gauge!("xds_revision").set(store.revision() as f64);
                        metrics::counter!("xds_polled_loads_total").increment(1);
                        tracing::info!(revision = store.revision(), "the bus is away: loaded the state config has now");
                    }
                    // A short look, so polling keeps its pace while NATS stays away.
                    let back = tokio::time::timeout(Duration::from_millis(500), bus.subscribe()).await;
                    if matches!(back, Ok(Ok(_))) {
                        anyhow::bail!("the bus is back: re-syncing to follow it");
                    }
                    continue;
                }
                // Behind, and no progress since the last check: events are not arriving.
                if remote > local && local == revision_at_last_check {
                    anyhow::bail!("config is at revision {remote} but events stopped at {local}");
                }
                revision_at_last_check = local;
            }
            _ = shutdown.clone().wait() => return Ok(()),
        }
    }
}
