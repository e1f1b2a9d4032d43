//! Local rate limiting: one token bucket per Envoy (or per route, through an override), no
//! rate-limit service involved.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRateLimitFilter {
    /// Bucket size: the burst a fresh bucket allows.
    pub max_tokens: u32,
    /// Tokens added each interval (default `maxTokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_fill: Option<u32>,
    #[serde(default = "one_second")]
    pub fill_interval_seconds: u32,
    /// The status of a limited request (default 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

fn one_second() -> u32 {
    1
}

pub const DEFAULT_STATUS: u16 = 429;

impl LocalRateLimitFilter {
    pub fn tokens_per_fill(&self) -> u32 {
        self.tokens_per_fill.unwrap_or(self.max_tokens)
    }

    pub fn status_code(&self) -> u16 {
        self.status_code.unwrap_or(DEFAULT_STATUS)
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if self.max_tokens == 0 {
            errors.add(at.field("maxTokens").as_str(), "must be at least 1");
        }
        if self.tokens_per_fill == Some(0) {
            errors.add(at.field("tokensPerFill").as_str(), "must be at least 1");
        }
        if !(1..=86_400).contains(&self.fill_interval_seconds) {
            errors.add(
                at.field("fillIntervalSeconds").as_str(),
                "must be between 1 and 86400",
            );
        }
        // Envoy only accepts 4xx and 5xx codes for a limited request.
        if !(400..=599).contains(&self.status_code()) {
            errors.add(
                at.field("statusCode").as_str(),
                "must be between 400 and 599",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Vec<String> {
        let filter: LocalRateLimitFilter =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        let mut errors = ValidationErrors::new();
        filter.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn defaults_fill_the_bucket_every_second_and_answer_429() {
        let filter: LocalRateLimitFilter =
            serde_json::from_str(r#"{"maxTokens":5}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(filter.tokens_per_fill(), 5);
        assert_eq!(filter.fill_interval_seconds, 1);
        assert_eq!(filter.status_code(), 429);
        assert!(fields(r#"{"maxTokens":5}"#).is_empty());
    }

    #[test]
    fn every_bound_is_checked() {
        assert_eq!(
            fields(r#"{"maxTokens":0,"tokensPerFill":0,"fillIntervalSeconds":0,"statusCode":200}"#),
            [
                "/maxTokens",
                "/tokensPerFill",
                "/fillIntervalSeconds",
                "/statusCode"
            ]
        );
    }
}
