//! One entry point for any resource kind: translate and encode, as xds-server stores it and as
//! config's dry run checks it.

use flowplane_domain::AnySpec;

use crate::TranslateError;
use crate::resource::{
    CLUSTER_TYPE, EncodedResource, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE, encode,
};

/// The encoded Envoy resource for `spec` (owned by `team`), or `None` for kinds Envoy never
/// sees (dataplanes).
pub fn translate_any(
    team: &str,
    name: &str,
    spec: &AnySpec,
) -> Result<Option<EncodedResource>, TranslateError> {
    Ok(match spec {
        AnySpec::Cluster(c) => Some(encode(
            name,
            CLUSTER_TYPE,
            &crate::translate_cluster(name, c)?,
        )),
        AnySpec::RouteConfig(r) => Some(encode(
            name,
            ROUTE_TYPE,
            &crate::translate_route_config(name, r)?,
        )),
        AnySpec::Listener(l) => Some(encode(
            name,
            LISTENER_TYPE,
            &crate::translate_listener(team, name, l)?,
        )),
        AnySpec::Secret(s) => Some(encode(
            name,
            SECRET_TYPE,
            &crate::translate_secret(name, s)?,
        )),
        AnySpec::Dataplane(_) => None,
    })
}
