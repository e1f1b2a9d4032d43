//! The shape of a preflight (the ops *preflight* report): one change to a team's resources,
//! tried without writing it. The answer says whether the API would take it, what uses the
//! resource (and so changes with it), and which findings of the team as a whole
//! ([`crate::findings`]) the change would add or clear: what a reviewer, or an agent about to
//! act, wants to know first.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ValidationErrors;
use crate::findings::Finding;
use crate::resource::ResourceKind;

/// A change to try.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreflightRequest {
    /// `clusters`, `route-configs`, `listeners`, `secrets` or `dataplanes` (API definitions
    /// take `dryRun` on their own writes).
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// The resource as a create or replace takes it; absent to try deleting it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub resource: Option<serde_json::Value>,
}

impl PreflightRequest {
    /// The kind, when it is one a preflight covers.
    pub fn checked_kind(&self) -> Result<ResourceKind, ValidationErrors> {
        match ResourceKind::from_collection(&self.kind) {
            Some(kind) if kind != ResourceKind::LearningSession => Ok(kind),
            _ => Err(ValidationErrors::single(
                "/kind",
                "must be clusters, route-configs, listeners, secrets or dataplanes",
            )),
        }
    }
}

/// What the change would do.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preflight {
    /// Whether the API would take the change as it stands (`problems` is empty).
    pub accepted: bool,
    /// `create`, `update`, `unchanged` or `delete`.
    pub operation: String,
    /// Why it would be refused: JSON pointers into `resource` and messages, as a write would
    /// answer them; for a delete, the references that hold the resource in place.
    pub problems: Vec<Problem>,
    /// The team's resources that use this one: pushed again with an update, left dangling
    /// by a delete.
    pub affected: Vec<Affected>,
    /// Findings the team would have after the change and does not have now.
    pub introduced: Vec<Finding>,
    /// Findings the team has now that the change would clear.
    pub resolved: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// JSON pointer (into `resource`; for a delete, to the referring field).
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Affected {
    /// `clusters`, `route-configs`, `listeners` or `learning-sessions`.
    pub kind: String,
    pub name: String,
    /// Where it refers to the changed resource.
    pub field: String,
}

/// The findings only `after` has, and the ones only `before` has.
pub fn compare(before: &[Finding], after: &[Finding]) -> (Vec<Finding>, Vec<Finding>) {
    let introduced = after
        .iter()
        .filter(|f| !before.contains(f))
        .cloned()
        .collect();
    let resolved = before
        .iter()
        .filter(|f| !after.contains(f))
        .cloned()
        .collect();
    (introduced, resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Severity;

    fn finding(code: &str, name: &str) -> Finding {
        Finding {
            severity: Severity::Warning,
            code: code.into(),
            kind: "clusters".into(),
            name: name.into(),
            field: String::new(),
            message: "m".into(),
        }
    }

    #[test]
    fn findings_compare_both_ways() {
        let before = [finding("unreferencedCluster", "a"), finding("x", "b")];
        let after = [finding("x", "b"), finding("unreferencedCluster", "c")];
        let (introduced, resolved) = compare(&before, &after);
        assert_eq!(introduced, [finding("unreferencedCluster", "c")]);
        assert_eq!(resolved, [finding("unreferencedCluster", "a")]);
    }

    #[test]
    fn preflights_cover_the_native_kinds_only() {
        let request = |kind: &str| PreflightRequest {
            kind: kind.into(),
            name: "n".into(),
            resource: None,
        };
        assert_eq!(
            request("route-configs").checked_kind(),
            Ok(ResourceKind::RouteConfig)
        );
        assert!(request("learning-sessions").checked_kind().is_err());
        assert!(request("api-definitions").checked_kind().is_err());
        assert!(request("users").checked_kind().is_err());
    }
}
