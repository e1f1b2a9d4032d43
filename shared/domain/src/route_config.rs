//! Route configurations: virtual hosts, the requests each route matches, and what it does.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::filters::{FilterOverrides, validate_overrides};
use crate::header_changes::{HeaderLists, HeaderToAdd};
use crate::names::check_name;
use crate::resource::Spec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteConfigSpec {
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualHost {
    pub name: String,
    /// Host/authority values this virtual host serves; `*` matches any.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    /// Headers added to requests before they are forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderToAdd>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    /// Headers added to responses before they are returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderToAdd>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
    /// Per-filter settings, keyed by the HTTP filter's name in the listener.
    #[serde(default, skip_serializing_if = "FilterOverrides::is_empty")]
    pub filter_overrides: FilterOverrides,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub route_match: RouteMatch,
    pub action: RouteAction,
    /// Headers added to requests before they are forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderToAdd>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    /// Headers added to responses before they are returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderToAdd>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
    /// Per-filter settings, keyed by the HTTP filter's name in the listener.
    #[serde(default, skip_serializing_if = "FilterOverrides::is_empty")]
    pub filter_overrides: FilterOverrides,
}

impl Route {
    /// How the route is named where it cannot be pointed at by position: in Envoy (its stats
    /// and access logs) and in reports. Its own name, else `<virtual host>#<index>`.
    pub fn label(&self, virtual_host: &str, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{virtual_host}#{index}"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    pub path: PathMatch,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<KeyValueMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_parameters: Vec<KeyValueMatch>,
    /// HTTP methods this route accepts (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathMatch {
    #[serde(rename = "type")]
    pub kind: PathMatchType,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PathMatchType {
    Exact,
    Prefix,
    /// RE2 syntax, matched against the whole path.
    Regex,
    /// Envoy URI template, e.g. `/users/{id}` or `/files/{path=**}`.
    Template,
}

/// Matches a header or query parameter by name. Set exactly one of `exact`, `prefix`,
/// `regex` or `present`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValueMatch {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RouteAction {
    /// Send the request to one cluster.
    Forward(ForwardAction),
    /// Split traffic across clusters by weight.
    Weighted(WeightedAction),
    /// Answer with a redirect.
    Redirect(RedirectAction),
    /// Answer directly with a status and an optional body; no upstream is involved.
    DirectResponse(DirectResponseAction),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectResponseAction {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Envoy keeps a direct response body in memory per route; it caps inline bodies at 4 KiB
/// unless the route configuration raises the limit, which Flowplane does not.
pub const MAX_DIRECT_RESPONSE_BODY: usize = 4096;

/// A copy of each request (or a percentage of them) sent to another cluster; the mirror's
/// responses are discarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestMirror {
    pub cluster: String,
    /// Share of requests mirrored, 0-100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForwardAction {
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_rewrite: Option<String>,
    /// Rewrites the path with a regular expression (RE2 syntax, matched against the whole
    /// path; `\1` in `substitution` inserts a capture group). Not after a template match,
    /// where `templateRewrite` does the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex_rewrite: Option<RegexRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    pub pattern: String,
    pub substitution: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedAction {
    pub clusters: Vec<WeightedCluster>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_redirect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_redirect: Option<String>,
    /// 301, 302, 303, 307 or 308 (default 301).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_code: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Envoy retry conditions, e.g. `5xx`, `connect-failure`, `reset` (default `5xx`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_on: Vec<String>,
    #[serde(default = "default_retries")]
    pub num_retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout_seconds: Option<u32>,
    /// Upstream statuses worth another try; `retriable-status-codes` in `retryOn` uses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u16>,
    /// How long to wait between tries (Envoy's default: 25 ms, growing to 250 ms, jittered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<RetryBackoff>,
}

/// Exponential back-off between retries, with jitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBackoff {
    pub base_interval_ms: u32,
    /// The longest wait (default ten times the base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval_ms: Option<u32>,
}

fn default_retries() -> u32 {
    1
}

const RETRY_ON: [&str; 11] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
];

pub(crate) const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

impl RouteConfigSpec {
    /// Every cluster name the routes reference, for reference checks and scoping.
    pub fn referenced_clusters(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .virtual_hosts
            .iter()
            .flat_map(|vh| vh.routes.iter())
            .flat_map(|route| match &route.action {
                RouteAction::Forward(f) => std::iter::once(f.cluster.as_str())
                    .chain(f.request_mirror.as_ref().map(|m| m.cluster.as_str()))
                    .collect(),
                RouteAction::Weighted(w) => w.clusters.iter().map(|c| c.name.as_str()).collect(),
                RouteAction::Redirect(_) | RouteAction::DirectResponse(_) => vec![],
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl Spec for RouteConfigSpec {
    fn validate(&self, errors: &mut ValidationErrors) {
        let hosts = Path::root().field("virtualHosts");
        if self.virtual_hosts.is_empty() {
            errors.add(hosts.as_str(), "at least one virtual host is required");
        }
        let mut seen_domains = std::collections::HashSet::new();
        let mut seen_names = std::collections::HashSet::new();
        for (i, vh) in self.virtual_hosts.iter().enumerate() {
            let at = hosts.index(i);
            check_name(&vh.name, &at.field("name"), errors);
            if !seen_names.insert(vh.name.as_str()) {
                errors.add(
                    at.field("name").as_str(),
                    "virtual host names must be unique",
                );
            }
            if vh.domains.is_empty() {
                errors.add(
                    at.field("domains").as_str(),
                    "at least one domain is required",
                );
            }
            for (j, domain) in vh.domains.iter().enumerate() {
                let path = at.field("domains").index(j);
                if domain.is_empty() || domain.contains(char::is_whitespace) {
                    errors.add(
                        path.as_str(),
                        "must be a host name, optionally with one leading or trailing '*'",
                    );
                } else if !seen_domains.insert(domain.as_str()) {
                    // Envoy rejects a route configuration that lists a domain twice.
                    errors.add(
                        path.as_str(),
                        format!("domain '{domain}' is already used by another virtual host"),
                    );
                }
            }
            for (j, route) in vh.routes.iter().enumerate() {
                route.validate(&at.field("routes").index(j), errors);
            }
            HeaderLists {
                request_headers_to_add: &vh.request_headers_to_add,
                request_headers_to_remove: &vh.request_headers_to_remove,
                response_headers_to_add: &vh.response_headers_to_add,
                response_headers_to_remove: &vh.response_headers_to_remove,
            }
            .validate(&at, errors);
            validate_overrides(&vh.filter_overrides, &at.field("filterOverrides"), errors);
        }
    }
}

impl Route {
    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if let Some(name) = &self.name {
            check_name(name, &at.field("name"), errors);
        }
        let m = at.field("match");
        self.route_match.path.validate(&m.field("path"), errors);
        for (i, header) in self.route_match.headers.iter().enumerate() {
            let hp = m.field("headers").index(i);
            header.validate(&hp, errors);
        }
        for (i, query) in self.route_match.query_parameters.iter().enumerate() {
            let qp = m.field("queryParameters").index(i);
            query.validate(&qp, errors);
        }
        for (i, method) in self.route_match.methods.iter().enumerate() {
            if !METHODS.contains(&method.as_str()) {
                errors.add(
                    m.field("methods").index(i).as_str(),
                    format!("must be one of {}", METHODS.join(", ")),
                );
            }
        }
        let a = at.field("action");
        match &self.action {
            RouteAction::Forward(f) => {
                check_name(&f.cluster, &a.field("cluster"), errors);
                if f.prefix_rewrite.is_some() && f.template_rewrite.is_some() {
                    errors.add(
                        a.field("templateRewrite").as_str(),
                        "cannot be combined with prefixRewrite",
                    );
                }
                if f.template_rewrite.is_some()
                    && self.route_match.path.kind != PathMatchType::Template
                {
                    errors.add(
                        a.field("templateRewrite").as_str(),
                        "requires a template path match",
                    );
                }
                if let Some(rewrite) = &f.regex_rewrite {
                    let at = a.field("regexRewrite");
                    if f.prefix_rewrite.is_some() || f.template_rewrite.is_some() {
                        errors.add(
                            at.as_str(),
                            "cannot be combined with prefixRewrite or templateRewrite",
                        );
                    } else if self.route_match.path.kind == PathMatchType::Template {
                        errors.add(
                            at.as_str(),
                            "cannot follow a template path match; use templateRewrite",
                        );
                    }
                    if let Err(e) = regex::Regex::new(&rewrite.pattern) {
                        errors.add(
                            at.field("pattern").as_str(),
                            format!("is not a valid regular expression: {e}"),
                        );
                    }
                }
                if f.prefix_rewrite
                    .as_ref()
                    .is_some_and(|p| !p.starts_with('/'))
                {
                    errors.add(a.field("prefixRewrite").as_str(), "must start with '/'");
                }
                if let Some(t) = f.timeout_seconds
                    && t > 3600
                {
                    errors.add(a.field("timeoutSeconds").as_str(), "must be at most 3600");
                }
                if let Some(retry) = &f.retry_policy {
                    retry.validate(&a.field("retryPolicy"), errors);
                }
                if let Some(mirror) = &f.request_mirror {
                    let mp = a.field("requestMirror");
                    check_name(&mirror.cluster, &mp.field("cluster"), errors);
                    if mirror.percent.is_some_and(|p| p > 100) {
                        errors.add(mp.field("percent").as_str(), "must be between 0 and 100");
                    }
                }
            }
            RouteAction::Weighted(w) => {
                if w.clusters.is_empty() {
                    errors.add(
                        a.field("clusters").as_str(),
                        "at least one cluster is required",
                    );
                }
                for (i, c) in w.clusters.iter().enumerate() {
                    check_name(&c.name, &a.field("clusters").index(i).field("name"), errors);
                }
                if w.clusters.iter().map(|c| u64::from(c.weight)).sum::<u64>() == 0 {
                    errors.add(
                        a.field("clusters").as_str(),
                        "weights must add up to more than 0",
                    );
                }
            }
            RouteAction::Redirect(r) => {
                if r.host_redirect.is_none() && r.path_redirect.is_none() {
                    errors.add(a.as_str(), "a redirect needs hostRedirect or pathRedirect");
                }
                if let Some(code) = r.response_code
                    && ![301, 302, 303, 307, 308].contains(&code)
                {
                    errors.add(
                        a.field("responseCode").as_str(),
                        "must be 301, 302, 303, 307 or 308",
                    );
                }
            }
            RouteAction::DirectResponse(d) => {
                // Envoy's DirectResponseAction accepts statuses 200-599 only.
                if !(200..=599).contains(&d.status) {
                    errors.add(a.field("status").as_str(), "must be between 200 and 599");
                }
                if d.body
                    .as_ref()
                    .is_some_and(|b| b.len() > MAX_DIRECT_RESPONSE_BODY)
                {
                    errors.add(
                        a.field("body").as_str(),
                        format!("must be at most {MAX_DIRECT_RESPONSE_BODY} bytes"),
                    );
                }
            }
        }
        HeaderLists {
            request_headers_to_add: &self.request_headers_to_add,
            request_headers_to_remove: &self.request_headers_to_remove,
            response_headers_to_add: &self.response_headers_to_add,
            response_headers_to_remove: &self.response_headers_to_remove,
        }
        .validate(at, errors);
        validate_overrides(&self.filter_overrides, &at.field("filterOverrides"), errors);
    }
}

impl PathMatch {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        let value = at.field("value");
        match self.kind {
            PathMatchType::Exact | PathMatchType::Prefix => {
                if !self.value.starts_with('/') {
                    errors.add(value.as_str(), "must start with '/'");
                }
            }
            PathMatchType::Regex => {
                if let Err(e) = regex::Regex::new(&self.value) {
                    errors.add(value.as_str(), format!("invalid regular expression: {e}"));
                }
            }
            PathMatchType::Template => {
                if let Err(message) = check_uri_template(&self.value) {
                    errors.add(value.as_str(), message);
                }
            }
        }
    }
}

impl KeyValueMatch {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if self.name.is_empty() {
            errors.add(at.field("name").as_str(), "must not be empty");
        }
        let set = [
            self.exact.is_some(),
            self.prefix.is_some(),
            self.regex.is_some(),
            self.present.is_some(),
        ]
        .into_iter()
        .filter(|b| *b)
        .count();
        if set != 1 {
            errors.add(
                at.as_str(),
                "set exactly one of exact, prefix, regex or present",
            );
        }
        if let Some(re) = &self.regex
            && let Err(e) = regex::Regex::new(re)
        {
            errors.add(
                at.field("regex").as_str(),
                format!("invalid regular expression: {e}"),
            );
        }
    }
}

impl RetryPolicy {
    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        for (i, cond) in self.retry_on.iter().enumerate() {
            if !RETRY_ON.contains(&cond.as_str()) {
                errors.add(
                    at.field("retryOn").index(i).as_str(),
                    format!("must be one of {}", RETRY_ON.join(", ")),
                );
            }
        }
        if self.num_retries > 10 {
            errors.add(at.field("numRetries").as_str(), "must be at most 10");
        }
        for (i, code) in self.retriable_status_codes.iter().enumerate() {
            if !(100..=599).contains(code) {
                errors.add(
                    at.field("retriableStatusCodes").index(i).as_str(),
                    "must be between 100 and 599",
                );
            }
        }
        let uses_codes = self.retry_on.iter().any(|c| c == "retriable-status-codes");
        if uses_codes && self.retriable_status_codes.is_empty() {
            errors.add(
                at.field("retriableStatusCodes").as_str(),
                "retryOn lists retriable-status-codes: name at least one status",
            );
        }
        if let Some(backoff) = &self.backoff {
            let at = at.field("backoff");
            if !(1..=300_000).contains(&backoff.base_interval_ms) {
                errors.add(
                    at.field("baseIntervalMs").as_str(),
                    "must be between 1 and 300000",
                );
            }
            if let Some(max) = backoff.max_interval_ms
                && (max < backoff.base_interval_ms || max > 3_000_000)
            {
                errors.add(
                    at.field("maxIntervalMs").as_str(),
                    "must be at least baseIntervalMs and at most 3000000",
                );
            }
        }
    }
}

/// Envoy's URI template rules: `/`-separated segments, each literal, `*`, `{var}` /
/// `{var=*}` / `{var=**}`, or `**`; `**` only in the last segment.
pub fn check_uri_template(template: &str) -> Result<(), String> {
    let Some(rest) = template.strip_prefix('/') else {
        return Err("must start with '/'".into());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut variables = std::collections::HashSet::new();
    for (i, segment) in segments.iter().enumerate() {
        if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, pattern) = inner.split_once('=').unwrap_or((inner, "*"));
            let name_ok = !name.is_empty()
                && name.len() <= 16
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok {
                return Err(format!(
                    "variable '{{{inner}}}' needs a name of 1-16 letters, digits or '_'"
                ));
            }
            if !variables.insert(name) {
                return Err(format!("variable '{name}' appears twice"));
            }
            match pattern {
                "*" => {}
                "**" if i + 1 == segments.len() => {}
                "**" => return Err("'**' is only allowed in the last segment".into()),
                _ => return Err(format!("variable '{name}' may only match '*' or '**'")),
            }
        } else if *segment == "*" || (*segment == "**" && i + 1 == segments.len()) {
            // Any one segment; any rest of the path.
        } else if *segment == "**" {
            return Err("'**' is only allowed in the last segment".into());
        } else if segment.contains(['{', '}']) {
            return Err(format!(
                "segment '{segment}' must be a literal or a whole {{variable}}"
            ));
        } else if segment.contains(['*', '?', '#']) {
            return Err(format!(
                "segment '{segment}' contains a character templates do not allow"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::parse_spec;

    const EXAMPLE: &str = r#"{"name":"httpbin-route","team":"my-org-default",
        "virtualHosts":[{"name":"httpbin-vhost","domains":["*"],
        "routes":[{"name":"httpbin-route",
        "match":{"path":{"type":"prefix","value":"/"}},
        "action":{"type":"forward","cluster":"httpbin-cluster","timeoutSeconds":30}}]}]}"#;

    #[test]
    fn the_api_md_example_parses() {
        let parsed = parse_spec::<RouteConfigSpec>(EXAMPLE).expect("valid");
        assert_eq!(parsed.spec.referenced_clusters(), vec!["httpbin-cluster"]);
        let json = serde_json::to_value(&parsed.spec).expect("serializes");
        assert_eq!(
            json["virtualHosts"][0]["routes"][0]["action"]["type"],
            "forward"
        );
        assert_eq!(
            json["virtualHosts"][0]["routes"][0]["match"]["path"]["type"],
            "prefix"
        );
    }

    #[test]
    fn templates_follow_envoy_rules() {
        for ok in [
            "/users/{id}",
            "/files/{path=**}",
            "/a/b",
            "/v1/{org}/{team=*}",
        ] {
            assert_eq!(check_uri_template(ok), Ok(()), "{ok}");
        }
        for bad in ["users", "/a/{p=**}/b", "/a/{}", "/a/x{y}", "/{a}/{a}"] {
            assert!(check_uri_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_carry_field_paths() {
        let with_route = |route: &str| {
            format!(r#"{{"virtualHosts":[{{"name":"v","domains":["*"],"routes":[{route}]}}]}}"#)
        };
        let cases = [
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"x"}},"action":{"type":"forward","cluster":"c"}}"#),
             "/virtualHosts/0/routes/0/match/path/value"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"c","regexRewrite":{"pattern":"(","substitution":"/"}}}"#),
                "/virtualHosts/0/routes/0/action/regexRewrite/pattern"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"c","prefixRewrite":"/x","regexRewrite":{"pattern":"a","substitution":"b"}}}"#),
                "/virtualHosts/0/routes/0/action/regexRewrite"),
            (with_route(r#"{"match":{"path":{"type":"template","value":"/a/{id}"}},"action":{"type":"forward","cluster":"c","regexRewrite":{"pattern":"a","substitution":"b"}}}"#),
                "/virtualHosts/0/routes/0/action/regexRewrite"),
            (with_route(r#"{"match":{"path":{"type":"regex","value":"("}},"action":{"type":"forward","cluster":"c"}}"#),
             "/virtualHosts/0/routes/0/match/path/value"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"c","retryPolicy":{"retryOn":["retriable-status-codes"]}}}"#),
             "/virtualHosts/0/routes/0/action/retryPolicy/retriableStatusCodes"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"c","retryPolicy":{"backoff":{"baseIntervalMs":100,"maxIntervalMs":50}}}}"#),
             "/virtualHosts/0/routes/0/action/retryPolicy/backoff/maxIntervalMs"),
            (with_route(r#"{"match":{"path":{"type":"glob","value":"/"}},"action":{"type":"forward","cluster":"c"}}"#),
             "/virtualHosts/0/routes/0/match/path/type"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"teleport"}}"#),
             "/virtualHosts/0/routes/0/action/type"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"Bad!"}}"#),
             "/virtualHosts/0/routes/0/action/cluster"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"},"methods":["FETCH"]},"action":{"type":"forward","cluster":"c"}}"#),
             "/virtualHosts/0/routes/0/match/methods/0"),
            (r#"{"virtualHosts":[{"name":"a","domains":["x"],"routes":[]},{"name":"b","domains":["x"],"routes":[]}]}"#.to_string(),
             "/virtualHosts/1/domains/0"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"directResponse","status":99}}"#),
             "/virtualHosts/0/routes/0/action/status"),
            (with_route(&format!(r#"{{"match":{{"path":{{"type":"prefix","value":"/"}}}},"action":{{"type":"directResponse","status":200,"body":"{}"}}}}"#, "x".repeat(MAX_DIRECT_RESPONSE_BODY + 1))),
             "/virtualHosts/0/routes/0/action/body"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"c","requestMirror":{"cluster":"m","percent":101}}}"#),
             "/virtualHosts/0/routes/0/action/requestMirror/percent"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"c","requestMirror":{"cluster":"Bad!"}}}"#),
             "/virtualHosts/0/routes/0/action/requestMirror/cluster"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"c"},"requestHeadersToAdd":[{"name":":path","value":"/x"}]}"#),
             "/virtualHosts/0/routes/0/requestHeadersToAdd/0/name"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"c"},"responseHeadersToRemove":["bad header"]}"#),
             "/virtualHosts/0/routes/0/responseHeadersToRemove/0"),
            (with_route(r#"{"match":{"path":{"type":"prefix","value":"/"}},"action":{"type":"forward","cluster":"c"},"filterOverrides":{"jwt":{}}}"#),
             "/virtualHosts/0/routes/0/filterOverrides/jwt"),
            (r#"{"virtualHosts":[{"name":"a","domains":["x"],"routes":[],"requestHeadersToRemove":["host"]}]}"#.to_string(),
             "/virtualHosts/0/requestHeadersToRemove/0"),
            (r#"{"virtualHosts":[{"name":"a","domains":["x"],"routes":[],"filterOverrides":{"envoy.filters.http.cors":{"cors":{"allowOrigins":[]}}}}]}"#.to_string(),
             "/virtualHosts/0/filterOverrides/envoy.filters.http.cors/cors/allowOrigins"),
        ];
        for (body, field) in cases {
            let errors = parse_spec::<RouteConfigSpec>(&body).expect_err(&body);
            assert!(
                errors.errors().iter().any(|e| e.field == field),
                "{body}: expected an error at {field}, got {errors}"
            );
        }
    }
}
