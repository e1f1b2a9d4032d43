//! Flowplane's domain model: the JSON shape of every resource, its validation (with field
//! paths), and the scope rules. No IO: storage, transport and Envoy live elsewhere.

pub mod api_definition;
pub mod cluster;
pub mod dataplane;
pub mod delivery;
pub mod error;
pub mod filters;
pub mod findings;
pub mod header_changes;
pub mod learning;
pub mod learning_session;
pub mod listener;
pub mod membership;
pub mod names;
pub mod preflight;
pub mod reports;
pub mod request_trace;
pub mod resource;
pub mod route_config;
pub mod scopes;
pub mod secret;
pub mod topology;

pub use error::{ErrorCode, FieldError, ValidationErrors};
pub use resource::{
    AnySpec, Needs, Parsed, RefTarget, Reference, ResourceKind, parse_body, parse_spec,
};
