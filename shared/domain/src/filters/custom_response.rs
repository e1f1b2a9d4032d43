//! Custom responses: when the upstream answers with one of the listed statuses, the client
//! gets the platform's own body (and optionally status) instead, such as a JSON error document
//! in place of an HTML 503 page. Rules are tried in order; the first that matches answers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::header_changes::{HeaderToAdd, check_headers_to_add};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomResponseFilter {
    pub rules: Vec<CustomResponseRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomResponseRule {
    /// Upstream statuses this rule answers for. Set this or `statusClass`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_codes: Vec<u16>,
    /// A whole class of upstream statuses. Set this or `statusCodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_class: Option<StatusClass>,
    /// The status the client gets (default: the upstream's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The body the client gets in place of the upstream's.
    pub body: String,
    /// Headers added to the response, such as `content-type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderToAdd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum StatusClass {
    #[serde(rename = "4xx")]
    ClientError,
    #[serde(rename = "5xx")]
    ServerError,
}

impl StatusClass {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

pub const MAX_RULES: usize = 32;
/// Envoy keeps each body in memory per filter; the same cap as a direct response.
pub const MAX_BODY: usize = 4096;

impl CustomResponseFilter {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        let rules = at.field("rules");
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            errors.add(
                rules.as_str(),
                format!("between 1 and {MAX_RULES} rules are required"),
            );
        }
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate(&rules.index(i), errors);
        }
    }
}

impl CustomResponseRule {
    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if self.status_codes.is_empty() == self.status_class.is_none() {
            errors.add(at.as_str(), "set exactly one of statusCodes or statusClass");
        }
        for (i, code) in self.status_codes.iter().enumerate() {
            if !(100..=599).contains(code) {
                errors.add(
                    at.field("statusCodes").index(i).as_str(),
                    "must be between 100 and 599",
                );
            }
        }
        if let Some(status) = self.status
            && !(200..=599).contains(&status)
        {
            errors.add(at.field("status").as_str(), "must be between 200 and 599");
        }
        if self.body.len() > MAX_BODY {
            errors.add(
                at.field("body").as_str(),
                format!("must be at most {MAX_BODY} bytes"),
            );
        }
        check_headers_to_add(
            &self.response_headers_to_add,
            &at.field("responseHeadersToAdd"),
            errors,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        let filter: CustomResponseFilter = serde_json::from_str(json).expect(json);
        let mut errors = ValidationErrors::new();
        filter.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_rule_matches_codes_or_a_class() {
        assert!(
            errors(
                r#"{"rules":[{"statusCodes":[502,503],"status":503,"body":"{}",
                    "responseHeadersToAdd":[{"name":"content-type","value":"application/json"}]},
                  {"statusClass":"4xx","body":"client error"}]}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn each_rule_is_reported_at_its_field() {
        assert_eq!(errors(r#"{"rules":[]}"#), ["/rules"]);
        assert_eq!(
            errors(
                r#"{"rules":[{"body":"x"},
                  {"statusCodes":[503],"statusClass":"5xx","body":"x"},
                  {"statusCodes":[99],"status":100,"body":"x"}]}"#
            ),
            [
                "/rules/0",
                "/rules/1",
                "/rules/2/statusCodes/0",
                "/rules/2/status"
            ]
        );
    }
}
