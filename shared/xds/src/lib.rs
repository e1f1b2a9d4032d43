//! Pure translation from Flowplane's domain model to Envoy v3 protos, plus the encoded form
//! the xDS server shares across streams and the bootstrap a dataplane starts from. No IO:
//! every function here is a deterministic function of its input.

pub mod bootstrap;
pub mod cluster;
pub mod explain;
pub mod learning;
pub mod listener;
pub mod resource;
pub mod route;
pub mod secret;

mod envoy_core;
mod error;
mod headers;
mod tls;
mod translate;

pub use cluster::{translate_cluster, translate_cluster_endpoints};
pub use error::TranslateError;
pub use learning::translate_learning_session;
pub use listener::translate_listener;
pub use route::translate_route_config;
pub use secret::translate_secret;
pub use translate::translate_any;
