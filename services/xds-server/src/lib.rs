//! The xds-server: serves Envoy over ADS from in-memory snapshots.
//!
//! - [`settings`]: its `FLOWPLANE_*` settings
//! - [`snapshot`]: the store of translated resources, encoded once, per team (what each node
//!   should have)
//! - [`sync`]: keeps the store current: full state from config, then change events from the
//!   bus, re-syncing on any gap
//! - [`service`]: the ADS gRPC service, handing each stream to its protocol machine
//! - [`per_core`]: serves it thread-per-core, each thread owning its connections
//! - [`views`]: what a node should have of a type, computed once per change and shared by
//!   every stream that asks the same question
//! - [`wire`] and [`codec`]: responses encoded once and sent as bytes, each stream adding only
//!   its nonce; `outbox`: how a stream's protocol machine runs inside its response body
//! - [`ads`]: the state-of-the-world protocol state machine (nonces, versions, ACK/NACK)
//! - [`delta`]: the incremental (delta) protocol state machine (subscriptions, per-resource
//!   versions, removals)
//! - [`stream`]: what both protocols share (peer identity, push order, reporting, metrics)
//! - [`status`]: forwards what each Envoy accepted or rejected to config
//!
//! The store knows nothing of streams and the protocol knows nothing of translation.

pub mod ads;
pub mod codec;
pub mod delivery;
pub mod delta;
mod outbox;
pub mod per_core;
mod secret_material;
pub mod service;
pub mod settings;
pub mod snapshot;
pub mod status;
pub mod stream;
pub mod sync;
pub mod views;
pub mod wire;

pub use settings::XdsServerConfig;

use std::sync::Arc;

use flowplane_proto::state::v1::state_service_client::StateServiceClient;
use flowplane_runtime::bus::Bus;
use flowplane_runtime::credential::{Service, ServiceCredential};
use flowplane_runtime::health::{self, Readiness};
use flowplane_runtime::shutdown::Shutdown;
use flowplane_runtime::tls::config_endpoint;

/// Runs an xds-server replica until `shutdown`: load state, subscribe, then serve ADS.
pub async fn run(config: XdsServerConfig, bus: Bus, shutdown: Shutdown) -> anyhow::Result<()> {
    // A bad certificate stops the start here, before any state is loaded.
    let tls = config
        .tls
        .as_ref()
        .map(flowplane_runtime::tls::TlsFiles::acceptor)
        .transpose()?;
    let readiness = Readiness::new();
    let credential = ServiceCredential::new(Service::XdsServer, &config.service_credential)?;
    let channel = config_endpoint(&config.config_url, config.config_ca_file.as_deref())?
        .connect_timeout(std::time::Duration::from_secs(3))
        .connect_lazy();
    // State parts hold a few MB, but one resource (a route config generated from a large
    // API) can be large on its own; config sends up to the same size.
    let state_client = StateServiceClient::with_interceptor(channel, credential.client())
        .max_decoding_message_size(256 * 1024 * 1024);
    let store = Arc::new(snapshot::Store::new());
    let http = tokio::spawn(health::serve(
        config.http_addr,
        health::router(readiness.clone()),
        shutdown.clone(),
    ));

    // The keys come from config (the replica holds no secret of its own but its credential).
    let Some(keys) = sync::replica_keys(&mut state_client.clone(), &shutdown).await else {
        return Ok(());
    };
    // What this replica's streams delivered, answered to config's questions over the bus.
    let deliveries = delivery::Deliveries::new(config.replica_id.clone());
    let gather = bus.gather();
    let answering = tokio::spawn({
        let (deliveries, shutdown) = (deliveries.clone(), shutdown.clone());
        async move { gather.answer(move |q| deliveries.answer(q), shutdown).await }
    });
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
    let syncer = tokio::spawn(sync::run(
        store.clone(),
        state_client.clone(),
        bus,
        keys.events,
        config.resync_interval,
        synced_tx,
        shutdown.clone(),
    ));
    // Serve nothing until the first full state is loaded: an empty answer would make Envoys
    // drop their working config.
    tokio::select! {
        loaded = synced_rx => if loaded.is_err() { return Ok(()); },
        _ = shutdown.clone().wait() => return Ok(()),
    }
    readiness.set(true);

    let reporter = status::Reporter::spawn(state_client, shutdown.clone());
    let ads = service::AdsService::new(store, reporter, keys.dataplanes, deliveries);
    tracing::info!(addr = %config.xds_addr, "xds-server serving ADS (state of the world and delta)");
    per_core::serve(
        ads,
        config.xds_addr,
        config.ads_threads,
        tls,
        shutdown.clone(),
    )
    .await?;
    readiness.set(false);
    let _ = syncer.await;
    let _ = answering.await;
    let _ = http.await;
    Ok(())
}
