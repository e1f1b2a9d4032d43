//! Active health checks: Envoy probes every endpoint on a timer and stops sending traffic to
//! the ones that fail. Durations here are milliseconds so that sub-second probing (and quick
//! tests) can be expressed; cluster-wide timeouts stay in seconds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::UpstreamProtocol;
use crate::error::{Path, ValidationErrors};

/// One active health check. Set exactly one of `http`, `tcp` or `grpc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheck>,
    /// Time between probes of one endpoint, in milliseconds (default 5000).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u32,
    /// A probe without an answer after this many milliseconds fails (default 1000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// Failed probes in a row that mark a healthy endpoint unhealthy (default 3).
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// Passed probes in a row that mark an unhealthy endpoint healthy again (default 2). A new
    /// endpoint needs only its first passed probe.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    /// Interval used while the cluster has never carried traffic, in milliseconds (Envoy's
    /// default is 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_traffic_interval_ms: Option<u32>,
}

fn default_interval_ms() -> u32 {
    5_000
}

fn default_timeout_ms() -> u32 {
    1_000
}

fn default_unhealthy_threshold() -> u32 {
    3
}

fn default_healthy_threshold() -> u32 {
    2
}

/// `GET path` on each endpoint; an answer outside `expectedStatuses` fails the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHealthCheck {
    pub path: String,
    /// The `Host` header of the probe (default: the cluster name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Statuses that pass (default `[200]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_statuses: Vec<u16>,
}

/// A TCP connect; with `send`, those bytes are written and every `receive` payload must be
/// found in the answer. Payloads are hex encoded (`"000000FF"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receive: Vec<String>,
}

/// The standard `grpc.health.v1.Health/Check` call; needs an HTTP/2 cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcHealthCheck {
    /// The service name in the request (default: the server's overall health).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The `:authority` of the call (default: the cluster name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

/// What a check probes with, once exactly one kind is set.
pub enum Probe<'a> {
    Http(&'a HttpHealthCheck),
    Tcp(&'a TcpHealthCheck),
    Grpc(&'a GrpcHealthCheck),
}

const MAX_INTERVAL_MS: u32 = 86_400_000;

impl HealthCheck {
    /// The probe, or `None` unless exactly one of `http`, `tcp`, `grpc` is set.
    pub fn probe(&self) -> Option<Probe<'_>> {
        match (&self.http, &self.tcp, &self.grpc) {
            (Some(http), None, None) => Some(Probe::Http(http)),
            (None, Some(tcp), None) => Some(Probe::Tcp(tcp)),
            (None, None, Some(grpc)) => Some(Probe::Grpc(grpc)),
            _ => None,
        }
    }

    pub(crate) fn validate(
        &self,
        protocol: UpstreamProtocol,
        at: &Path,
        errors: &mut ValidationErrors,
    ) {
        match self.probe() {
            None => errors.add(at.as_str(), "set exactly one of http, tcp or grpc"),
            Some(Probe::Http(http)) => http.validate(&at.field("http"), errors),
            Some(Probe::Tcp(tcp)) => tcp.validate(&at.field("tcp"), errors),
            Some(Probe::Grpc(grpc)) => grpc.validate(protocol, &at.field("grpc"), errors),
        }
        for (field, value) in [
            ("intervalMs", Some(self.interval_ms)),
            ("timeoutMs", Some(self.timeout_ms)),
            ("noTrafficIntervalMs", self.no_traffic_interval_ms),
        ] {
            if let Some(value) = value
                && !(1..=MAX_INTERVAL_MS).contains(&value)
            {
                errors.add(
                    at.field(field).as_str(),
                    format!("must be between 1 and {MAX_INTERVAL_MS} (one day)"),
                );
            }
        }
        // Envoy requires both thresholds; zero would make a single probe meaningless.
        for (field, value) in [
            ("unhealthyThreshold", self.unhealthy_threshold),
            ("healthyThreshold", self.healthy_threshold),
        ] {
            if value == 0 {
                errors.add(at.field(field).as_str(), "must be at least 1");
            }
        }
    }
}

impl HttpHealthCheck {
    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if !self.path.starts_with('/') || !is_header_value(&self.path) {
            errors.add(
                at.field("path").as_str(),
                "must start with '/' and contain no spaces or control characters",
            );
        }
        if let Some(host) = &self.host
            && (host.is_empty() || !is_header_value(host))
        {
            errors.add(
                at.field("host").as_str(),
                "must be non-empty without spaces or control characters",
            );
        }
        for (i, status) in self.expected_statuses.iter().enumerate() {
            // Envoy only accepts statuses in [100, 600).
            if !(100..=599).contains(status) {
                errors.add(
                    at.field("expectedStatuses").index(i).as_str(),
                    "must be between 100 and 599",
                );
            }
        }
    }
}

impl TcpHealthCheck {
    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if let Some(send) = &self.send
            && !is_hex_payload(send)
        {
            errors.add(at.field("send").as_str(), HEX_MESSAGE);
        }
        for (i, payload) in self.receive.iter().enumerate() {
            if !is_hex_payload(payload) {
                errors.add(at.field("receive").index(i).as_str(), HEX_MESSAGE);
            }
        }
    }
}

impl GrpcHealthCheck {
    fn validate(&self, protocol: UpstreamProtocol, at: &Path, errors: &mut ValidationErrors) {
        // Envoy refuses a gRPC health checker on a cluster that cannot speak HTTP/2.
        if protocol == UpstreamProtocol::Http1 {
            errors.add(
                at.as_str(),
                "gRPC health checks need protocolType HTTP2 (or AUTO)",
            );
        }
        if let Some(authority) = &self.authority
            && (authority.is_empty() || !is_header_value(authority))
        {
            errors.add(
                at.field("authority").as_str(),
                "must be non-empty without spaces or control characters",
            );
        }
    }
}

const HEX_MESSAGE: &str = "must be a non-empty hex string with an even number of digits";

fn is_hex_payload(text: &str) -> bool {
    !text.is_empty() && text.len().is_multiple_of(2) && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// Visible ASCII only: these values travel as HTTP header values (`:path`, `Host`).
fn is_header_value(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_graphic())
}
