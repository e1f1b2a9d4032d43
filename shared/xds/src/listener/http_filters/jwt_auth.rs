//! JWT authentication (`jwt_authn`). Providers and rules map one to one; a rule without
//! providers has no requirement, which is how Envoy spells "do not check these paths".

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::core::v3::{DataSource, HttpUri};
use envoy_types::pb::envoy::config::route::v3::RouteMatch;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::JwksSourceSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_requirement::RequiresType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::per_route_config::RequirementSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::requirement_rule::RequirementType;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider as EnvoyProvider, JwtRequirement, JwtRequirementOrList,
    PerRouteConfig, RemoteJwks as EnvoyRemoteJwks, RequirementRule,
};
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::jwt_auth::{
    DEFAULT_JWKS_TIMEOUT_SECONDS, Jwks, JwtAuthFilter, JwtProvider, JwtRule,
};

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::{any, seconds};

impl HttpFilterConfig for JwtAuthFilter {
    const NAME: &'static str = "envoy.filters.http.jwt_authn";

    fn typed_config(&self, path: &Path) -> Result<Any, TranslateError> {
        let providers = self
            .providers
            .iter()
            .map(|p| (p.name.clone(), provider(p)))
            .collect();
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| rule(r, self, &path.field("rules").index(i)))
            .collect::<Result<_, _>>()?;
        let requirement_map = self
            .requirements
            .iter()
            .map(|(name, providers)| {
                let at = path.field("requirements").field(name);
                let required = requirement(providers, self, &at)?
                    .ok_or_else(|| TranslateError::at(&at, "at least one provider is required"))?;
                Ok((name.clone(), required))
            })
            .collect::<Result<_, TranslateError>>()?;
        Ok(any(&JwtAuthentication {
            providers,
            rules,
            requirement_map,
            ..Default::default()
        }))
    }
}

fn provider(p: &JwtProvider) -> EnvoyProvider {
    let source = match &p.jwks {
        Jwks::Local(local) => JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(Specifier::InlineString(local.inline.clone())),
            ..Default::default()
        }),
        Jwks::Remote(remote) => JwksSourceSpecifier::RemoteJwks(EnvoyRemoteJwks {
            http_uri: Some(HttpUri {
                uri: remote.uri.clone(),
                http_upstream_type: Some(HttpUpstreamType::Cluster(remote.cluster.clone())),
                // Envoy requires a fetch timeout.
                timeout: Some(seconds(
                    remote
                        .timeout_seconds
                        .unwrap_or(DEFAULT_JWKS_TIMEOUT_SECONDS),
                )),
            }),
            ..Default::default()
        }),
    };
    EnvoyProvider {
        issuer: p.issuer.clone().unwrap_or_default(),
        audiences: p.audiences.clone(),
        forward: p.forward,
        jwks_source_specifier: Some(source),
        ..Default::default()
    }
}

fn rule(
    r: &JwtRule,
    filter: &JwtAuthFilter,
    path: &Path,
) -> Result<RequirementRule, TranslateError> {
    let requirement = requirement(&r.providers, filter, &path.field("providers"))?;
    Ok(RequirementRule {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix(r.path_prefix.clone())),
            ..Default::default()
        }),
        requirement_type: requirement.map(RequirementType::Requires),
    })
}

/// Any one of `providers`; none means no requirement.
fn requirement(
    providers: &[String],
    filter: &JwtAuthFilter,
    path: &Path,
) -> Result<Option<JwtRequirement>, TranslateError> {
    for (i, name) in providers.iter().enumerate() {
        if !filter.providers.iter().any(|p| &p.name == name) {
            let message = format!("no provider is named '{name}'");
            return Err(TranslateError::at(&path.index(i), message));
        }
    }
    let by_name = |name: &String| JwtRequirement {
        requires_type: Some(RequiresType::ProviderName(name.clone())),
    };
    Ok(match providers {
        [] => None,
        [one] => Some(by_name(one)),
        several => Some(JwtRequirement {
            requires_type: Some(RequiresType::RequiresAny(JwtRequirementOrList {
                requirements: several.iter().map(by_name).collect(),
            })),
        }),
    })
}

/// The per-route override: select a named requirement instead of the path rules.
pub(crate) fn per_route(requirement_name: &str) -> PerRouteConfig {
    PerRouteConfig {
        requirement_specifier: Some(RequirementSpecifier::RequirementName(
            requirement_name.to_string(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use prost::Message;

    fn translated(json: &str) -> Result<JwtAuthentication, TranslateError> {
        let filter: JwtAuthFilter = serde_json::from_str(json).unwrap();
        let any = filter.typed_config(&Path::root())?;
        Ok(JwtAuthentication::decode(any.value.as_slice()).unwrap())
    }

    #[test]
    fn rules_keep_their_order_and_an_empty_provider_list_checks_nothing() {
        let config = translated(
            r#"{"providers":[{"name":"a","jwks":{"type":"remote","cluster":"idp","uri":"https://idp/jwks"}},
                {"name":"b","jwks":{"type":"local","inline":"{\"keys\":[{}]}"}}],
                "rules":[{"pathPrefix":"/health"},{"pathPrefix":"/one","providers":["a"]},
                {"pathPrefix":"/","providers":["a","b"]}]}"#,
        )
        .unwrap();
        assert_eq!(config.providers.len(), 2);
        let remote = &config.providers["a"];
        let Some(JwksSourceSpecifier::RemoteJwks(jwks)) = &remote.jwks_source_specifier else {
            panic!("remote expected")
        };
        assert_eq!(jwks.http_uri.as_ref().unwrap().timeout, Some(seconds(5)));
        assert_eq!(config.rules.len(), 3);
        assert_eq!(config.rules[0].requirement_type, None);
        let Some(RequirementType::Requires(one)) = &config.rules[1].requirement_type else {
            panic!("requirement expected")
        };
        assert_eq!(
            one.requires_type,
            Some(RequiresType::ProviderName("a".into()))
        );
        let Some(RequirementType::Requires(any_of)) = &config.rules[2].requirement_type else {
            panic!("requirement expected")
        };
        assert!(matches!(
            any_of.requires_type,
            Some(RequiresType::RequiresAny(_))
        ));
    }

    #[test]
    fn named_requirements_are_offered_to_routes() {
        let config = translated(
            r#"{"providers":[{"name":"a","jwks":{"type":"local","inline":"{}"}}],
                "rules":[{"pathPrefix":"/"}],"requirements":{"strict":["a"]}}"#,
        )
        .unwrap();
        let Some(RequiresType::ProviderName(name)) =
            &config.requirement_map["strict"].requires_type
        else {
            panic!("provider name expected")
        };
        assert_eq!(name, "a");
        assert_eq!(
            per_route("strict").requirement_specifier,
            Some(RequirementSpecifier::RequirementName("strict".into()))
        );
    }

    #[test]
    fn an_unknown_provider_is_reported_at_its_rule() {
        let error = translated(
            r#"{"providers":[{"name":"a","jwks":{"type":"local","inline":"{}"}}],
                "rules":[{"pathPrefix":"/","providers":["zz"]}]}"#,
        )
        .unwrap_err();
        assert_eq!(error.field, "/rules/0/providers/0");
    }
}
