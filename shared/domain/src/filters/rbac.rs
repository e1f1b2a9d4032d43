//! Role-based access control on request attributes: an ordered list of allow/deny rules on
//! path, method and headers. The first rule that matches decides; `defaultAction` decides
//! when none does.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::route_config::{KeyValueMatch, METHODS, PathMatch, PathMatchType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RbacFilter {
    pub rules: Vec<RbacRule>,
    /// What happens to a request no rule matches (default `allow`).
    #[serde(default)]
    pub default_action: RbacAction,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RbacAction {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RbacRule {
    pub action: RbacAction,
    #[serde(rename = "match")]
    pub rule_match: RbacMatch,
}

/// Every condition given must hold; a match with none matches every request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RbacMatch {
    /// `exact`, `prefix` or `regex`; matched against the path without the query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<KeyValueMatch>,
}

impl RbacFilter {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        let rules = at.field("rules");
        if self.rules.is_empty() {
            errors.add(rules.as_str(), "at least one rule is required");
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let m = rules.index(i).field("match");
            if let Some(path) = &rule.rule_match.path {
                if path.kind == PathMatchType::Template {
                    // Envoy's RBAC path matcher has no URI template form.
                    errors.add(
                        m.field("path").field("type").as_str(),
                        "must be exact, prefix or regex",
                    );
                }
                path.validate(&m.field("path"), errors);
            }
            for (j, method) in rule.rule_match.methods.iter().enumerate() {
                if !METHODS.contains(&method.as_str()) {
                    errors.add(
                        m.field("methods").index(j).as_str(),
                        format!("must be one of {}", METHODS.join(", ")),
                    );
                }
            }
            for (j, header) in rule.rule_match.headers.iter().enumerate() {
                header.validate(&m.field("headers").index(j), errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Vec<String> {
        let filter: RbacFilter = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        let mut errors = ValidationErrors::new();
        filter.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn ordered_rules_with_a_default_are_valid() {
        assert!(fields(
            r#"{"defaultAction":"deny","rules":[
                {"action":"deny","match":{"path":{"type":"prefix","value":"/admin"}}},
                {"action":"allow","match":{"methods":["GET"],"headers":[{"name":"x-team","exact":"a"}]}}]}"#
        )
        .is_empty());
    }

    #[test]
    fn rules_paths_methods_and_headers_are_checked() {
        assert_eq!(fields(r#"{"rules":[]}"#), ["/rules"]);
        assert_eq!(
            fields(
                r#"{"rules":[{"action":"allow","match":{"path":{"type":"template","value":"/a/{id}"},
                    "methods":["FETCH"],"headers":[{"name":"x"}]}}]}"#
            ),
            [
                "/rules/0/match/path/type",
                "/rules/0/match/methods/0",
                "/rules/0/match/headers/0"
            ]
        );
        assert_eq!(
            fields(
                r#"{"rules":[{"action":"deny","match":{"path":{"type":"prefix","value":"admin"}}}]}"#
            ),
            ["/rules/0/match/path/value"]
        );
    }
}
