//! HTTP filters of the connection manager, in the order written. Each filter is one module
//! implementing `HttpFilterConfig`; `http_filter` is the registry that maps a domain filter to
//! its module. The router is terminal: it is appended when the list does not end with one.

mod compressor;
pub(crate) mod cors;
mod credential_injector;
pub(crate) mod custom_response;
mod ext_authz;
mod ext_proc;
pub(crate) mod global_rate_limit;
pub(crate) mod header_mutation;
mod health_check;
pub(crate) mod jwt_auth;
pub(crate) mod local_rate_limit;
mod oauth2;
pub(crate) mod rbac;
mod router;
mod wasm;

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter as EnvoyHttpFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::listener::{HttpFilter, HttpFilterEntry, RouterFilter};

use crate::TranslateError;
use crate::envoy_core::given_or;

/// One HTTP filter's Envoy form.
trait HttpFilterConfig {
    /// Envoy's extension name, used when the entry does not name the filter itself.
    const NAME: &'static str;
    /// `path` points at the filter's options in the REST body, for errors.
    fn typed_config(&self, path: &Path) -> Result<Any, TranslateError>;
}

/// `team` owns the listener; filters whose state is shared by the team's Envoys (the global
/// rate limit's counters) are keyed by it. Just before the router sits the listener's learning
/// slot, so learning sees requests as they go upstream and responses as they come back.
pub(super) fn translate(
    entries: &[HttpFilterEntry],
    team: &str,
    listener: &str,
    path: &Path,
) -> Result<Vec<EnvoyHttpFilter>, TranslateError> {
    let mut filters = Vec::with_capacity(entries.len() + 2);
    for (i, entry) in entries.iter().enumerate() {
        let at = path.index(i);
        if is_router(entry) && i + 1 != entries.len() {
            // Envoy rejects a chain whose terminal router is not last: nothing runs after it.
            return Err(TranslateError::at(
                &at,
                "the router must be the last HTTP filter",
            ));
        }
        filters.push(http_filter(entry, team, &at)?);
    }
    if !entries.last().is_some_and(is_router) {
        filters.push(build(None, &RouterFilter::default(), path)?);
    }
    filters.insert(filters.len() - 1, crate::learning::slot(listener));
    Ok(filters)
}

fn is_router(entry: &HttpFilterEntry) -> bool {
    matches!(entry.filter, HttpFilter::Router(_))
}

fn http_filter(
    entry: &HttpFilterEntry,
    team: &str,
    path: &Path,
) -> Result<EnvoyHttpFilter, TranslateError> {
    let name = entry.name.as_deref();
    match &entry.filter {
        HttpFilter::Router(config) => build(name, config, path),
        HttpFilter::Cors(config) => build(name, config, path),
        HttpFilter::LocalRateLimit(config) => build(name, config, path),
        HttpFilter::HeaderMutation(config) => build(name, config, path),
        HttpFilter::Rbac(config) => build(name, config, path),
        HttpFilter::JwtAuth(config) => build(name, config, path),
        HttpFilter::Compressor(config) => build(name, config, path),
        HttpFilter::HealthCheck(config) => build(name, config, path),
        HttpFilter::ExtAuthz(config) => build(name, config, path),
        HttpFilter::CredentialInjector(config) => build(name, config, path),
        HttpFilter::CustomResponse(config) => build(name, config, path),
        HttpFilter::ExtProc(config) => build(name, config, path),
        HttpFilter::OAuth2(config) => build(name, config, path),
        HttpFilter::Wasm(config) => build(name, config, path),
        HttpFilter::GlobalRateLimit(filter) => build(
            name,
            &global_rate_limit::TeamRateLimit { team, filter },
            path,
        ),
    }
}

fn build<F: HttpFilterConfig>(
    name: Option<&str>,
    config: &F,
    path: &Path,
) -> Result<EnvoyHttpFilter, TranslateError> {
    Ok(EnvoyHttpFilter {
        name: given_or(name, F::NAME, &path.field("name"))?,
        config_type: Some(ConfigType::TypedConfig(
            config.typed_config(&path.field("filter"))?,
        )),
        ..Default::default()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn entries(json: &str) -> Vec<HttpFilterEntry> {
        serde_json::from_str(json).expect("test filters are valid")
    }

    fn translated(json: &str) -> Result<Vec<EnvoyHttpFilter>, TranslateError> {
        translate(
            &entries(json),
            "team",
            "edge",
            &Path::root().field("httpFilters"),
        )
    }

    fn names(filters: &[EnvoyHttpFilter]) -> Vec<&str> {
        filters.iter().map(|f| f.name.as_str()).collect()
    }

    fn type_url(filter: &EnvoyHttpFilter) -> &str {
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!("typed config expected")
        };
        &any.type_url
    }

    #[test]
    fn a_router_is_appended_to_an_empty_list_after_the_learning_slot() {
        let filters = translated("[]").unwrap();
        assert_eq!(
            names(&filters),
            ["flowplane.learning/edge", "envoy.filters.http.router"]
        );
        assert_eq!(
            type_url(&filters[1]),
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        );
    }

    #[test]
    fn a_trailing_router_is_kept_with_its_name_and_not_doubled() {
        let filters = translated(r#"[{"name":"my-router","filter":{"type":"router"}}]"#).unwrap();
        assert_eq!(names(&filters), ["flowplane.learning/edge", "my-router"]);
        let filters = translated(r#"[{"filter":{"type":"router"}}]"#).unwrap();
        assert_eq!(
            names(&filters),
            ["flowplane.learning/edge", "envoy.filters.http.router"]
        );
    }

    #[test]
    fn a_router_before_the_end_is_rejected_at_its_index() {
        let error = translated(r#"[{"filter":{"type":"router"}},{"filter":{"type":"router"}}]"#)
            .unwrap_err();
        assert_eq!(error.field, "/httpFilters/0");
    }

    #[test]
    fn an_empty_filter_name_is_rejected() {
        let error = translated(r#"[{"name":"","filter":{"type":"router"}}]"#).unwrap_err();
        assert_eq!(error.field, "/httpFilters/0/name");
    }

    /// `GET /api/v1/filter-types` documents each type's default Envoy name from the domain
    /// catalog; this keeps the catalog honest against the names translation really uses.
    #[test]
    fn the_filter_catalog_names_match_translation() {
        use flowplane_domain::filters::catalog::FILTER_TYPES;
        let samples = [
            r#"{"type":"router"}"#,
            r#"{"type":"cors"}"#,
            r#"{"type":"localRateLimit","maxTokens":1}"#,
            r#"{"type":"headerMutation","requestHeadersToAdd":[{"name":"x-a","value":"b"}]}"#,
            r#"{"type":"rbac","rules":[{"action":"deny","match":{"path":{"type":"prefix","value":"/x"}}}]}"#,
            r#"{"type":"jwtAuth","providers":[{"name":"p","jwks":{"type":"local","inline":"{\"keys\":[]}"}}],
                "rules":[{"pathPrefix":"/","providers":["p"]}]}"#,
            r#"{"type":"compressor"}"#,
            r#"{"type":"healthCheck","path":"/healthz"}"#,
            r#"{"type":"extAuthz","cluster":"authz"}"#,
            r#"{"type":"globalRateLimit","limits":[{"name":"all","requestsPerUnit":1,"unit":"second"}]}"#,
            r#"{"type":"credentialInjector","secret":"api-key"}"#,
            r#"{"type":"customResponse","rules":[{"statusClass":"5xx","body":"down"}]}"#,
            r#"{"type":"extProc","cluster":"processor"}"#,
            r#"{"type":"oauth2","authorizationEndpoint":"https://idp/authorize",
                "tokenEndpoint":{"cluster":"idp","uri":"https://idp/token"},
                "clientId":"app","clientSecret":"client","hmacSecret":"hmac"}"#,
            r#"{"type":"wasm","module":{"inlineBase64":"AGFzbQEAAAA="}}"#,
        ];
        assert_eq!(samples.len(), FILTER_TYPES.len());
        for sample in samples {
            let filter: HttpFilter = serde_json::from_str(sample).expect(sample);
            let tag = serde_json::to_value(&filter).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string();
            let facts = flowplane_domain::filters::catalog::facts(&tag).expect(&tag);
            let entry = HttpFilterEntry { name: None, filter };
            let translated = http_filter(&entry, "team", &Path::root()).expect(sample);
            assert_eq!(translated.name, facts.default_name, "{tag}");
        }
    }
}
