//! The shape of a request trace (the ops *trace* endpoint): a request as a client would send
//! it, and where Envoy would take it, step by step. Computing one is Envoy's semantics over
//! the translated resources, so it lives with the translation (`flowplane_xds::explain`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ValidationErrors;

/// A request to trace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceRequest {
    /// The dataplane (name or id) whose Envoys receive the request.
    pub dataplane: String,
    /// The listener the request arrives on. Either this or `port`.
    #[serde(default)]
    pub listener: Option<String>,
    /// The port the request arrives on, when `listener` is not given.
    #[serde(default)]
    pub port: Option<u16>,
    /// `GET` when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// The `Host` (`:authority`), port included if the client sends one.
    pub host: String,
    /// Path and query string, as on the request line.
    pub path: String,
    /// Request headers (names are matched case-insensitively).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The TLS server name the client sends; absent for plaintext.
    #[serde(default)]
    pub sni: Option<String>,
}

impl TraceRequest {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.dataplane.is_empty() {
            errors.add("/dataplane", "required");
        }
        if self.listener.is_none() && self.port.is_none() {
            errors.add("/listener", "give a listener name or a port");
        }
        if !self.path.starts_with('/') {
            errors.add("/path", "must start with /");
        }
        if self.host.is_empty() {
            errors.add("/host", "required");
        }
        if let Some(method) = &self.method
            && (method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()))
        {
            errors.add("/method", "must be an upper-case HTTP method such as GET");
        }
        errors.into_result()
    }

    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("GET")
    }
}

/// Where Envoy would take the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub listener: Option<String>,
    pub filter_chain: Option<String>,
    pub route_config: Option<String>,
    pub virtual_host: Option<String>,
    pub route: Option<String>,
    /// Every candidate considered, in Envoy's order, and why it did or did not match.
    pub steps: Vec<TraceStep>,
    /// The HTTP filters the request passes through, in order.
    pub filters: Vec<TraceFilter>,
    pub outcome: TraceOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceStep {
    /// `listener`, `filterChain`, `virtualHost` or `route`.
    pub stage: String,
    pub name: String,
    pub matched: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceFilter {
    pub name: String,
    /// `listener` (as configured there), `overridden` (a per-route or per-host configuration
    /// replaces it) or `disabled` (turned off for this route).
    pub effect: String,
}

/// What Envoy does with the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceOutcome {
    /// `forward`, `redirect`, `directResponse`, `tcpProxy`, or what Envoy does when nothing
    /// matches: `noListener` (connection refused), `noFilterChain` (connection closed),
    /// `noRoute` (404).
    pub kind: String,
    /// The status Envoy answers with itself (redirects, direct responses, no route).
    pub status: Option<u16>,
    pub clusters: Vec<TraceCluster>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceCluster {
    pub name: String,
    /// Share of traffic, when the route splits it.
    pub weight: Option<u32>,
    /// Whether the cluster exists (Envoy answers 503 for one that does not).
    pub exists: bool,
    pub endpoints: Vec<TraceEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceEndpoint {
    pub address: String,
    pub port: u32,
}
