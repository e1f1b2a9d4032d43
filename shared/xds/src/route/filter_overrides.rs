//! `filterOverrides` on routes and virtual hosts become `typed_per_filter_config`, keyed by the
//! HTTP filter's name in the listener (Envoy matches the key against the HCM filter names).

use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::FilterConfig;
use envoy_types::pb::envoy::extensions::filters::http::header_mutation::v3::HeaderMutationPerRoute;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::RbacPerRoute;
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::{FilterOverride, FilterOverrides, OVERRIDE_KINDS};

use crate::TranslateError;
use crate::envoy_core::any;
use crate::listener::http_filters::{
    cors, custom_response, global_rate_limit, header_mutation, jwt_auth, local_rate_limit, rbac,
};

pub(super) fn translate(
    overrides: &FilterOverrides,
    path: &Path,
) -> Result<HashMap<String, Any>, TranslateError> {
    overrides
        .iter()
        .map(|(name, over)| {
            let config = one(over, &path.field(name))?;
            Ok((name.clone(), config))
        })
        .collect()
}

fn one(over: &FilterOverride, path: &Path) -> Result<Any, TranslateError> {
    let set: Vec<Any> = [
        // The generic wrapper disables any filter for the route, whatever its type.
        over.disabled.then(|| {
            Ok(any(&FilterConfig {
                disabled: true,
                ..Default::default()
            }))
        }),
        over.cors
            .as_ref()
            .map(|policy| Ok(any(&cors::policy(policy)))),
        over.local_rate_limit.as_ref().map(|limit| {
            local_rate_limit::config(limit, &path.field("localRateLimit")).map(|c| any(&c))
        }),
        over.header_mutation.as_ref().map(|changes| {
            Ok(any(&HeaderMutationPerRoute {
                mutations: Some(header_mutation::all_mutations(changes)),
            }))
        }),
        over.rbac.as_ref().map(|filter| {
            rbac::config(filter, &path.field("rbac"))
                .map(|rbac| any(&RbacPerRoute { rbac: Some(rbac) }))
        }),
        over.jwt_requirement
            .as_deref()
            .map(|name| Ok(any(&jwt_auth::per_route(name)))),
        over.global_rate_limit
            .as_ref()
            .map(|limits| Ok(any(&global_rate_limit::per_route(limits)))),
        over.custom_response
            .as_ref()
            .map(|rules| Ok(any(&custom_response::config(rules)))),
    ]
    .into_iter()
    .flatten()
    .collect::<Result<_, _>>()?;
    match <[Any; 1]>::try_from(set) {
        Ok([config]) => Ok(config),
        Err(_) => Err(TranslateError::at(
            path,
            format!("set exactly one of {OVERRIDE_KINDS}"),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::PerRouteConfig;
    use prost::{Message, Name};

    fn translated(json: &str) -> Result<HashMap<String, Any>, TranslateError> {
        let overrides: FilterOverrides = serde_json::from_str(json).unwrap();
        translate(&overrides, &Path::root().field("filterOverrides"))
    }

    #[test]
    fn each_override_kind_has_its_per_route_message() {
        let configs = translated(
            r#"{"a":{"disabled":true},"b":{"cors":{"allowOrigins":[{"exact":"x"}]}},
                "c":{"localRateLimit":{"maxTokens":1}},"d":{"headerMutation":{"requestHeadersToRemove":["x"]}},
                "e":{"rbac":{"rules":[{"action":"deny","match":{}}]}},"f":{"jwtRequirement":"strict"}}"#,
        )
        .unwrap();
        let type_url = |name: &str| configs[name].type_url.clone();
        assert_eq!(type_url("a"), FilterConfig::type_url());
        assert!(
            FilterConfig::decode(configs["a"].value.as_slice())
                .unwrap()
                .disabled
        );
        assert!(type_url("b").ends_with("cors.v3.CorsPolicy"));
        assert!(type_url("c").ends_with("local_ratelimit.v3.LocalRateLimit"));
        assert_eq!(type_url("d"), HeaderMutationPerRoute::type_url());
        assert_eq!(type_url("e"), RbacPerRoute::type_url());
        assert_eq!(type_url("f"), PerRouteConfig::type_url());
    }

    #[test]
    fn an_override_with_two_kinds_is_reported_at_its_name() {
        let error = translated(r#"{"x":{"disabled":true,"jwtRequirement":"a"}}"#).unwrap_err();
        assert_eq!(error.field, "/filterOverrides/x");
        let empty = translated(r#"{"x":{}}"#).unwrap_err();
        assert_eq!(empty.field, "/filterOverrides/x");
    }
}
