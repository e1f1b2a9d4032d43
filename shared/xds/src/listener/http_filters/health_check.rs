//! Envoy's health check filter in non-pass-through mode: Envoy itself answers the path.

use envoy_types::pb::envoy::config::route::v3::HeaderMatcher;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::health_check::v3::HealthCheck;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use flowplane_domain::error::Path;
use flowplane_domain::filters::health_check::HealthCheckFilter;

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::any;

impl HttpFilterConfig for HealthCheckFilter {
    const NAME: &'static str = "envoy.filters.http.health_check";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        Ok(any(&HealthCheck {
            pass_through_mode: Some(BoolValue { value: false }),
            headers: vec![HeaderMatcher {
                name: ":path".into(),
                header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                    match_pattern: Some(MatchPattern::Exact(self.path.clone())),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }))
    }
}
