//! One entry point for any resource kind: translate and encode, as xds-server stores it and as
//! config's dry run checks it.

use flowplane_domain::AnySpec;

use crate::TranslateError;
use crate::resource::{
    CLUSTER_TYPE, ENDPOINT_TYPE, EncodedResource, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE, encode,
};

/// The encoded Envoy resources for `spec` (owned by `team`): one for most kinds, a cluster
/// and its endpoints (EDS) for a cluster of IP endpoints, none for kinds Envoy never sees
/// (dataplanes), none for a learning session that is not active.
pub fn translate_any(
    team: &str,
    name: &str,
    spec: &AnySpec,
) -> Result<Vec<EncodedResource>, TranslateError> {
    Ok(match spec {
        AnySpec::Cluster(c) => {
            let cluster = encode(name, CLUSTER_TYPE, &crate::translate_cluster(name, c)?);
            let endpoints = crate::translate_cluster_endpoints(name, c)?
                .map(|e| encode(name, ENDPOINT_TYPE, &e));
            std::iter::once(cluster).chain(endpoints).collect()
        }
        AnySpec::RouteConfig(r) => vec![encode(
            name,
            ROUTE_TYPE,
            &crate::translate_route_config(name, r)?,
        )],
        // A listener serves its learning slot's idle configuration beside itself.
        AnySpec::Listener(l) => vec![
            encode(
                name,
                LISTENER_TYPE,
                &crate::translate_listener(team, name, l)?,
            ),
            crate::learning::idle_slot(name),
        ],
        AnySpec::Secret(s) => vec![encode(
            name,
            SECRET_TYPE,
            &crate::translate_secret(name, s)?,
        )],
        AnySpec::LearningSession(s) => crate::translate_learning_session(team, name, s),
        AnySpec::Dataplane(_) => Vec::new(),
    })
}
