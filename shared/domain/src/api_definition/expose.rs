//! `expose`: one upstream URL and one path prefix, as an API definition. Without `port` the
//! definition joins the team's shared gateway; with it, it gets a dedicated listener.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiDefinitionSpec, ApiFilters, ApiRoute, ListenerIsolation, Upstream};
use crate::error::ValidationErrors;
use crate::resource::Spec;
use crate::route_config::PathMatchType;

/// The body of `expose`; `name` (and on the canonical path `team`) travel beside it, as on
/// every resource body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExposeRequest {
    /// `http://host:port`, optionally with a path that replaces `path` upstream.
    pub upstream: String,
    /// The path prefix clients call (default `/`).
    #[serde(default = "root")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// A dedicated listener on this port; absent: the team's shared gateway listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

fn root() -> String {
    "/".into()
}

impl Spec for ExposeRequest {
    fn validate(&self, errors: &mut ValidationErrors) {
        if let Err(message) = Upstream::parse(&self.upstream) {
            errors.add("/upstream", message);
        }
        if !self.path.starts_with('/') {
            errors.add("/path", "must start with '/'");
        }
    }
}

impl ExposeRequest {
    /// The definition this call stands for: one prefix route to the upstream's origin, with
    /// the upstream URL's path (if any) as the prefix rewrite.
    pub fn into_definition(self) -> Result<ApiDefinitionSpec, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.validate(&mut errors);
        errors.into_result()?;
        let up = Upstream::parse(&self.upstream)
            .map_err(|m| ValidationErrors::single("/upstream", m))?;
        let origin = format!(
            "{}://{}:{}",
            if up.tls { "https" } else { "http" },
            bracket_ipv6(&up.host),
            up.port
        );
        // Envoy swaps the matched prefix for the rewrite verbatim: `/` → `/v2/`, not `/v2`,
        // or `/x` would reach the upstream as `/v2x`.
        let prefix_rewrite = (!up.path.is_empty()).then(|| {
            let mut rewrite = up.path;
            if self.path.ends_with('/') && !rewrite.ends_with('/') {
                rewrite.push('/');
            }
            rewrite
        });
        Ok(ApiDefinitionSpec {
            domain: self.domain,
            listener_isolation: if self.port.is_some() {
                ListenerIsolation::Dedicated
            } else {
                ListenerIsolation::Shared
            },
            port: self.port,
            routes: vec![ApiRoute {
                name: Some("expose".into()),
                path: self.path,
                match_type: PathMatchType::Prefix,
                methods: Vec::new(),
                upstream: origin,
                timeout_seconds: None,
                prefix_rewrite,
                filters: ApiFilters::default(),
            }],
            filters: ApiFilters::default(),
        })
    }
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::parse_spec;

    #[test]
    fn an_upstream_path_becomes_a_prefix_rewrite() {
        let parsed = parse_spec::<ExposeRequest>(
            r#"{"name":"echo","upstream":"http://127.0.0.1:8080/v2","path":"/echo"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.name.as_deref(), Some("echo"));
        let spec = parsed
            .spec
            .into_definition()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.listener_isolation, ListenerIsolation::Shared);
        assert_eq!(spec.routes[0].upstream, "http://127.0.0.1:8080");
        assert_eq!(spec.routes[0].prefix_rewrite.as_deref(), Some("/v2"));
    }

    #[test]
    fn a_port_asks_for_a_dedicated_listener_and_bad_input_names_its_field() {
        let spec = parse_spec::<ExposeRequest>(r#"{"upstream":"http://h:1","port":18080}"#)
            .unwrap_or_else(|e| panic!("{e}"))
            .spec
            .into_definition()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.listener_isolation, ListenerIsolation::Dedicated);
        let errors =
            parse_spec::<ExposeRequest>(r#"{"name":"Bad Name","upstream":"nope","path":"x"}"#)
                .err()
                .unwrap_or_default();
        let fields: Vec<&str> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/name", "/upstream", "/path"]);
    }
}
