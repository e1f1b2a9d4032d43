//! Credential injection from a generic secret, fetched over SDS like TLS material.

use envoy_types::pb::envoy::extensions::filters::http::credential_injector::v3::CredentialInjector;
use envoy_types::pb::envoy::extensions::http::injected_credentials::generic::v3::Generic;
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::credential_injector::CredentialInjectorFilter;

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::{any, typed_extension};
use crate::tls::sds_secret;

const GENERIC_CREDENTIAL: &str = "envoy.http.injected_credentials.generic";

impl HttpFilterConfig for CredentialInjectorFilter {
    const NAME: &'static str = "envoy.filters.http.credential_injector";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        let credential = Generic {
            credential: Some(sds_secret(&self.secret)),
            header: self.header().to_string(),
            header_value_prefix: self.value_prefix.clone().unwrap_or_default(),
        };
        Ok(any(&CredentialInjector {
            overwrite: self.overwrite,
            // Without its credential a request would reach the upstream unauthenticated.
            allow_request_without_credential: false,
            credential: Some(typed_extension(GENERIC_CREDENTIAL, &credential)),
        }))
    }
}
