//! What a matched route does: forward to one cluster (with rewrites, timeout, retries and a
//! mirror), split across weighted clusters, answer with a redirect, or answer directly.

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::{DataSource, RuntimeFractionalPercent};
use envoy_types::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode,
};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HostRewriteSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction as EnvoyDirectResponseAction, RedirectAction as EnvoyRedirectAction,
    RetryPolicy as EnvoyRetryPolicy, RouteAction as EnvoyRouteAction,
    WeightedCluster as EnvoyWeightedCluster, retry_policy::RetryBackOff,
};
use envoy_types::pb::envoy::extensions::path::rewrite::uri_template::v3::UriTemplateRewriteConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use flowplane_domain::error::Path;
use flowplane_domain::route_config::{
    DirectResponseAction, ForwardAction, PathMatch, PathMatchType, RedirectAction, RequestMirror,
    RetryPolicy, RouteAction, WeightedAction,
};

use crate::TranslateError;
use crate::envoy_core::{milliseconds, seconds, typed_extension, u32_value};
use crate::route::route_match::regex;

const URI_TEMPLATE_REWRITER: &str = "envoy.path.rewrite.uri_template.uri_template_rewriter";
const DEFAULT_RETRY_ON: &str = "5xx";

pub(super) fn translate(
    action: &RouteAction,
    path_match: &PathMatch,
    path: &Path,
) -> Result<Action, TranslateError> {
    match action {
        RouteAction::Forward(forward_action) => {
            forward(forward_action, path_match, path).map(Action::Route)
        }
        RouteAction::Weighted(weighted_action) => {
            weighted(weighted_action, path).map(Action::Route)
        }
        RouteAction::Redirect(redirect_action) => {
            redirect(redirect_action, path).map(Action::Redirect)
        }
        RouteAction::DirectResponse(direct) => {
            direct_response(direct, path).map(Action::DirectResponse)
        }
    }
}

/// A timeout of 0 is passed through: Envoy reads it as "no timeout".
fn forward(
    action: &ForwardAction,
    path_match: &PathMatch,
    path: &Path,
) -> Result<EnvoyRouteAction, TranslateError> {
    check_rewrites(action, path_match, path)?;
    Ok(EnvoyRouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(action.cluster.clone())),
        timeout: action.timeout_seconds.map(seconds),
        prefix_rewrite: action.prefix_rewrite.clone().unwrap_or_default(),
        path_rewrite_policy: action.template_rewrite.as_ref().map(|template| {
            typed_extension(
                URI_TEMPLATE_REWRITER,
                &UriTemplateRewriteConfig {
                    path_template_rewrite: template.clone(),
                },
            )
        }),
        regex_rewrite: action
            .regex_rewrite
            .as_ref()
            .map(|rewrite| RegexMatchAndSubstitute {
                pattern: Some(regex(rewrite.pattern.clone())),
                substitution: rewrite.substitution.clone(),
            }),
        host_rewrite_specifier: action
            .host_rewrite
            .clone()
            .map(HostRewriteSpecifier::HostRewriteLiteral),
        retry_policy: action.retry_policy.as_ref().map(retry_policy),
        request_mirror_policies: match &action.request_mirror {
            Some(mirror) => vec![mirror_policy(mirror, &path.field("requestMirror"))?],
            None => Vec::new(),
        },
        ..Default::default()
    })
}

/// Without `runtime_fraction` Envoy mirrors every request, so 100% is left unset.
fn mirror_policy(
    mirror: &RequestMirror,
    path: &Path,
) -> Result<RequestMirrorPolicy, TranslateError> {
    let runtime_fraction = match mirror.percent {
        None | Some(100) => None,
        Some(percent) if percent < 100 => Some(RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: percent,
                denominator: DenominatorType::Hundred as i32,
            }),
            runtime_key: String::new(),
        }),
        Some(_) => {
            let message = "must be between 0 and 100";
            return Err(TranslateError::at(&path.field("percent"), message));
        }
    };
    Ok(RequestMirrorPolicy {
        cluster: mirror.cluster.clone(),
        runtime_fraction,
        ..Default::default()
    })
}

fn direct_response(
    action: &DirectResponseAction,
    path: &Path,
) -> Result<EnvoyDirectResponseAction, TranslateError> {
    if !(200..=599).contains(&action.status) {
        let message = "must be between 200 and 599";
        return Err(TranslateError::at(&path.field("status"), message));
    }
    Ok(EnvoyDirectResponseAction {
        status: u32::from(action.status),
        body: action.body.as_ref().map(|body| DataSource {
            specifier: Some(Specifier::InlineString(body.clone())),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Envoy's rules for combining path rewrites with path matches: a prefix rewrite cannot follow
/// a template match, a template rewrite needs a template match, and the rewrite may only use
/// variables the match captures.
fn check_rewrites(
    action: &ForwardAction,
    path_match: &PathMatch,
    path: &Path,
) -> Result<(), TranslateError> {
    let is_template = path_match.kind == PathMatchType::Template;
    if action.prefix_rewrite.is_some() && is_template {
        let message = "cannot follow a template path match; use templateRewrite";
        return Err(TranslateError::at(&path.field("prefixRewrite"), message));
    }
    let Some(rewrite) = &action.template_rewrite else {
        return Ok(());
    };
    let at = path.field("templateRewrite");
    if action.prefix_rewrite.is_some() {
        return Err(TranslateError::at(
            &at,
            "cannot be combined with prefixRewrite",
        ));
    }
    if !is_template {
        return Err(TranslateError::at(&at, "requires a template path match"));
    }
    check_rewrite_variables(&path_match.value, rewrite).map_err(|m| TranslateError::at(&at, m))
}

fn check_rewrite_variables(template: &str, rewrite: &str) -> Result<(), String> {
    if !rewrite.starts_with('/') {
        return Err("must start with '/'".into());
    }
    let captured: Vec<&str> = braced(template)?
        .into_iter()
        .map(|v| v.split_once('=').map_or(v, |(name, _)| name))
        .collect();
    for variable in braced(rewrite)? {
        if variable.contains('=') {
            return Err(format!(
                "'{{{variable}}}': rewrite variables take no pattern"
            ));
        }
        if !captured.contains(&variable) {
            return Err(format!(
                "variable '{variable}' is not captured by the path template"
            ));
        }
    }
    Ok(())
}

/// The contents of each `{...}` in a URI template (`{path=**}` gives `path=**`).
fn braced(template: &str) -> Result<Vec<&str>, String> {
    let mut contents = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("has a '{' without a matching '}'".into());
        };
        contents.push(&after[..close]);
        rest = &after[close + 1..];
    }
    Ok(contents)
}

fn retry_policy(policy: &RetryPolicy) -> EnvoyRetryPolicy {
    let retry_on = if policy.retry_on.is_empty() {
        DEFAULT_RETRY_ON.to_string()
    } else {
        policy.retry_on.join(",")
    };
    EnvoyRetryPolicy {
        retry_on,
        num_retries: Some(u32_value(policy.num_retries)),
        per_try_timeout: policy.per_try_timeout_seconds.map(seconds),
        retriable_status_codes: policy
            .retriable_status_codes
            .iter()
            .map(|&c| u32::from(c))
            .collect(),
        retry_back_off: policy.backoff.as_ref().map(|b| RetryBackOff {
            base_interval: Some(milliseconds(b.base_interval_ms)),
            max_interval: b.max_interval_ms.map(milliseconds),
        }),
        ..Default::default()
    }
}

/// `total_weight` is deprecated: Envoy sums the weights itself, so they are sent as given.
fn weighted(action: &WeightedAction, path: &Path) -> Result<EnvoyRouteAction, TranslateError> {
    let at = path.field("clusters");
    if action.clusters.is_empty() {
        return Err(TranslateError::at(&at, "at least one cluster is required"));
    }
    let total: u64 = action.clusters.iter().map(|c| u64::from(c.weight)).sum();
    if total == 0 || total > u64::from(u32::MAX) {
        let message = format!("weights must add up to between 1 and {}", u32::MAX);
        return Err(TranslateError::at(&at, message));
    }
    let clusters = action
        .clusters
        .iter()
        .map(|c| ClusterWeight {
            name: c.name.clone(),
            weight: Some(u32_value(c.weight)),
            ..Default::default()
        })
        .collect();
    Ok(EnvoyRouteAction {
        cluster_specifier: Some(ClusterSpecifier::WeightedClusters(EnvoyWeightedCluster {
            clusters,
            ..Default::default()
        })),
        timeout: action.timeout_seconds.map(seconds),
        ..Default::default()
    })
}

fn redirect(action: &RedirectAction, path: &Path) -> Result<EnvoyRedirectAction, TranslateError> {
    if action.host_redirect.is_none() && action.path_redirect.is_none() {
        // Envoy would accept it and redirect every request to itself.
        let message = "a redirect needs hostRedirect or pathRedirect";
        return Err(TranslateError::at(path, message));
    }
    let code = response_code(action.response_code.unwrap_or(301)).ok_or_else(|| {
        TranslateError::at(
            &path.field("responseCode"),
            "must be 301, 302, 303, 307 or 308",
        )
    })?;
    Ok(EnvoyRedirectAction {
        host_redirect: action.host_redirect.clone().unwrap_or_default(),
        path_rewrite_specifier: action
            .path_redirect
            .clone()
            .map(PathRewriteSpecifier::PathRedirect),
        response_code: code as i32,
        ..Default::default()
    })
}

fn response_code(code: u16) -> Option<RedirectResponseCode> {
    match code {
        301 => Some(RedirectResponseCode::MovedPermanently),
        302 => Some(RedirectResponseCode::Found),
        303 => Some(RedirectResponseCode::SeeOther),
        307 => Some(RedirectResponseCode::TemporaryRedirect),
        308 => Some(RedirectResponseCode::PermanentRedirect),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use prost::Message;

    fn action(json: &str) -> RouteAction {
        serde_json::from_str(json).expect("test action is valid")
    }

    fn prefix() -> PathMatch {
        PathMatch {
            kind: PathMatchType::Prefix,
            value: "/".into(),
        }
    }

    fn template(value: &str) -> PathMatch {
        PathMatch {
            kind: PathMatchType::Template,
            value: value.into(),
        }
    }

    fn translated(json: &str, path_match: &PathMatch) -> Result<Action, TranslateError> {
        translate(&action(json), path_match, &Path::root().field("action"))
    }

    fn route_action(json: &str, path_match: &PathMatch) -> EnvoyRouteAction {
        match translated(json, path_match).unwrap() {
            Action::Route(route) => route,
            other => panic!("route action expected, got {other:?}"),
        }
    }

    fn redirect_action(json: &str) -> EnvoyRedirectAction {
        match translated(json, &prefix()).unwrap() {
            Action::Redirect(redirect) => redirect,
            other => panic!("redirect expected, got {other:?}"),
        }
    }

    #[test]
    fn forward_sets_cluster_timeout_and_rewrites() {
        let route = route_action(
            r#"{"type":"forward","cluster":"backend","timeoutSeconds":30,
                "prefixRewrite":"/v2/","hostRewrite":"internal.example"}"#,
            &prefix(),
        );
        assert_eq!(
            route.cluster_specifier,
            Some(ClusterSpecifier::Cluster("backend".into()))
        );
        assert_eq!(route.timeout, Some(seconds(30)));
        assert_eq!(route.prefix_rewrite, "/v2/");
        assert_eq!(
            route.host_rewrite_specifier,
            Some(HostRewriteSpecifier::HostRewriteLiteral(
                "internal.example".into()
            ))
        );
        assert!(route.path_rewrite_policy.is_none());
        assert!(route.retry_policy.is_none());
    }

    #[test]
    fn forward_without_options_leaves_envoy_defaults() {
        let route = route_action(r#"{"type":"forward","cluster":"backend"}"#, &prefix());
        assert_eq!(route.timeout, None);
        assert_eq!(route.prefix_rewrite, "");
        assert_eq!(route.host_rewrite_specifier, None);
    }

    #[test]
    fn template_rewrite_uses_the_uri_template_rewriter() {
        let route = route_action(
            r#"{"type":"forward","cluster":"c","templateRewrite":"/v2/{path}/owner/{id}"}"#,
            &template("/users/{id}/files/{path=**}"),
        );
        let policy = route.path_rewrite_policy.unwrap();
        assert_eq!(
            policy.name,
            "envoy.path.rewrite.uri_template.uri_template_rewriter"
        );
        let any = policy.typed_config.unwrap();
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.path.rewrite.uri_template.v3.UriTemplateRewriteConfig"
        );
        let config = UriTemplateRewriteConfig::decode(any.value.as_slice()).unwrap();
        assert_eq!(config.path_template_rewrite, "/v2/{path}/owner/{id}");
    }

    #[test]
    fn retry_back_off_and_status_codes_reach_envoy() {
        let route = route_action(
            r#"{"type":"forward","cluster":"c","retryPolicy":
                {"retryOn":["retriable-status-codes"],"retriableStatusCodes":[409,503],
                 "backoff":{"baseIntervalMs":50,"maxIntervalMs":800}}}"#,
            &prefix(),
        );
        let retry = route.retry_policy.unwrap();
        assert_eq!(retry.retriable_status_codes, [409, 503]);
        let backoff = retry.retry_back_off.unwrap();
        assert_eq!(backoff.base_interval, Some(milliseconds(50)));
        assert_eq!(backoff.max_interval, Some(milliseconds(800)));
    }

    #[test]
    fn retry_policy_joins_conditions_and_defaults_to_5xx() {
        let route = route_action(
            r#"{"type":"forward","cluster":"c","retryPolicy":
                {"retryOn":["5xx","reset","connect-failure"],"numRetries":3,"perTryTimeoutSeconds":2}}"#,
            &prefix(),
        );
        let retry = route.retry_policy.unwrap();
        assert_eq!(retry.retry_on, "5xx,reset,connect-failure");
        assert_eq!(retry.num_retries, Some(u32_value(3)));
        assert_eq!(retry.per_try_timeout, Some(seconds(2)));

        let route = route_action(
            r#"{"type":"forward","cluster":"c","retryPolicy":{}}"#,
            &prefix(),
        );
        let retry = route.retry_policy.unwrap();
        assert_eq!(retry.retry_on, "5xx");
        assert_eq!(retry.num_retries, Some(u32_value(1)));
        assert_eq!(retry.per_try_timeout, None);
    }

    #[test]
    fn weighted_sends_weights_as_given_without_a_total() {
        let route = route_action(
            r#"{"type":"weighted","timeoutSeconds":10,
                "clusters":[{"name":"blue","weight":80},{"name":"green","weight":20}]}"#,
            &prefix(),
        );
        assert_eq!(route.timeout, Some(seconds(10)));
        let Some(ClusterSpecifier::WeightedClusters(weighted)) = route.cluster_specifier else {
            panic!("weighted clusters expected")
        };
        let weights: Vec<_> = weighted
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight))
            .collect();
        assert_eq!(
            weights,
            [
                ("blue", Some(u32_value(80))),
                ("green", Some(u32_value(20)))
            ]
        );
        #[allow(deprecated)]
        let total = weighted.total_weight;
        assert_eq!(total, None);
    }

    #[test]
    fn redirect_codes_map_to_envoy_enums() {
        let cases = [
            (None, RedirectResponseCode::MovedPermanently),
            (Some(301), RedirectResponseCode::MovedPermanently),
            (Some(302), RedirectResponseCode::Found),
            (Some(303), RedirectResponseCode::SeeOther),
            (Some(307), RedirectResponseCode::TemporaryRedirect),
            (Some(308), RedirectResponseCode::PermanentRedirect),
        ];
        for (code, expected) in cases {
            let code_field = code
                .map(|c| format!(r#","responseCode":{c}"#))
                .unwrap_or_default();
            let json = format!(r#"{{"type":"redirect","hostRedirect":"new.example"{code_field}}}"#);
            let redirect = redirect_action(&json);
            assert_eq!(redirect.response_code, expected as i32, "{json}");
            assert_eq!(redirect.host_redirect, "new.example");
            assert_eq!(redirect.path_rewrite_specifier, None);
        }
    }

    #[test]
    fn redirect_path_is_a_path_redirect() {
        let redirect = redirect_action(r#"{"type":"redirect","pathRedirect":"/moved"}"#);
        assert_eq!(redirect.host_redirect, "");
        assert_eq!(
            redirect.path_rewrite_specifier,
            Some(PathRewriteSpecifier::PathRedirect("/moved".into()))
        );
    }

    #[test]
    fn inexpressible_actions_are_reported_at_their_rest_path() {
        let t = template("/users/{id}");
        let cases: [(&str, &PathMatch, &str); 10] = [
            (
                r#"{"type":"forward","cluster":"c","templateRewrite":"/u/{id}"}"#,
                &prefix(),
                "/action/templateRewrite",
            ),
            (
                r#"{"type":"forward","cluster":"c","templateRewrite":"/u/{name}"}"#,
                &t,
                "/action/templateRewrite",
            ),
            (
                r#"{"type":"forward","cluster":"c","templateRewrite":"/u/{id=*}"}"#,
                &t,
                "/action/templateRewrite",
            ),
            (
                r#"{"type":"forward","cluster":"c","templateRewrite":"u/{id}"}"#,
                &t,
                "/action/templateRewrite",
            ),
            (
                r#"{"type":"forward","cluster":"c","templateRewrite":"/u/{id"}"#,
                &t,
                "/action/templateRewrite",
            ),
            (
                r#"{"type":"forward","cluster":"c","prefixRewrite":"/u"}"#,
                &t,
                "/action/prefixRewrite",
            ),
            (
                r#"{"type":"weighted","clusters":[]}"#,
                &prefix(),
                "/action/clusters",
            ),
            (
                r#"{"type":"weighted","clusters":[{"name":"a","weight":0}]}"#,
                &prefix(),
                "/action/clusters",
            ),
            (r#"{"type":"redirect"}"#, &prefix(), "/action"),
            (
                r#"{"type":"redirect","hostRedirect":"x","responseCode":304}"#,
                &prefix(),
                "/action/responseCode",
            ),
        ];
        for (json, path_match, field) in cases {
            let error = translated(json, path_match).unwrap_err();
            assert_eq!(error.field, field, "{json}: {error}");
        }
    }

    #[test]
    fn weights_that_overflow_envoys_total_are_rejected() {
        let json = format!(
            r#"{{"type":"weighted","clusters":[{{"name":"a","weight":{max}}},{{"name":"b","weight":1}}]}}"#,
            max = u32::MAX
        );
        assert_eq!(
            translated(&json, &prefix()).unwrap_err().field,
            "/action/clusters"
        );
    }

    #[test]
    fn a_direct_response_carries_its_status_and_inline_body() {
        let Action::DirectResponse(d) = translated(
            r#"{"type":"directResponse","status":418,"body":"teapot"}"#,
            &prefix(),
        )
        .unwrap() else {
            panic!("direct response expected")
        };
        assert_eq!(d.status, 418);
        assert_eq!(
            d.body.unwrap().specifier,
            Some(Specifier::InlineString("teapot".into()))
        );
        let error = translated(r#"{"type":"directResponse","status":100}"#, &prefix()).unwrap_err();
        assert_eq!(error.field, "/action/status");
    }

    #[test]
    fn a_mirror_sends_a_share_of_requests_and_all_when_unset() {
        let mirror = |json: &str| {
            let Action::Route(route) = translated(json, &prefix()).unwrap() else {
                panic!("route expected")
            };
            route.request_mirror_policies
        };
        let all = mirror(r#"{"type":"forward","cluster":"c","requestMirror":{"cluster":"m"}}"#);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].cluster, "m");
        assert_eq!(all[0].runtime_fraction, None);
        let some = mirror(
            r#"{"type":"forward","cluster":"c","requestMirror":{"cluster":"m","percent":25}}"#,
        );
        let share = some[0]
            .runtime_fraction
            .clone()
            .unwrap()
            .default_value
            .unwrap();
        assert_eq!(share.numerator, 25);
        assert_eq!(share.denominator, DenominatorType::Hundred as i32);
        assert!(mirror(r#"{"type":"forward","cluster":"c"}"#).is_empty());
        let error = translated(
            r#"{"type":"forward","cluster":"c","requestMirror":{"cluster":"m","percent":101}}"#,
            &prefix(),
        )
        .unwrap_err();
        assert_eq!(error.field, "/action/requestMirror/percent");
    }
}
