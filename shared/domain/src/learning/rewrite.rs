//! Learned paths as the upstream sees them. A session learns the paths requests arrive with at
//! the listener; when the route that takes them rewrites the path (`/httpbin/get` →
//! `/get`), a document meant to be imported in front of that upstream needs the rewritten
//! paths, or the import would route `/httpbin/get` to an upstream that only knows `/get`.

use super::path_template::parameter_in;
use crate::route_config::{PathMatch, PathMatchType, Route, RouteAction, RouteConfigSpec};

/// The path the upstream receives for a request to the learned `template` with `method`: the
/// first route (virtual hosts and routes in order) whose path and methods take it, with its
/// `prefixRewrite` or `regexRewrite` applied. `None` when no route takes it, or its rewrite
/// cannot be applied to a template (`templateRewrite`); then the gateway path is the best
/// answer there is.
pub fn upstream_path(routes: &[RouteConfigSpec], method: &str, template: &str) -> Option<String> {
    let route = routes
        .iter()
        .flat_map(|r| &r.virtual_hosts)
        .flat_map(|v| &v.routes)
        .find(|r| takes(r, method, template))?;
    let RouteAction::Forward(forward) = &route.action else {
        return Some(template.to_string());
    };
    if let Some(prefix) = &forward.prefix_rewrite {
        let matched = &route.route_match.path.value;
        let rest = template.strip_prefix(matched.as_str()).unwrap_or(template);
        let joined = match (prefix.ends_with('/'), rest.starts_with('/')) {
            (true, true) => format!("{prefix}{}", &rest[1..]),
            (false, false) if !rest.is_empty() && prefix != "/" => format!("{prefix}/{rest}"),
            _ => format!("{prefix}{rest}"),
        };
        return Some(normalized(&joined));
    }
    if let Some(rewrite) = &forward.regex_rewrite {
        let regex = regex::Regex::new(&format!("^(?:{})$", rewrite.pattern)).ok()?;
        // Envoy writes a capture group `\1`; the regex crate `${1}`.
        let groups = regex::Regex::new(r"\\(\d+)").ok()?;
        let substitution = groups.replace_all(&rewrite.substitution, "$${${1}}");
        return Some(normalized(&regex.replace(template, substitution.as_ref())));
    }
    if forward.template_rewrite.is_some() {
        return None;
    }
    Some(template.to_string())
}

fn takes(route: &Route, method: &str, template: &str) -> bool {
    let methods = &route.route_match.methods;
    (methods.is_empty() || methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
        && path_takes(&route.route_match.path, template)
}

fn path_takes(m: &PathMatch, template: &str) -> bool {
    match m.kind {
        PathMatchType::Exact => m.value == template,
        PathMatchType::Prefix => template.starts_with(&m.value),
        PathMatchType::Regex => {
            regex::Regex::new(&format!("^(?:{})$", m.value)).is_ok_and(|r| r.is_match(template))
        }
        // Segment by segment: a route parameter takes any segment, a learned parameter only a
        // route parameter; `**` takes the rest.
        PathMatchType::Template => {
            let theirs: Vec<&str> = m.value.split('/').filter(|s| !s.is_empty()).collect();
            let ours: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
            let mut i = 0;
            for (j, segment) in theirs.iter().enumerate() {
                if segment.contains("**") {
                    return true;
                }
                let Some(learned) = ours.get(j) else {
                    return false;
                };
                let variable = segment.starts_with('{') || *segment == "*";
                if !(variable || (parameter_in(learned).is_none() && learned == segment)) {
                    return false;
                }
                i = j + 1;
            }
            i == ours.len()
        }
    }
}

/// One leading slash, no doubled ones, no trailing one (but `/` itself).
fn normalized(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    fn routes(routes: serde_json::Value) -> Vec<RouteConfigSpec> {
        vec![
            serde_json::from_value(json!({"virtualHosts": [
            {"name": "all", "domains": ["*"], "routes": routes}]}))
            .unwrap(),
        ]
    }

    #[test]
    fn a_prefix_rewrite_gives_the_upstream_path() {
        let r = routes(json!([
            {"match": {"path": {"type": "prefix", "value": "/httpbin/"}},
             "action": {"type": "forward", "cluster": "httpbin", "prefixRewrite": "/"}},
            {"match": {"path": {"type": "prefix", "value": "/v2"}},
             "action": {"type": "forward", "cluster": "api", "prefixRewrite": "/api/v2"}},
            {"match": {"path": {"type": "prefix", "value": "/"}},
             "action": {"type": "forward", "cluster": "rest"}}]));
        let up = |p: &str| upstream_path(&r, "GET", p);
        assert_eq!(up("/httpbin/get").as_deref(), Some("/get"));
        assert_eq!(
            up("/httpbin/anything/{anythingId}").as_deref(),
            Some("/anything/{anythingId}")
        );
        assert_eq!(
            up("/v2/users/{userId}").as_deref(),
            Some("/api/v2/users/{userId}")
        );
        assert_eq!(up("/other").as_deref(), Some("/other"));
    }

    #[test]
    fn routes_are_taken_in_order_by_path_and_method() {
        let r = routes(json!([
            {"match": {"path": {"type": "template", "value": "/users/{id}"}, "methods": ["DELETE"]},
             "action": {"type": "forward", "cluster": "a", "prefixRewrite": "/admin"}},
            {"match": {"path": {"type": "regex", "value": "/svc/[a-z]+/.*"}},
             "action": {"type": "forward", "cluster": "b",
                "regexRewrite": {"pattern": "/svc/([a-z]+)/(.*)", "substitution": "/\\2"}}},
            {"match": {"path": {"type": "exact", "value": "/health"}},
             "action": {"type": "directResponse", "status": 200}}]));
        assert_eq!(
            upstream_path(&r, "DELETE", "/users/{userId}").as_deref(),
            Some("/admin/users/{userId}")
        );
        assert_eq!(upstream_path(&r, "GET", "/users/{userId}"), None);
        assert_eq!(
            upstream_path(&r, "GET", "/svc/orders/items/{itemId}").as_deref(),
            Some("/items/{itemId}")
        );
        assert_eq!(
            upstream_path(&r, "GET", "/health").as_deref(),
            Some("/health")
        );
    }
}
