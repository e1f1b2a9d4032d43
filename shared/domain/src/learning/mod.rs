//! Learning sessions: what live traffic through Envoy says an API looks like.
//!
//! Several learning replicas aggregate observations in memory and flush their aggregates to a
//! store that merges them again, so every aggregate here is a value whose `merge` is
//! commutative and associative, and whose serde form is compact JSON (PostgreSQL `jsonb`, a
//! string field over gRPC). No IO and no clocks.
//!
//! - [`shape`]: JSON bodies → an inferred JSON Schema
//! - [`path_template`]: raw request paths → templates such as `/users/{userId}`
//! - [`endpoint`]: one exchange → a per-(method, path) aggregate
//! - [`openapi`]: aggregates → an OpenAPI 3.1 document Flowplane can import again

pub mod endpoint;
pub mod openapi;
pub mod path_template;
pub mod shape;

pub use endpoint::{
    LearnedEndpoint, LearnedResponse, MAX_ENDPOINTS_PER_SESSION, Observation, merge_into,
};
pub use openapi::openapi_document;
pub use path_template::template;
pub use shape::Shape;
