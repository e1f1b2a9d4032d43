//! OAuth2 login: Envoy's oauth2 filter with its secrets over SDS and the token endpoint
//! reached through a cluster.

use envoy_types::pb::envoy::config::core::v3::HttpUri;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::extensions::filters::http::oauth2::v3::o_auth2_credentials::TokenFormation;
use envoy_types::pb::envoy::extensions::filters::http::oauth2::v3::{
    OAuth2, OAuth2Config, OAuth2Credentials,
};
use envoy_types::pb::envoy::r#type::matcher::v3::path_matcher::Rule;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{PathMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::oauth2::OAuth2Filter;

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::{any, milliseconds};
use crate::tls::sds_secret;

impl HttpFilterConfig for OAuth2Filter {
    const NAME: &'static str = "envoy.filters.http.oauth2";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        let config = OAuth2Config {
            token_endpoint: Some(HttpUri {
                uri: self.token_endpoint.uri.clone(),
                http_upstream_type: Some(HttpUpstreamType::Cluster(
                    self.token_endpoint.cluster.clone(),
                )),
                timeout: Some(milliseconds(self.token_endpoint.timeout_ms())),
            }),
            authorization_endpoint: self.authorization_endpoint.clone(),
            credentials: Some(OAuth2Credentials {
                client_id: self.client_id.clone(),
                token_secret: Some(sds_secret(&self.client_secret)),
                token_formation: Some(TokenFormation::HmacSecret(sds_secret(&self.hmac_secret))),
                ..Default::default()
            }),
            // The callback is on whatever host and scheme the user came in on.
            redirect_uri: format!(
                "%REQ(x-forwarded-proto)%://%REQ(:authority)%{}",
                self.redirect_path()
            ),
            redirect_path_matcher: Some(exact_path(self.redirect_path())),
            signout_path: Some(exact_path(self.signout_path())),
            forward_bearer_token: self.forward_bearer_token,
            auth_scopes: self.scopes.clone(),
            ..Default::default()
        };
        Ok(any(&OAuth2 {
            config: Some(config),
        }))
    }
}

fn exact_path(path: &str) -> PathMatcher {
    PathMatcher {
        rule: Some(Rule::Path(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(path.to_string())),
            ..Default::default()
        })),
    }
}
