//! Cross-origin resource sharing: which origins may call, and what preflights answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::header_changes::is_header_name;
use crate::route_config::METHODS;

/// Switches the CORS filter on; the policy is set per virtual host or route in
/// `filterOverrides` (see `FilterOverride`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsFilter {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    pub allow_origins: Vec<OriginMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
}

/// An allowed origin, such as `https://app.example.com`. Set exactly one of `exact` or `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OriginMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl CorsPolicy {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        let origins = at.field("allowOrigins");
        if self.allow_origins.is_empty() {
            errors.add(origins.as_str(), "at least one origin is required");
        }
        for (i, origin) in self.allow_origins.iter().enumerate() {
            match (&origin.exact, &origin.prefix) {
                (Some(value), None) | (None, Some(value)) if !value.is_empty() => {}
                _ => errors.add(
                    origins.index(i).as_str(),
                    "set exactly one non-empty exact or prefix",
                ),
            }
        }
        for (i, method) in self.allow_methods.iter().enumerate() {
            if !METHODS.contains(&method.as_str()) {
                errors.add(
                    at.field("allowMethods").index(i).as_str(),
                    format!("must be one of {}", METHODS.join(", ")),
                );
            }
        }
        for (field, names) in [
            ("allowHeaders", &self.allow_headers),
            ("exposeHeaders", &self.expose_headers),
        ] {
            for (i, name) in names.iter().enumerate() {
                if name.starts_with(':') || !is_header_name(name) {
                    errors.add(at.field(field).index(i).as_str(), "must be a header name");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Vec<String> {
        let policy: CorsPolicy = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        let mut errors = ValidationErrors::new();
        policy.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_full_policy_is_valid() {
        assert!(
            fields(
                r#"{"allowOrigins":[{"exact":"https://a.example"},{"prefix":"https://b."}],
                "allowMethods":["GET","POST"],"allowHeaders":["x-a"],"exposeHeaders":["x-b"],
                "maxAgeSeconds":600,"allowCredentials":true}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn origins_methods_and_headers_are_checked() {
        assert_eq!(fields(r#"{"allowOrigins":[]}"#), ["/allowOrigins"]);
        assert_eq!(
            fields(r#"{"allowOrigins":[{"exact":"a","prefix":"b"},{}]}"#),
            ["/allowOrigins/0", "/allowOrigins/1"]
        );
        assert_eq!(
            fields(
                r#"{"allowOrigins":[{"exact":"a"}],"allowMethods":["get"],"allowHeaders":["a b"],"exposeHeaders":[":path"]}"#
            ),
            ["/allowMethods/0", "/allowHeaders/0", "/exposeHeaders/0"]
        );
    }
}
