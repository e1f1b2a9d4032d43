//! Circuit breakers: caps on what Envoy sends to a cluster at once. A request over a cap is
//! answered by Envoy itself with 503 and `x-envoy-overloaded: true` instead of queueing.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};

/// Limits per routing priority. Requests are `default` priority unless a route says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakers {
    #[serde(rename = "default", default, skip_serializing_if = "Option::is_none")]
    pub default_priority: Option<CircuitBreakerThresholds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<CircuitBreakerThresholds>,
}

/// Each unset limit keeps Envoy's default (1024 each; 3 concurrent retries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerThresholds {
    /// Connections to all endpoints together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Retries in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

impl CircuitBreakers {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if self.default_priority.is_none() && self.high.is_none() {
            errors.add(at.as_str(), "set default, high or both");
        }
        if let Some(thresholds) = &self.default_priority {
            thresholds.validate(&at.field("default"), errors);
        }
        if let Some(thresholds) = &self.high {
            thresholds.validate(&at.field("high"), errors);
        }
    }
}

impl CircuitBreakerThresholds {
    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        let limits = [
            ("maxConnections", self.max_connections),
            ("maxPendingRequests", self.max_pending_requests),
            ("maxRequests", self.max_requests),
            ("maxRetries", self.max_retries),
        ];
        if limits.iter().all(|(_, value)| value.is_none()) {
            errors.add(
                at.as_str(),
                "set at least one of maxConnections, maxPendingRequests, maxRequests or maxRetries",
            );
        }
        // Zero is accepted by Envoy but would refuse every request: almost surely a mistake.
        for (field, value) in limits {
            if value == Some(0) {
                errors.add(at.field(field).as_str(), "must be at least 1");
            }
        }
        // maxRetries 0 could mean "never retry", but a route's retryPolicy says that better.
    }
}
