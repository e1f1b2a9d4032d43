//! Upstream clusters: where traffic goes and how Envoy connects to it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::resource::Spec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Informational name of the upstream service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// At least one upstream address. Hostnames are resolved by Envoy (DNS); IP literals are
    /// used as they are.
    pub endpoints: Vec<Endpoint>,
    /// Connect timeout in seconds (default 5).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u32,
    /// Originate TLS to the upstream.
    #[serde(default)]
    pub use_tls: bool,
    /// SNI sent when `useTls` is set (defaults to the first endpoint's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    #[serde(default)]
    pub lb_policy: LbPolicy,
    #[serde(default)]
    pub dns_lookup_family: DnsLookupFamily,
    #[serde(default)]
    pub protocol_type: UpstreamProtocol,
}

fn default_connect_timeout() -> u32 {
    5
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    pub host: String,
    pub port: u32,
    /// Relative load-balancing weight (1-128, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest,
    Random,
    RingHash,
    Maglev,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DnsLookupFamily {
    #[default]
    Auto,
    V4Only,
    V6Only,
    V4Preferred,
    All,
}

/// The HTTP protocol spoken to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    Http2,
    /// ALPN-negotiated (requires `useTls`).
    Auto,
}

impl ClusterSpec {
    /// True when every endpoint is an IP literal, so Envoy needs no DNS (STATIC discovery).
    pub fn all_endpoints_are_ips(&self) -> bool {
        self.endpoints
            .iter()
            .all(|e| e.host.parse::<std::net::IpAddr>().is_ok())
    }
}

impl Spec for ClusterSpec {
    fn validate(&self, errors: &mut ValidationErrors) {
        let root = Path::root();
        let endpoints = root.field("endpoints");
        if self.endpoints.is_empty() {
            errors.add(endpoints.as_str(), "at least one endpoint is required");
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let at = endpoints.index(i);
            if !is_valid_host(&endpoint.host) {
                errors.add(
                    at.field("host").as_str(),
                    "must be a hostname or IP address",
                );
            }
            if endpoint.port == 0 || endpoint.port > 65535 {
                errors.add(at.field("port").as_str(), "must be between 1 and 65535");
            }
            if let Some(weight) = endpoint.weight
                && !(1..=128).contains(&weight)
            {
                errors.add(at.field("weight").as_str(), "must be between 1 and 128");
            }
        }
        if !(1..=300).contains(&self.connect_timeout_seconds) {
            errors.add(
                root.field("connectTimeoutSeconds").as_str(),
                "must be between 1 and 300",
            );
        }
        if let Some(sni) = &self.tls_server_name {
            if !self.use_tls {
                errors.add(
                    root.field("tlsServerName").as_str(),
                    "requires useTls: true",
                );
            } else if !is_valid_host(sni) {
                errors.add(root.field("tlsServerName").as_str(), "must be a hostname");
            }
        }
        if self.protocol_type == UpstreamProtocol::Auto && !self.use_tls {
            errors.add(
                root.field("protocolType").as_str(),
                "AUTO selects the protocol by ALPN and requires useTls: true",
            );
        }
        // Envoy resolves all endpoints of a DNS cluster the same way; mixing IPs and names
        // is fine for STRICT_DNS, but an empty host list is not.
    }
}

/// A DNS name (RFC 1123 labels) or an IP literal.
pub fn is_valid_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::parse_spec;

    #[test]
    fn the_api_md_example_parses_with_defaults() {
        let body = r#"{"team":"my-org-default","name":"httpbin-cluster","serviceName":"httpbin-service",
            "endpoints":[{"host":"httpbin.org","port":443}],"connectTimeoutSeconds":5,
            "useTls":true,"lbPolicy":"ROUND_ROBIN"}"#;
        let parsed = parse_spec::<ClusterSpec>(body).expect("valid");
        assert_eq!(parsed.team.as_deref(), Some("my-org-default"));
        assert_eq!(parsed.name.as_deref(), Some("httpbin-cluster"));
        assert_eq!(parsed.spec.endpoints[0].port, 443);
        assert_eq!(parsed.spec.dns_lookup_family, DnsLookupFamily::Auto);
    }

    #[test]
    fn only_endpoints_are_required() {
        let parsed = parse_spec::<ClusterSpec>(r#"{"endpoints":[{"host":"10.0.0.1","port":80}]}"#)
            .expect("valid");
        assert_eq!(parsed.spec.connect_timeout_seconds, 5);
        assert!(parsed.spec.all_endpoints_are_ips());
    }

    #[test]
    fn errors_carry_field_paths() {
        let cases = [
            (r#"{"endpoints":[]}"#, "/endpoints"),
            (
                r#"{"endpoints":[{"host":"ok","port":0}]}"#,
                "/endpoints/0/port",
            ),
            (
                r#"{"endpoints":[{"host":"bad host","port":80}]}"#,
                "/endpoints/0/host",
            ),
            (
                r#"{"endpoints":[{"host":"a","port":"80"}]}"#,
                "/endpoints/0/port",
            ),
            (
                r#"{"endpoints":[{"host":"a","port":80}],"lbPolicy":"FASTEST"}"#,
                "/lbPolicy",
            ),
            (
                r#"{"endpoints":[{"host":"a","port":80}],"colour":"red"}"#,
                "/colour",
            ),
            (
                r#"{"endpoints":[{"host":"a","port":80}],"tlsServerName":"a"}"#,
                "/tlsServerName",
            ),
            (
                r#"{"name":"Bad Name","endpoints":[{"host":"a","port":80}]}"#,
                "/name",
            ),
        ];
        for (body, field) in cases {
            let errors = parse_spec::<ClusterSpec>(body).expect_err(body);
            assert!(
                errors.errors().iter().any(|e| e.field == field),
                "{body}: expected an error at {field}, got {errors}"
            );
        }
    }
}
