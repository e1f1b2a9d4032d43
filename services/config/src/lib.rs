//! The config service: the only process that touches PostgreSQL.
//!
//! - [`settings`]: its `FLOWPLANE_*` settings
//! - [`db`]: connecting, creating the database, migrations
//! - [`authz`]: the one authorization decision, and team scoping for every query
//! - [`resources`]: validated, audited, transactional resource changes
//! - [`api_definitions`]: the Platform API, compiled into resources in the same transaction
//! - [`identity`]: bootstrap, organizations, tokens, authentication
//! - [`sessions`]: login sessions (email and password), logout, "who am I"
//! - [`membership`]: invitations, registration, organization members
//! - [`teams`]: the teams of an organization, managed by its admins
//! - [`audit_log`]: reading the audit trail, scoped to what the caller may see
//! - [`sweeper`]: marks expired tokens and keeps the token gauges current
//! - [`state`]: the full state xds-server replicas load
//! - [`status`]: what Envoys accepted or rejected, and the quarantine of rejected versions
//! - [`secrets_key`], [`secret_material`]: secret material sealed at rest, opened only for
//!   xds-server
//! - [`relay`]: the outbox relay that publishes change events to the bus
//! - [`service_auth`]: which service is calling and which methods it may call; the keys
//!   derived from the service secret (signed principals, change events, dataplane tokens)
//! - [`dataplane_tokens`]: the tokens Envoys present, issued and verified here
//! - [`grpc`]: the tonic services (thin: decode, call, encode)

pub mod api_definitions;
pub mod audit_log;
pub mod authz;
pub mod dataplane_tokens;
pub mod db;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod learning;
pub mod membership;
pub mod relay;
pub mod reports;
pub mod resources;
pub mod secret_material;
pub mod secrets;
pub mod secrets_key;
pub mod service_auth;
pub mod sessions;
pub mod settings;
pub mod state;
pub mod status;
mod store;
pub mod sweeper;
pub mod teams;

pub use settings::ConfigServiceConfig;

use std::sync::Arc;

use flowplane_runtime::bus::{AuthNotices, Bus};
use flowplane_runtime::credential::ServiceSecret;
use flowplane_runtime::health::{self, Readiness};
use flowplane_runtime::shutdown::Shutdown;
use sqlx::PgPool;
use tokio::sync::Notify;

/// Shared handles for every part of the service.
#[derive(Clone)]
pub struct Context {
    pub pool: PgPool,
    /// Wakes the outbox relay right after a commit, so events leave without polling delay.
    pub outbox_ready: Arc<Notify>,
    /// Where token revocations, rotations and re-scopings are announced to api-gateways.
    pub notices: AuthNotices,
    /// Session and invitation lifetimes.
    pub identity: settings::IdentitySettings,
    /// Seals secret material at rest (`FLOWPLANE_SECRETS_KEY`).
    pub secrets_key: Arc<secrets_key::SecretsKey>,
    /// What the service secret derives: service credentials, signed principals, change-event
    /// MACs, dataplane tokens.
    pub keys: Arc<service_auth::Keys>,
    /// Asks every xds-server replica at once (the delivery report).
    pub gather: flowplane_runtime::bus::Gather,
}

/// Runs the config service until `shutdown`: migrations, the setup token, the gRPC API, the
/// outbox relay, the token sweeper, and the health endpoints. Token notices go out on the
/// bus's own NATS connection.
pub async fn run(config: ConfigServiceConfig, bus: Bus, shutdown: Shutdown) -> anyhow::Result<()> {
    let notices = bus.auth_notices();
    run_with_notices(config, bus, notices, shutdown).await
}

/// [`run`] with an explicit notice channel (`flowplane up` shares an in-process one with its
/// api-gateway).
pub async fn run_with_notices(
    config: ConfigServiceConfig,
    bus: Bus,
    notices: AuthNotices,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let readiness = Readiness::new();
    // A bad certificate stops the start here, before the database is touched.
    let grpc_tls = config
        .grpc_tls
        .as_ref()
        .map(flowplane_runtime::tls::TlsFiles::acceptor)
        .transpose()?;
    flowplane_domain::listener::set_access_log_dir(&config.access_log_dir)
        .map_err(anyhow::Error::msg)?;
    // Refuse to start without the key rather than store secrets in the clear.
    let secrets_key = match config.secrets_key.as_deref() {
        Some(encoded) => secrets_key::SecretsKey::from_base64(encoded)?
            .with_previous(config.secrets_key_previous.as_deref().unwrap_or_default())?,
        None => anyhow::bail!(
            "FLOWPLANE_SECRETS_KEY is not set: generate one with `openssl rand -base64 32` \
             (`flowplane up` makes a development key on its own)"
        ),
    };
    let keys =
        service_auth::Keys::new(ServiceSecret::new(&config.service_secret).map_err(|e| {
            anyhow::anyhow!("FLOWPLANE_SERVICE_SECRET: {e} (`flowplane up` makes its own)")
        })?);
    let pool = db::connect(&config.database_url, config.create_database).await?;
    // Notices name this database's installation, so gateways of another ignore them.
    let origin = state::origin(&mut *pool.acquire().await?).await?;
    let notices = notices.from_installation(&origin.installation);
    let ctx = Context {
        keys: Arc::new(keys),
        pool,
        outbox_ready: Arc::new(Notify::new()),
        notices,
        identity: config.identity,
        secrets_key: Arc::new(secrets_key),
        gather: bus.gather(),
    };
    api_definitions::set_shared_gateway_port(config.shared_gateway_port);
    if ctx.secrets_key.has_previous() {
        let resealed =
            secret_material::reseal_with_current_key(&ctx.pool, &ctx.secrets_key).await?;
        tracing::info!(
            resealed,
            "secrets sealed with a previous key are now sealed with FLOWPLANE_SECRETS_KEY; \
             FLOWPLANE_SECRETS_KEY_PREVIOUS can be removed once every config replica runs the new key"
        );
    }
    identity::announce_setup_token(&ctx, config.setup_token.as_deref()).await?;
    // The recorder must exist before the token metrics are registered, or they are lost.
    let _ = flowplane_runtime::metrics::handle();
    sweeper::describe_metrics();
    let sweep = tokio::spawn(sweeper::run(
        ctx.clone(),
        config.token_sweep_interval,
        shutdown.clone(),
    ));

    let relay = tokio::spawn(relay::run(ctx.clone(), bus, shutdown.clone()));
    let http = tokio::spawn(health::serve(
        config.http_addr,
        health::router(readiness.clone()),
        shutdown.clone(),
    ));
    tracing::info!(
        grpc = %config.grpc_addr,
        grpc_tls = grpc_tls.is_some(),
        http = %config.http_addr,
        "config service listening"
    );
    readiness.set(true);
    grpc::serve(ctx, config.grpc_addr, grpc_tls, shutdown).await?;
    readiness.set(false);
    let _ = relay.await;
    let _ = sweep.await;
    let _ = http.await;
    Ok(())
}
