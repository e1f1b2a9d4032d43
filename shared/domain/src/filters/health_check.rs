//! Envoy answering health checks itself on one path, so a load balancer in front of Envoy can
//! tell whether this Envoy is up (and draining) without involving any upstream.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckFilter {
    /// The exact request path Envoy answers (200, or 503 while draining).
    pub path: String,
}

impl HealthCheckFilter {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if !self.path.starts_with('/') {
            errors.add(at.field("path").as_str(), "must start with /");
        }
    }
}
