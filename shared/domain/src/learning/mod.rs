//! Learning sessions: what live traffic through Envoy says an API looks like.
//!
//! Several learning replicas aggregate observations in memory and flush their aggregates to a
//! store that merges them again, so every aggregate here is a value whose `merge` is
//! commutative and associative, and whose serde form is compact JSON (PostgreSQL `jsonb`, a
//! string field over gRPC). No IO and no clocks.
//!
//! - [`shape`]: JSON bodies → an inferred JSON Schema
//! - [`path_template`]: raw request paths → templates such as `/users/{userId}`
//! - [`siblings`]: templates from the evidence across sibling paths
//! - [`endpoint`]: one exchange → a per-(method, path) aggregate
//! - [`rewrite`]: learned paths as the upstream sees them (the route's rewrite applied)
//! - [`openapi`]: aggregates → an OpenAPI 3.1 document Flowplane can import again

pub mod endpoint;
pub mod openapi;
pub mod path_template;
pub mod rewrite;
pub mod shape;
pub mod siblings;

pub use endpoint::{
    LearnedEndpoint, LearnedResponse, MAX_ENDPOINTS_PER_SESSION, Observation, merge_into,
};
pub use openapi::openapi_document;
pub use path_template::template;
pub use shape::Shape;
pub use siblings::generalize;

/// Checks that `merge` is commutative and associative on every pair and triple of `samples`:
/// what lets replicas and the store merge aggregates in any order.
#[cfg(test)]
pub(crate) fn assert_merge_laws<T: Clone + PartialEq + std::fmt::Debug>(
    samples: &[T],
    merge: impl Fn(&mut T, &T),
) {
    let merged = |a: &T, b: &T| {
        let mut out = a.clone();
        merge(&mut out, b);
        out
    };
    for a in samples {
        for b in samples {
            let ab = merged(a, b);
            assert_eq!(ab, merged(b, a), "merge must be commutative");
            for c in samples {
                assert_eq!(
                    merged(&ab, c),
                    merged(a, &merged(b, c)),
                    "merge must be associative"
                );
            }
        }
    }
}
