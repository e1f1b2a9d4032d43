//! External authorization over HTTP: Envoy asks an authorization service (a cluster) about
//! each request and forwards it only on a 2xx answer; any other answer goes back to the client.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::names::check_name;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthzFilter {
    /// The cluster of the authorization service.
    pub cluster: String,
    /// Prepended to the request's path in the check sent to the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// How long a check may take (default 200 ms); then the request fails (403) unless
    /// `failureModeAllow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// When set, only these request headers (besides the method, path and host) are sent to
    /// the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    /// Let requests through when the service cannot be reached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failure_mode_allow: bool,
}

pub const DEFAULT_TIMEOUT_MS: u32 = 200;

impl ExtAuthzFilter {
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        check_name(&self.cluster, &at.field("cluster"), errors);
        if let Some(prefix) = &self.path_prefix
            && (!prefix.starts_with('/') || prefix.ends_with('/'))
        {
            errors.add(
                at.field("pathPrefix").as_str(),
                "must start with / and not end with /",
            );
        }
        if !(1..=60_000).contains(&self.timeout_ms()) {
            errors.add(
                at.field("timeoutMs").as_str(),
                "must be between 1 and 60000",
            );
        }
        let headers = at.field("allowedHeaders");
        for (i, header) in self.allowed_headers.iter().enumerate() {
            let valid = !header.is_empty()
                && header
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                errors.add(
                    headers.index(i).as_str(),
                    "must be a lower-case header name",
                );
            }
        }
    }

    /// The cluster this filter calls, with the field that names it.
    pub fn referenced_clusters(&self, at: &Path) -> Vec<(&str, Path)> {
        vec![(self.cluster.as_str(), at.field("cluster"))]
    }
}
