//! Upstream clusters: where traffic goes, how Envoy connects to it, and how Envoy decides an
//! endpoint is fit for traffic (active health checks, outlier detection, circuit breakers).

pub mod circuit_breakers;
pub mod health_check;
pub mod outlier_detection;

use crate::secret::SecretUse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::resource::Spec;
pub use circuit_breakers::{CircuitBreakerThresholds, CircuitBreakers};
pub use health_check::{GrpcHealthCheck, HealthCheck, HttpHealthCheck, Probe, TcpHealthCheck};
pub use outlier_detection::OutlierDetection;

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
    /// Client certificate and upstream verification from secrets (needs `useTls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    #[serde(default)]
    pub lb_policy: LbPolicy,
    #[serde(default)]
    pub dns_lookup_family: DnsLookupFamily,
    #[serde(default)]
    pub protocol_type: UpstreamProtocol,
    /// Close an upstream connection after this many idle seconds (Envoy's default is one
    /// hour; 0 keeps idle connections open forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u32>,
    /// Active health checks (at most one for now); an endpoint failing it gets no traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
}

/// TLS settings of a cluster that come from secrets, served to Envoy over SDS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamTls {
    /// A `tlsCertificate` secret presented to the upstream (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_secret: Option<String>,
    /// A `validationContext` secret that verifies the upstream's certificate; without it the
    /// upstream is not authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_secret: Option<String>,
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
    /// Failover priority (0 = highest, the default). Envoy sends traffic to priority 1 only
    /// when too few priority 0 endpoints are healthy, and so on; the priorities in use must be
    /// contiguous from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// Envoy supports at most 128 priority levels.
pub const MAX_PRIORITY: u32 = 127;

/// Health checks per cluster (see the check in `validate`).
pub const MAX_HEALTH_CHECKS: usize = 1;

/// Upper bound of `idleTimeoutSeconds` (one week).
pub const MAX_IDLE_TIMEOUT_SECONDS: u32 = 604_800;

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

    /// Secrets the TLS settings name, with the field naming each.
    pub fn secret_references(&self) -> Vec<(&str, Path, SecretUse)> {
        let at = Path::root().field("tls");
        let Some(tls) = &self.tls else {
            return Vec::new();
        };
        let mut refs = Vec::new();
        if let Some(secret) = &tls.client_certificate_secret {
            refs.push((
                secret.as_str(),
                at.field("clientCertificateSecret"),
                SecretUse::Certificate,
            ));
        }
        if let Some(secret) = &tls.validation_secret {
            refs.push((
                secret.as_str(),
                at.field("validationSecret"),
                SecretUse::Validation,
            ));
        }
        refs
    }

    /// The distinct endpoint priorities in ascending order.
    pub fn priorities(&self) -> std::collections::BTreeSet<u32> {
        self.endpoints.iter().map(Endpoint::priority).collect()
    }
}

impl Endpoint {
    pub fn priority(&self) -> u32 {
        self.priority.unwrap_or(0)
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
        if let Some(tls) = &self.tls {
            let at = root.field("tls");
            if !self.use_tls {
                errors.add(at.as_str(), "requires useTls: true");
            }
            for (secret, field, _) in self.secret_references() {
                crate::names::check_name(secret, &field, errors);
            }
            if tls.client_certificate_secret.is_none() && tls.validation_secret.is_none() {
                errors.add(
                    at.as_str(),
                    "name clientCertificateSecret, validationSecret or both",
                );
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
        self.validate_priorities(&endpoints, errors);
        if let Some(idle) = self.idle_timeout_seconds
            && idle > MAX_IDLE_TIMEOUT_SECONDS
        {
            errors.add(
                root.field("idleTimeoutSeconds").as_str(),
                format!("must be between 0 and {MAX_IDLE_TIMEOUT_SECONDS} (one week)"),
            );
        }
        let checks = root.field("healthChecks");
        // Envoy (since 1.37) requires a name on each of several health checks, a field the
        // envoy-types protos Flowplane builds with do not have yet; so one check per cluster.
        if self.health_checks.len() > MAX_HEALTH_CHECKS {
            errors.add(
                checks.index(MAX_HEALTH_CHECKS).as_str(),
                format!("at most {MAX_HEALTH_CHECKS} health check per cluster is supported"),
            );
        }
        for (i, check) in self.health_checks.iter().enumerate() {
            check.validate(self.protocol_type, &checks.index(i), errors);
        }
        if let Some(breakers) = &self.circuit_breakers {
            breakers.validate(&root.field("circuitBreakers"), errors);
        }
        if let Some(outliers) = &self.outlier_detection {
            outliers.validate(&root.field("outlierDetection"), errors);
        }
    }
}

impl ClusterSpec {
    /// Envoy spills over from one priority to the next; a gap (endpoints at 0 and 2 but none
    /// at 1) is almost surely a typo, so every priority up to the highest must be used.
    fn validate_priorities(&self, endpoints: &Path, errors: &mut ValidationErrors) {
        let used = self.priorities();
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let Some(priority) = endpoint.priority else {
                continue;
            };
            let at = endpoints.index(i).field("priority");
            if priority > MAX_PRIORITY {
                errors.add(at.as_str(), format!("must be between 0 and {MAX_PRIORITY}"));
            } else if let Some(missing) = (0..priority).find(|p| !used.contains(p)) {
                errors.add(
                    at.as_str(),
                    format!(
                        "priorities must be contiguous from 0, but no endpoint has priority {missing}"
                    ),
                );
            }
        }
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
    fn upstream_tls_secret_rules_carry_field_paths() {
        let ep = r#""endpoints":[{"host":"api.internal","port":443}]"#;
        let cases = [
            (
                format!(r#"{{{ep},"tls":{{"validationSecret":"ca"}}}}"#),
                "/tls",
            ),
            (format!(r#"{{{ep},"useTls":true,"tls":{{}}}}"#), "/tls"),
            (
                format!(r#"{{{ep},"useTls":true,"tls":{{"validationSecret":"Bad"}}}}"#),
                "/tls/validationSecret",
            ),
            (
                format!(r#"{{{ep},"useTls":true,"tls":{{"clientCertificateSecret":"-"}}}}"#),
                "/tls/clientCertificateSecret",
            ),
        ];
        for (body, field) in cases {
            let errors = parse_spec::<ClusterSpec>(&body).expect_err(&body);
            assert!(
                errors.errors().iter().any(|e| e.field == field),
                "{body}: expected an error at {field}, got {errors}"
            );
        }
        let body = format!(
            r#"{{{ep},"useTls":true,"tls":{{"clientCertificateSecret":"me","validationSecret":"ca"}}}}"#
        );
        let parsed = parse_spec::<ClusterSpec>(&body).expect("valid");
        let refs: Vec<(&str, String)> = parsed
            .spec
            .secret_references()
            .into_iter()
            .map(|(n, p, _)| (n, p.as_str().to_string()))
            .collect();
        assert_eq!(
            refs,
            [
                ("me", "/tls/clientCertificateSecret".to_string()),
                ("ca", "/tls/validationSecret".to_string())
            ]
        );
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

    #[test]
    fn resilience_fields_parse_with_defaults() {
        let parsed = parse_spec::<ClusterSpec>(
            r#"{"endpoints":[{"host":"10.0.0.1","port":80},{"host":"10.0.0.2","port":80,"priority":1}],
                "idleTimeoutSeconds":30,
                "healthChecks":[{"http":{"path":"/healthz"}}],
                "circuitBreakers":{"default":{"maxRequests":10},"high":{"maxConnections":5}},
                "outlierDetection":{"consecutive5xx":2}}"#,
        )
        .expect("valid");
        let spec = parsed.spec;
        assert_eq!(spec.priorities().into_iter().collect::<Vec<_>>(), [0, 1]);
        let http = &spec.health_checks[0];
        assert_eq!(
            (
                http.interval_ms,
                http.timeout_ms,
                http.unhealthy_threshold,
                http.healthy_threshold
            ),
            (5_000, 1_000, 3, 2)
        );
        assert!(matches!(http.probe(), Some(Probe::Http(_))));
        assert_eq!(
            spec.circuit_breakers
                .and_then(|c| c.default_priority)
                .and_then(|t| t.max_requests),
            Some(10)
        );
        assert_eq!(
            spec.outlier_detection.and_then(|o| o.consecutive_5xx),
            Some(2)
        );
    }

    #[test]
    fn resilience_errors_carry_field_paths() {
        let with =
            |extra: &str| format!(r#"{{"endpoints":[{{"host":"10.0.0.1","port":80}}],{extra}}}"#);
        let cases = [
            (with(r#""healthChecks":[{}]"#), "/healthChecks/0"),
            (
                with(r#""healthChecks":[{"http":{"path":"/"},"tcp":{}}]"#),
                "/healthChecks/0",
            ),
            (
                with(r#""healthChecks":[{"http":{"path":"healthz"}}]"#),
                "/healthChecks/0/http/path",
            ),
            (
                with(r#""healthChecks":[{"http":{"path":"/a b"}}]"#),
                "/healthChecks/0/http/path",
            ),
            (
                with(r#""healthChecks":[{"http":{"path":"/","host":""}}]"#),
                "/healthChecks/0/http/host",
            ),
            (
                with(r#""healthChecks":[{"http":{"path":"/","expectedStatuses":[200,600]}}]"#),
                "/healthChecks/0/http/expectedStatuses/1",
            ),
            (
                with(r#""healthChecks":[{"tcp":{"send":"abc"}}]"#),
                "/healthChecks/0/tcp/send",
            ),
            (
                with(r#""healthChecks":[{"tcp":{"send":"00","receive":["zz"]}}]"#),
                "/healthChecks/0/tcp/receive/0",
            ),
            (
                with(r#""healthChecks":[{"grpc":{}}]"#),
                "/healthChecks/0/grpc",
            ),
            (
                with(r#""protocolType":"HTTP2","healthChecks":[{"grpc":{"authority":""}}]"#),
                "/healthChecks/0/grpc/authority",
            ),
            (
                with(r#""healthChecks":[{"tcp":{},"intervalMs":0}]"#),
                "/healthChecks/0/intervalMs",
            ),
            (
                with(r#""healthChecks":[{"tcp":{},"timeoutMs":0}]"#),
                "/healthChecks/0/timeoutMs",
            ),
            (
                with(r#""healthChecks":[{"tcp":{},"noTrafficIntervalMs":0}]"#),
                "/healthChecks/0/noTrafficIntervalMs",
            ),
            (
                with(r#""healthChecks":[{"tcp":{},"unhealthyThreshold":0}]"#),
                "/healthChecks/0/unhealthyThreshold",
            ),
            (
                with(r#""healthChecks":[{"tcp":{},"healthyThreshold":0}]"#),
                "/healthChecks/0/healthyThreshold",
            ),
            (
                with(r#""healthChecks":[{"tcp":{},"intervalSeconds":1}]"#),
                "/healthChecks/0/intervalSeconds",
            ),
            (
                with(r#""healthChecks":[{"tcp":{}},{"tcp":{}}]"#),
                "/healthChecks/1",
            ),
            (with(r#""circuitBreakers":{}"#), "/circuitBreakers"),
            (
                with(r#""circuitBreakers":{"default":{}}"#),
                "/circuitBreakers/default",
            ),
            (
                with(r#""circuitBreakers":{"high":{"maxPendingRequests":0}}"#),
                "/circuitBreakers/high/maxPendingRequests",
            ),
            (
                with(r#""outlierDetection":{"consecutive5xx":0}"#),
                "/outlierDetection/consecutive5xx",
            ),
            (
                with(r#""outlierDetection":{"consecutiveGatewayFailure":0}"#),
                "/outlierDetection/consecutiveGatewayFailure",
            ),
            (
                with(r#""outlierDetection":{"intervalMs":0}"#),
                "/outlierDetection/intervalMs",
            ),
            (
                with(r#""outlierDetection":{"baseEjectionTimeMs":0}"#),
                "/outlierDetection/baseEjectionTimeMs",
            ),
            (
                with(r#""outlierDetection":{"maxEjectionPercent":101}"#),
                "/outlierDetection/maxEjectionPercent",
            ),
            (
                with(r#""idleTimeoutSeconds":604801"#),
                "/idleTimeoutSeconds",
            ),
            (
                r#"{"endpoints":[{"host":"10.0.0.1","port":80},{"host":"10.0.0.2","port":80,"priority":2}]}"#
                    .to_string(),
                "/endpoints/1/priority",
            ),
            (
                r#"{"endpoints":[{"host":"10.0.0.1","port":80,"priority":128}]}"#.to_string(),
                "/endpoints/0/priority",
            ),
        ];
        for (body, field) in cases {
            let errors = parse_spec::<ClusterSpec>(&body).expect_err(&body);
            assert!(
                errors.errors().iter().any(|e| e.field == field),
                "{body}: expected an error at {field}, got {errors}"
            );
        }
    }

    #[test]
    fn grpc_health_checks_are_fine_on_http2_clusters() {
        let body = r#"{"endpoints":[{"host":"10.0.0.1","port":80}],"protocolType":"HTTP2",
            "healthChecks":[{"grpc":{"serviceName":"orders"}}]}"#;
        assert!(parse_spec::<ClusterSpec>(body).is_ok());
    }
}
