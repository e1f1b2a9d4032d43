//! RBAC. Envoy's RBAC filter has one action and an unordered map of policies, while Flowplane's
//! rules are ordered, first match wins. The ordered list is compiled into a single DENY policy
//! set: deny rule *i* becomes "matches rule *i* and none of the allow rules before it", and a
//! `deny` default becomes "matches no allow rule". Any request none of these catch is allowed.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::rbac::v3::permission::{Rule, Set};
use envoy_types::pb::envoy::config::rbac::v3::principal::Identifier;
use envoy_types::pb::envoy::config::rbac::v3::rbac::Action;
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal, Rbac as Rules};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac;
use envoy_types::pb::envoy::r#type::matcher::v3::PathMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::path_matcher::Rule as PathRule;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::rbac::{RbacAction, RbacFilter, RbacMatch};
use flowplane_domain::route_config::{PathMatch, PathMatchType};

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::any;
use crate::route::route_match::{header_matcher, method_matcher, regex, string_matcher};

impl HttpFilterConfig for RbacFilter {
    const NAME: &'static str = "envoy.filters.http.rbac";

    fn typed_config(&self, path: &Path) -> Result<Any, TranslateError> {
        config(self, path).map(|c| any(&c))
    }
}

/// The filter config; a per-route override wraps the same message in `RbacPerRoute`.
pub(crate) fn config(filter: &RbacFilter, path: &Path) -> Result<Rbac, TranslateError> {
    let rules = path.field("rules");
    let mut allowed_so_far: Vec<Permission> = Vec::new();
    let mut policies = HashMap::new();
    for (i, rule) in filter.rules.iter().enumerate() {
        let matched = permission(&rule.rule_match, &rules.index(i).field("match"))?;
        match rule.action {
            RbacAction::Allow => allowed_so_far.push(matched),
            RbacAction::Deny => {
                let denied = and(vec![matched, not(or(allowed_so_far.clone()))]);
                policies.insert(format!("rule-{i:03}"), deny_everyone(denied));
            }
        }
    }
    if filter.default_action == RbacAction::Deny {
        policies.insert("default".into(), deny_everyone(not(or(allowed_so_far))));
    }
    Ok(Rbac {
        rules: Some(Rules {
            action: Action::Deny as i32,
            policies,
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn deny_everyone(permission: Permission) -> Policy {
    Policy {
        permissions: vec![permission],
        principals: vec![Principal {
            identifier: Some(Identifier::Any(true)),
        }],
        ..Default::default()
    }
}

fn permission(m: &RbacMatch, path: &Path) -> Result<Permission, TranslateError> {
    let mut all = Vec::new();
    if let Some(p) = &m.path {
        all.push(rule(Rule::UrlPath(path_matcher(p, &path.field("path"))?)));
    }
    if let Some(methods) = method_matcher(&m.methods, &path.field("methods"))? {
        all.push(rule(Rule::Header(methods)));
    }
    for (i, header) in m.headers.iter().enumerate() {
        let matcher = header_matcher(header, &path.field("headers").index(i))?;
        all.push(rule(Rule::Header(matcher)));
    }
    Ok(and(all))
}

fn path_matcher(p: &PathMatch, path: &Path) -> Result<PathMatcher, TranslateError> {
    let pattern = match p.kind {
        PathMatchType::Exact => MatchPattern::Exact(p.value.clone()),
        PathMatchType::Prefix => MatchPattern::Prefix(p.value.clone()),
        PathMatchType::Regex => MatchPattern::SafeRegex(regex(p.value.clone())),
        PathMatchType::Template => {
            let message = "must be exact, prefix or regex";
            return Err(TranslateError::at(&path.field("type"), message));
        }
    };
    Ok(PathMatcher {
        rule: Some(PathRule::Path(string_matcher(pattern))),
    })
}

fn rule(rule: Rule) -> Permission {
    Permission { rule: Some(rule) }
}

/// Envoy rejects empty and/or sets, so the empty cases become "any" and "none".
fn and(mut rules: Vec<Permission>) -> Permission {
    match rules.len() {
        0 => rule(Rule::Any(true)),
        1 => rules.remove(0),
        _ => rule(Rule::AndRules(Set { rules })),
    }
}

fn or(mut rules: Vec<Permission>) -> Permission {
    match rules.len() {
        0 => not(rule(Rule::Any(true))),
        1 => rules.remove(0),
        _ => rule(Rule::OrRules(Set { rules })),
    }
}

fn not(permission: Permission) -> Permission {
    rule(Rule::NotRule(Box::new(permission)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use prost::Message;

    fn policies(json: &str) -> HashMap<String, Policy> {
        let filter: RbacFilter = serde_json::from_str(json).unwrap();
        let any = filter.typed_config(&Path::root()).unwrap();
        let rbac = Rbac::decode(any.value.as_slice()).unwrap();
        let rules = rbac.rules.unwrap();
        assert_eq!(rules.action, Action::Deny as i32);
        rules.policies
    }

    #[test]
    fn a_deny_rule_is_shadowed_by_earlier_allow_rules() {
        let p = policies(
            r#"{"rules":[{"action":"allow","match":{"headers":[{"name":"x-admin","present":true}]}},
                {"action":"deny","match":{"path":{"type":"prefix","value":"/admin"}}}]}"#,
        );
        assert_eq!(p.len(), 1);
        let Some(Rule::AndRules(set)) = &p["rule-001"].permissions[0].rule else {
            panic!("and expected")
        };
        assert!(matches!(set.rules[0].rule, Some(Rule::UrlPath(_))));
        assert!(matches!(set.rules[1].rule, Some(Rule::NotRule(_))));
    }

    #[test]
    fn a_deny_default_denies_what_no_allow_rule_matches() {
        let p = policies(
            r#"{"defaultAction":"deny","rules":[{"action":"allow","match":{"methods":["GET"]}}]}"#,
        );
        assert_eq!(p.len(), 1);
        assert!(matches!(
            p["default"].permissions[0].rule,
            Some(Rule::NotRule(_))
        ));
    }

    #[test]
    fn only_allow_rules_with_an_allow_default_deny_nothing() {
        assert!(policies(r#"{"rules":[{"action":"allow","match":{}}]}"#).is_empty());
    }
}
