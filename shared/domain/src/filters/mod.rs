//! HTTP filter options beyond the router, one module per filter, and the per-route /
//! per-virtual-host overrides (`filterOverrides`) that Envoy reads from
//! `typed_per_filter_config`, keyed by the filter's name in the listener.

pub mod catalog;
pub mod compressor;
pub mod cors;
pub mod credential_injector;
pub mod custom_response;
pub mod ext_authz;
pub mod ext_proc;
pub mod global_rate_limit;
pub mod health_check;
pub mod jwt_auth;
pub mod local_rate_limit;
pub mod oauth2;
pub mod rbac;
pub mod wasm;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::header_changes::HeaderChanges;
use crate::names::check_name;
use cors::CorsPolicy;
use custom_response::CustomResponseFilter;
use global_rate_limit::GlobalRateLimitOverride;
use local_rate_limit::LocalRateLimitFilter;
use rbac::RbacFilter;

/// What one route or virtual host changes about one HTTP filter. Set exactly one field.
/// CORS is configured only here: since Envoy 1.25 the CORS filter reads its policy from the
/// route or virtual host, so the listener's `cors` filter merely switches it on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterOverride {
    /// Skip the filter for these requests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    /// A separate token bucket for these requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_rate_limit: Option<LocalRateLimitFilter>,
    /// Header changes that replace the `headerMutation` filter's for these requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_mutation: Option<HeaderChanges>,
    /// Rules that replace the `rbac` filter's for these requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rbac: Option<RbacFilter>,
    /// The name of one of the `jwtAuth` filter's `requirements`; it replaces the filter's
    /// path rules for these requests. Envoy resolves the name per request, so a name the
    /// listener's filter does not define fails those requests rather than the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_requirement: Option<String>,
    /// Limits that replace the `globalRateLimit` filter's for these requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_rate_limit: Option<GlobalRateLimitOverride>,
    /// Rules that replace the `customResponse` filter's for these requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_response: Option<CustomResponseFilter>,
}

/// The override field names, for messages.
pub const OVERRIDE_KINDS: &str = "disabled: true, cors, localRateLimit, headerMutation, rbac, \
     jwtRequirement, globalRateLimit or customResponse";

impl FilterOverride {
    fn fields_set(&self) -> usize {
        [
            self.disabled,
            self.cors.is_some(),
            self.local_rate_limit.is_some(),
            self.header_mutation.is_some(),
            self.rbac.is_some(),
            self.jwt_requirement.is_some(),
            self.global_rate_limit.is_some(),
            self.custom_response.is_some(),
        ]
        .into_iter()
        .filter(|b| *b)
        .count()
    }
}

/// `filterOverrides` by filter name, as on routes and virtual hosts.
pub type FilterOverrides = std::collections::BTreeMap<String, FilterOverride>;

pub(crate) fn validate_overrides(
    overrides: &FilterOverrides,
    at: &Path,
    errors: &mut ValidationErrors,
) {
    for (name, over) in overrides {
        let item = at.field(name);
        if name.is_empty() {
            errors.add(item.as_str(), "the filter name must not be empty");
        }
        if over.fields_set() != 1 {
            errors.add(
                item.as_str(),
                format!("set exactly one of {OVERRIDE_KINDS}"),
            );
        }
        if let Some(cors) = &over.cors {
            cors.validate(&item.field("cors"), errors);
        }
        if let Some(limit) = &over.local_rate_limit {
            limit.validate(&item.field("localRateLimit"), errors);
        }
        if let Some(changes) = &over.header_mutation {
            changes.validate(&item.field("headerMutation"), errors);
        }
        if let Some(rbac) = &over.rbac {
            rbac.validate(&item.field("rbac"), errors);
        }
        if let Some(requirement) = &over.jwt_requirement {
            check_name(requirement, &item.field("jwtRequirement"), errors);
        }
        if let Some(limits) = &over.global_rate_limit {
            limits.validate(&item.field("globalRateLimit"), errors);
        }
        if let Some(custom) = &over.custom_response {
            custom.validate(&item.field("customResponse"), errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        let overrides: FilterOverrides = serde_json::from_str(json).unwrap_or_default();
        let mut errors = ValidationErrors::new();
        validate_overrides(
            &overrides,
            &Path::root().field("filterOverrides"),
            &mut errors,
        );
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn each_override_kind_is_validated_at_its_path() {
        assert_eq!(
            errors(
                r#"{"a":{"rbac":{"rules":[]}},"b":{"headerMutation":{"requestHeadersToRemove":[":path"]}},
                    "c":{"jwtRequirement":"Bad Name"}}"#
            ),
            [
                "/filterOverrides/a/rbac/rules",
                "/filterOverrides/b/headerMutation/requestHeadersToRemove/0",
                "/filterOverrides/c/jwtRequirement"
            ]
        );
    }

    #[test]
    fn one_override_per_filter_name() {
        assert!(errors(r#"{"jwt":{"disabled":true}}"#).is_empty());
        assert_eq!(errors(r#"{"jwt":{}}"#), ["/filterOverrides/jwt"]);
        assert_eq!(
            errors(r#"{"x":{"disabled":true,"localRateLimit":{"maxTokens":1}}}"#),
            ["/filterOverrides/x"]
        );
    }
}
