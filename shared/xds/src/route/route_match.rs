//! What a route matches: the path (prefix, exact, RE2 regex or URI template), headers, query
//! parameters and methods. Every condition must hold for the route to match.

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RouteMatch as EnvoyRouteMatch,
};
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use flowplane_domain::error::Path;
use flowplane_domain::route_config::{KeyValueMatch, PathMatch, PathMatchType, RouteMatch};

use crate::TranslateError;
use crate::envoy_core::typed_extension;

const URI_TEMPLATE_MATCHER: &str = "envoy.path.match.uri_template.uri_template_matcher";

/// Envoy has no method field on a route; methods are matched on the `:method` pseudo-header.
const METHOD_HEADER: &str = ":method";

pub(super) fn translate(m: &RouteMatch, path: &Path) -> Result<EnvoyRouteMatch, TranslateError> {
    let mut headers = indexed(&m.headers, &path.field("headers"), header_matcher)?;
    if let Some(methods) = method_matcher(&m.methods, &path.field("methods"))? {
        headers.push(methods);
    }
    let query_parameters = indexed(
        &m.query_parameters,
        &path.field("queryParameters"),
        query_parameter_matcher,
    )?;
    Ok(EnvoyRouteMatch {
        path_specifier: Some(path_specifier(&m.path)),
        headers,
        query_parameters,
        ..Default::default()
    })
}

fn indexed<T, U>(
    items: &[T],
    path: &Path,
    translate: fn(&T, &Path) -> Result<U, TranslateError>,
) -> Result<Vec<U>, TranslateError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| translate(item, &path.index(i)))
        .collect()
}

fn path_specifier(path: &PathMatch) -> PathSpecifier {
    let value = path.value.clone();
    match path.kind {
        PathMatchType::Exact => PathSpecifier::Path(value),
        PathMatchType::Prefix => PathSpecifier::Prefix(value),
        PathMatchType::Regex => PathSpecifier::SafeRegex(regex(value)),
        PathMatchType::Template => PathSpecifier::PathMatchPolicy(typed_extension(
            URI_TEMPLATE_MATCHER,
            &UriTemplateMatchConfig {
                path_template: value,
            },
        )),
    }
}

/// The engine is left unset: the `google_re2` field is deprecated and RE2 is Envoy's default
/// engine, so Envoy matches with RE2 (whole-string) either way.
pub(crate) fn regex(pattern: String) -> RegexMatcher {
    RegexMatcher {
        regex: pattern,
        engine_type: None,
    }
}

/// One `KeyValueMatch` condition, before it becomes a header or query parameter matcher.
enum Condition {
    Value(StringMatcher),
    Present(bool),
}

fn condition(kv: &KeyValueMatch, path: &Path) -> Result<Condition, TranslateError> {
    if kv.name.is_empty() {
        return Err(TranslateError::at(&path.field("name"), "must not be empty"));
    }
    let pattern = |p| Condition::Value(string_matcher(p));
    match (&kv.exact, &kv.prefix, &kv.regex, kv.present) {
        (Some(exact), None, None, None) => Ok(pattern(MatchPattern::Exact(exact.clone()))),
        (None, Some(prefix), None, None) => Ok(pattern(MatchPattern::Prefix(prefix.clone()))),
        (None, None, Some(re), None) => Ok(pattern(MatchPattern::SafeRegex(regex(re.clone())))),
        (None, None, None, Some(present)) => Ok(Condition::Present(present)),
        _ => Err(TranslateError::at(
            path,
            "set exactly one of exact, prefix, regex or present",
        )),
    }
}

pub(crate) fn string_matcher(pattern: MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }
}

/// `present: false` on a header matches requests without that header.
pub(crate) fn header_matcher(
    kv: &KeyValueMatch,
    path: &Path,
) -> Result<HeaderMatcher, TranslateError> {
    let specifier = match condition(kv, path)? {
        Condition::Value(matcher) => HeaderMatchSpecifier::StringMatch(matcher),
        Condition::Present(present) => HeaderMatchSpecifier::PresentMatch(present),
    };
    Ok(HeaderMatcher {
        name: kv.name.clone(),
        header_match_specifier: Some(specifier),
        ..Default::default()
    })
}

/// Envoy's query parameter matcher cannot express absence: with `present_match: false` it
/// still matches only when the parameter is present, the opposite of what was asked.
fn query_parameter_matcher(
    kv: &KeyValueMatch,
    path: &Path,
) -> Result<QueryParameterMatcher, TranslateError> {
    let specifier = match condition(kv, path)? {
        Condition::Value(matcher) => QueryParameterMatchSpecifier::StringMatch(matcher),
        Condition::Present(true) => QueryParameterMatchSpecifier::PresentMatch(true),
        Condition::Present(false) => {
            return Err(TranslateError::at(
                &path.field("present"),
                "Envoy cannot match a missing query parameter; only present: true is supported",
            ));
        }
    };
    Ok(QueryParameterMatcher {
        name: kv.name.clone(),
        query_parameter_match_specifier: Some(specifier),
    })
}

/// One method is an exact match; several become an RE2 alternation (RE2 matches the whole
/// value, so `GET|PUT` cannot match `GETX`). Methods are plain tokens, checked here so none
/// can smuggle regex syntax into the alternation.
pub(crate) fn method_matcher(
    methods: &[String],
    path: &Path,
) -> Result<Option<HeaderMatcher>, TranslateError> {
    let mut distinct: Vec<&str> = Vec::new();
    for (i, method) in methods.iter().enumerate() {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(TranslateError::at(
                &path.index(i),
                "must be an upper-case HTTP method such as GET",
            ));
        }
        if !distinct.contains(&method.as_str()) {
            distinct.push(method);
        }
    }
    let pattern = match distinct.as_slice() {
        [] => return Ok(None),
        [one] => MatchPattern::Exact((*one).to_string()),
        several => MatchPattern::SafeRegex(regex(several.join("|"))),
    };
    Ok(Some(HeaderMatcher {
        name: METHOD_HEADER.to_string(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_matcher(pattern))),
        ..Default::default()
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use prost::Message;

    fn route_match(json: &str) -> RouteMatch {
        serde_json::from_str(json).expect("test match is valid")
    }

    fn translated(json: &str) -> EnvoyRouteMatch {
        translate(&route_match(json), &Path::root().field("match")).unwrap()
    }

    fn specifier(m: &HeaderMatcher) -> &HeaderMatchSpecifier {
        m.header_match_specifier.as_ref().unwrap()
    }

    fn exact(value: &str) -> HeaderMatchSpecifier {
        HeaderMatchSpecifier::StringMatch(string_matcher(MatchPattern::Exact(value.into())))
    }

    #[test]
    fn path_kinds_map_to_their_envoy_specifiers() {
        let m = translated(r#"{"path":{"type":"prefix","value":"/api"}}"#);
        assert_eq!(m.path_specifier, Some(PathSpecifier::Prefix("/api".into())));
        let m = translated(r#"{"path":{"type":"exact","value":"/healthz"}}"#);
        assert_eq!(
            m.path_specifier,
            Some(PathSpecifier::Path("/healthz".into()))
        );
        let m = translated(r#"{"path":{"type":"regex","value":"/v[0-9]+/.*"}}"#);
        let Some(PathSpecifier::SafeRegex(re)) = m.path_specifier else {
            panic!("safe_regex expected")
        };
        assert_eq!(re.regex, "/v[0-9]+/.*");
    }

    #[test]
    fn templates_use_the_uri_template_matcher_extension() {
        let m = translated(r#"{"path":{"type":"template","value":"/users/{id}/files/{path=**}"}}"#);
        let Some(PathSpecifier::PathMatchPolicy(policy)) = m.path_specifier else {
            panic!("path_match_policy expected")
        };
        assert_eq!(
            policy.name,
            "envoy.path.match.uri_template.uri_template_matcher"
        );
        let any = policy.typed_config.unwrap();
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"
        );
        let config = UriTemplateMatchConfig::decode(any.value.as_slice()).unwrap();
        assert_eq!(config.path_template, "/users/{id}/files/{path=**}");
    }

    #[test]
    fn header_conditions_map_to_string_and_present_matches() {
        let m = translated(
            r#"{"path":{"type":"prefix","value":"/"},"headers":[
                {"name":"x-tenant","exact":"acme"},
                {"name":"user-agent","prefix":"curl/"},
                {"name":"x-version","regex":"v[12]"},
                {"name":"x-trace","present":true},
                {"name":"x-debug","present":false}]}"#,
        );
        assert_eq!(m.headers.len(), 5);
        assert_eq!(m.headers[0].name, "x-tenant");
        assert_eq!(specifier(&m.headers[0]), &exact("acme"));
        assert_eq!(
            specifier(&m.headers[1]),
            &HeaderMatchSpecifier::StringMatch(string_matcher(MatchPattern::Prefix(
                "curl/".into()
            )))
        );
        assert_eq!(
            specifier(&m.headers[2]),
            &HeaderMatchSpecifier::StringMatch(string_matcher(MatchPattern::SafeRegex(regex(
                "v[12]".into()
            ))))
        );
        assert_eq!(
            specifier(&m.headers[3]),
            &HeaderMatchSpecifier::PresentMatch(true)
        );
        assert_eq!(
            specifier(&m.headers[4]),
            &HeaderMatchSpecifier::PresentMatch(false)
        );
        assert!(m.headers.iter().all(|h| !h.invert_match));
    }

    #[test]
    fn query_parameters_map_to_string_and_present_matches() {
        let m = translated(
            r#"{"path":{"type":"prefix","value":"/"},"queryParameters":[
                {"name":"mode","exact":"full"},{"name":"page","regex":"[0-9]+"},
                {"name":"lang","prefix":"en"},{"name":"preview","present":true}]}"#,
        );
        let specs: Vec<_> = m
            .query_parameters
            .iter()
            .map(|q| {
                (
                    q.name.as_str(),
                    q.query_parameter_match_specifier.clone().unwrap(),
                )
            })
            .collect();
        let string = |p| QueryParameterMatchSpecifier::StringMatch(string_matcher(p));
        assert_eq!(
            specs,
            vec![
                ("mode", string(MatchPattern::Exact("full".into()))),
                (
                    "page",
                    string(MatchPattern::SafeRegex(regex("[0-9]+".into())))
                ),
                ("lang", string(MatchPattern::Prefix("en".into()))),
                ("preview", QueryParameterMatchSpecifier::PresentMatch(true)),
            ]
        );
    }

    #[test]
    fn one_method_is_an_exact_method_header_match() {
        let m = translated(r#"{"path":{"type":"prefix","value":"/"},"methods":["GET"]}"#);
        assert_eq!(m.headers.len(), 1);
        assert_eq!(m.headers[0].name, ":method");
        assert_eq!(specifier(&m.headers[0]), &exact("GET"));
    }

    #[test]
    fn several_methods_are_one_regex_alternation_after_the_header_matchers() {
        let m = translated(
            r#"{"path":{"type":"prefix","value":"/"},"headers":[{"name":"x-a","present":true}],
                "methods":["GET","PUT","GET","DELETE"]}"#,
        );
        assert_eq!(m.headers.len(), 2);
        assert_eq!(m.headers[0].name, "x-a");
        assert_eq!(m.headers[1].name, ":method");
        assert_eq!(
            specifier(&m.headers[1]),
            &HeaderMatchSpecifier::StringMatch(string_matcher(MatchPattern::SafeRegex(regex(
                "GET|PUT|DELETE".into()
            ))))
        );
    }

    #[test]
    fn no_methods_means_no_method_matcher() {
        assert!(
            translated(r#"{"path":{"type":"prefix","value":"/"}}"#)
                .headers
                .is_empty()
        );
    }

    #[test]
    fn inexpressible_conditions_are_reported_at_their_rest_path() {
        let cases = [
            (
                r#"{"path":{"type":"prefix","value":"/"},"queryParameters":[{"name":"a","present":false}]}"#,
                "/match/queryParameters/0/present",
            ),
            (
                r#"{"path":{"type":"prefix","value":"/"},"headers":[{"name":"a"}]}"#,
                "/match/headers/0",
            ),
            (
                r#"{"path":{"type":"prefix","value":"/"},"headers":[{"name":"a","exact":"x","prefix":"y"}]}"#,
                "/match/headers/0",
            ),
            (
                r#"{"path":{"type":"prefix","value":"/"},"headers":[{"name":"","exact":"x"}]}"#,
                "/match/headers/0/name",
            ),
            (
                r#"{"path":{"type":"prefix","value":"/"},"queryParameters":[{"name":"q"}]}"#,
                "/match/queryParameters/0",
            ),
            (
                r#"{"path":{"type":"prefix","value":"/"},"methods":["GET","GET|.*"]}"#,
                "/match/methods/1",
            ),
        ];
        for (json, field) in cases {
            let error = translate(&route_match(json), &Path::root().field("match")).unwrap_err();
            assert_eq!(error.field, field, "{json}: {error}");
        }
    }
}
