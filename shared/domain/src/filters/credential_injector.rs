//! Credential injection for outbound calls: Envoy adds a credential kept in a `genericSecret`
//! (an API key, a bearer token) to each request on its way upstream, so clients and
//! applications never hold it. The value arrives over SDS, so rotating the secret changes what
//! is sent without touching the listener.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::names::check_name;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialInjectorFilter {
    /// A `genericSecret` of the team holding the credential.
    pub secret: String,
    /// The request header that carries it (default `authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Written before the secret's value, such as `Bearer ` or `Basic `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_prefix: Option<String>,
    /// Replace the header when the client already sent one (default: keep the client's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
}

pub const DEFAULT_HEADER: &str = "authorization";

impl CredentialInjectorFilter {
    pub fn header(&self) -> &str {
        self.header.as_deref().unwrap_or(DEFAULT_HEADER)
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        check_name(&self.secret, &at.field("secret"), errors);
        let header = self.header();
        let valid = !header.is_empty()
            && header
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            errors.add(
                at.field("header").as_str(),
                "must be a lower-case header name",
            );
        }
        if let Some(prefix) = &self.value_prefix
            && prefix.chars().any(|c| c.is_control())
        {
            errors.add(
                at.field("valuePrefix").as_str(),
                "must not contain control characters",
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        let filter: CredentialInjectorFilter = serde_json::from_str(json).expect(json);
        let mut errors = ValidationErrors::new();
        filter.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn the_header_defaults_to_authorization() {
        let filter: CredentialInjectorFilter =
            serde_json::from_str(r#"{"secret":"api-key"}"#).unwrap();
        assert_eq!(filter.header(), "authorization");
        assert!(errors(r#"{"secret":"api-key","valuePrefix":"Bearer "}"#).is_empty());
    }

    #[test]
    fn each_rule_is_reported_at_its_field() {
        assert_eq!(
            errors(r#"{"secret":"Bad Name","header":"X-Key","valuePrefix":"a\nb"}"#),
            ["/secret", "/header", "/valuePrefix"]
        );
    }
}
