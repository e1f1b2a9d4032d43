//! Runtime plumbing every Flowplane service shares. Nothing here knows about resources.
//!
//! - [`env`]: reading typed `FLOWPLANE_*` settings
//! - [`telemetry`]: tracing setup
//! - [`metrics`]: the Prometheus recorder
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`
//! - [`shutdown`]: one signal that stops a service gracefully
//! - [`credential`]: service credentials on internal gRPC, the service secret config derives
//!   every key from, and the tokens Envoys present
//! - [`dataplanes`]: asks config whether an Envoy's token is a live dataplane's (ratelimit,
//!   learning), with a short cache
//! - [`tls`]: optional TLS on the ports Envoys call
//! - [`bus`]: the change-event bus (NATS JetStream, or in-process) and the token-invalidated
//!   notices api-gateway replicas listen to

pub mod bus;
pub mod credential;
pub mod dataplanes;
pub mod env;
pub mod health;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
