//! CORS. Envoy ≥ 1.25 reads the policy only from `typed_per_filter_config` on the virtual host
//! or route (the old `cors` route field is deprecated), so the filter itself carries an empty
//! config and the policy is built here for `route::filter_overrides`.

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use flowplane_domain::filters::cors::{CorsFilter, CorsPolicy as DomainPolicy};

use flowplane_domain::error::Path;

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::any;

impl HttpFilterConfig for CorsFilter {
    const NAME: &'static str = "envoy.filters.http.cors";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        Ok(any(&Cors::default()))
    }
}

/// Envoy takes the lists as comma-separated header values, as they are sent in preflights.
pub(crate) fn policy(policy: &DomainPolicy) -> CorsPolicy {
    let origins = policy
        .allow_origins
        .iter()
        .filter_map(|o| {
            let pattern = match (&o.exact, &o.prefix) {
                (Some(exact), _) => MatchPattern::Exact(exact.clone()),
                (None, Some(prefix)) => MatchPattern::Prefix(prefix.clone()),
                (None, None) => return None,
            };
            Some(StringMatcher {
                match_pattern: Some(pattern),
                ..Default::default()
            })
        })
        .collect();
    CorsPolicy {
        allow_origin_string_match: origins,
        allow_methods: policy.allow_methods.join(","),
        allow_headers: policy.allow_headers.join(","),
        expose_headers: policy.expose_headers.join(","),
        max_age: policy
            .max_age_seconds
            .map(|s| s.to_string())
            .unwrap_or_default(),
        allow_credentials: policy.allow_credentials.map(|value| BoolValue { value }),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn lists_become_comma_separated_and_origins_string_matchers() {
        let domain: DomainPolicy = serde_json::from_str(
            r#"{"allowOrigins":[{"exact":"https://a.example"},{"prefix":"https://b."}],
                "allowMethods":["GET","POST"],"allowHeaders":["x-a","x-b"],"maxAgeSeconds":600,
                "allowCredentials":false}"#,
        )
        .unwrap();
        let p = policy(&domain);
        assert_eq!(
            p.allow_origin_string_match
                .iter()
                .map(|m| m.match_pattern.clone().unwrap())
                .collect::<Vec<_>>(),
            [
                MatchPattern::Exact("https://a.example".into()),
                MatchPattern::Prefix("https://b.".into())
            ]
        );
        assert_eq!(p.allow_methods, "GET,POST");
        assert_eq!(p.allow_headers, "x-a,x-b");
        assert_eq!(p.expose_headers, "");
        assert_eq!(p.max_age, "600");
        assert_eq!(p.allow_credentials, Some(BoolValue { value: false }));
    }
}
