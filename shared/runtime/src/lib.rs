//! Runtime plumbing every Flowplane service shares. Nothing here knows about resources.
//!
//! - [`env`]: reading typed `FLOWPLANE_*` settings
//! - [`telemetry`]: tracing setup
//! - [`metrics`]: the Prometheus recorder
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`
//! - [`shutdown`]: one signal that stops a service gracefully
//! - [`credential`]: the service credential on internal gRPC
//! - [`tls`]: optional TLS on the ports Envoys call
//! - [`bus`]: the change-event bus (NATS JetStream, or in-process) and the token-invalidated
//!   notices api-gateway replicas listen to

pub mod bus;
pub mod credential;
pub mod env;
pub mod health;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
