//! External authorization over HTTP to a cluster.

use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::core::v3::{ApiVersion, HttpUri};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::ext_authz::Services;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{ExtAuthz, HttpService};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{ListStringMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::ext_authz::ExtAuthzFilter;

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::{any, milliseconds};

impl HttpFilterConfig for ExtAuthzFilter {
    const NAME: &'static str = "envoy.filters.http.ext_authz";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        let allowed_headers = (!self.allowed_headers.is_empty()).then(|| ListStringMatcher {
            patterns: self
                .allowed_headers
                .iter()
                .map(|h| StringMatcher {
                    match_pattern: Some(MatchPattern::Exact(h.clone())),
                    ..Default::default()
                })
                .collect(),
        });
        let service = HttpService {
            server_uri: Some(HttpUri {
                // Envoy requires a URI but sends the check to the cluster; the URI only names it.
                uri: format!("http://{}", self.cluster),
                http_upstream_type: Some(HttpUpstreamType::Cluster(self.cluster.clone())),
                timeout: Some(milliseconds(self.timeout_ms())),
            }),
            path_prefix: self.path_prefix.clone().unwrap_or_default(),
            ..Default::default()
        };
        Ok(any(&ExtAuthz {
            services: Some(Services::HttpService(service)),
            allowed_headers,
            transport_api_version: ApiVersion::V3 as i32,
            failure_mode_allow: self.failure_mode_allow,
            ..Default::default()
        }))
    }
}
