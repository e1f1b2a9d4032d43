//! External processing: Envoy streams each request's (and response's) headers, and optionally
//! bodies, to a gRPC service (a cluster speaking HTTP/2) that may change them or answer
//! itself. The same mechanism Flowplane's learning service uses to observe traffic.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::names::check_name;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtProcFilter {
    /// The cluster of the processing service; it must speak gRPC (`protocolType: HTTP2`).
    pub cluster: String,
    /// How long each message may wait for the service's answer (default 200 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Let requests through unprocessed when the service cannot be reached (default: 500).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failure_mode_allow: bool,
    /// What Envoy sends the service (default: request and response headers only).
    #[serde(default)]
    pub processing: ProcessingMode,
}

/// Which parts of the exchange go to the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessingMode {
    #[serde(default = "yes")]
    pub request_headers: bool,
    #[serde(default = "yes")]
    pub response_headers: bool,
    #[serde(default)]
    pub request_body: BodyMode,
    #[serde(default)]
    pub response_body: BodyMode,
}

impl Default for ProcessingMode {
    fn default() -> Self {
        Self {
            request_headers: true,
            response_headers: true,
            request_body: BodyMode::None,
            response_body: BodyMode::None,
        }
    }
}

fn yes() -> bool {
    true
}

/// `buffered` sends the whole body in one message (bounded by the connection's buffer limit);
/// `streamed` sends it in chunks as they arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum BodyMode {
    #[default]
    None,
    Buffered,
    Streamed,
}

pub const DEFAULT_TIMEOUT_MS: u32 = 200;

impl ExtProcFilter {
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        check_name(&self.cluster, &at.field("cluster"), errors);
        if !(1..=60_000).contains(&self.timeout_ms()) {
            errors.add(
                at.field("timeoutMs").as_str(),
                "must be between 1 and 60000",
            );
        }
        let p = &self.processing;
        let sends_nothing = !p.request_headers
            && !p.response_headers
            && p.request_body == BodyMode::None
            && p.response_body == BodyMode::None;
        if sends_nothing {
            errors.add(
                at.field("processing").as_str(),
                "sends nothing to the service; enable at least one part",
            );
        }
    }

    /// The cluster this filter calls, with the field that names it.
    pub fn referenced_clusters(&self, at: &Path) -> Vec<(&str, Path)> {
        vec![(self.cluster.as_str(), at.field("cluster"))]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        let filter: ExtProcFilter = serde_json::from_str(json).expect(json);
        let mut errors = ValidationErrors::new();
        filter.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn headers_are_sent_by_default() {
        let filter: ExtProcFilter = serde_json::from_str(r#"{"cluster":"proc"}"#).unwrap();
        assert_eq!(filter.processing, ProcessingMode::default());
        assert!(errors(r#"{"cluster":"proc","processing":{"requestBody":"buffered"}}"#).is_empty());
    }

    #[test]
    fn each_rule_is_reported_at_its_field() {
        assert_eq!(
            errors(
                r#"{"cluster":"Proc","timeoutMs":0,
                    "processing":{"requestHeaders":false,"responseHeaders":false}}"#
            ),
            ["/cluster", "/timeoutMs", "/processing"]
        );
    }
}
