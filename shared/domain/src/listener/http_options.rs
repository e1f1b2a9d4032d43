//! What an HTTP connection manager does besides routing: access logs, tracing and the usual
//! connection and request handling options.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::names::check_name;

/// One access log: a file Envoy appends a line to for each request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLog {
    /// An absolute path on the Envoy host; `/dev/stdout` writes to Envoy's output.
    pub path: String,
    /// The line's shape (default: Envoy's standard text line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AccessLogFormat>,
    /// Log only requests answered with this status or above (e.g. 400 for errors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_status: Option<u16>,
}

/// Lines use Envoy's `%COMMAND%` substitutions, such as `%RESPONSE_CODE%` or `%REQ(:PATH)%`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum AccessLogFormat {
    /// One text line from `template` (a newline is added when it has none).
    Text { template: String },
    /// One JSON object per line, each field's value a substitution template.
    Json { fields: BTreeMap<String, String> },
}

/// Traces sent to an OpenTelemetry collector (OTLP over gRPC) reached through a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracing {
    /// The collector's cluster; it must speak gRPC (`protocolType: HTTP2`).
    pub cluster: String,
    /// The service name on the spans (default: the listener's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Share of requests traced, 0 to 100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_percent: Option<f64>,
}

/// Connection and request handling; every field is optional and Envoy's default applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpOptions {
    /// Take the connection's peer as the client address (set on edge listeners; behind
    /// another proxy, use `xffNumTrustedHops` instead).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_remote_address: bool,
    /// How many `x-forwarded-for` hops to trust when finding the client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xff_num_trusted_hops: Option<u32>,
    /// The longest a whole request may take to arrive (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u32>,
    /// The longest a request's headers may take to arrive (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers_timeout_ms: Option<u32>,
    /// Close a stream with no activity for this long (Envoy's default 300 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout_seconds: Option<u32>,
    /// Close a connection with no streams for this long (Envoy's default 1 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u32>,
    /// The largest request headers accepted, in KiB (Envoy's default 60, at most 8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_headers_kb: Option<u32>,
    /// The `server` response header (default `envoy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Normalize paths (RFC 3986: `.` and `..` segments) before routing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub normalize_path: bool,
    /// Collapse repeated slashes in paths before routing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge_slashes: bool,
    /// Keep an `x-request-id` the client sent on an edge listener (default: replace it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve_external_request_id: bool,
}

impl HttpOptions {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        for (field, value, max) in [
            ("requestTimeoutMs", self.request_timeout_ms, 3_600_000),
            (
                "requestHeadersTimeoutMs",
                self.request_headers_timeout_ms,
                3_600_000,
            ),
            (
                "streamIdleTimeoutSeconds",
                self.stream_idle_timeout_seconds,
                86_400,
            ),
            ("idleTimeoutSeconds", self.idle_timeout_seconds, 86_400),
            ("maxRequestHeadersKb", self.max_request_headers_kb, 8_192),
        ] {
            if let Some(value) = value
                && !(1..=max).contains(&value)
            {
                errors.add(
                    at.field(field).as_str(),
                    format!("must be between 1 and {max}"),
                );
            }
        }
        if self.xff_num_trusted_hops.is_some_and(|h| h > 16) {
            errors.add(at.field("xffNumTrustedHops").as_str(), "must be at most 16");
        }
        if let Some(name) = &self.server_name {
            let valid = !name.is_empty()
                && name.len() <= 128
                && name.bytes().all(|b| (0x21..0x7f).contains(&b) || b == b' ');
            if !valid {
                errors.add(
                    at.field("serverName").as_str(),
                    "must be 1 to 128 printable ASCII characters",
                );
            }
        }
    }
}

/// Where tenants' access logs may be written on the Envoy hosts unless the operator says
/// otherwise (`FLOWPLANE_ACCESS_LOG_DIR`). Envoy runs with the operator's file-system rights,
/// so a tenant naming any path could make it append lines of the tenant's choosing to any file
/// (`/etc/cron.d/x`).
pub const DEFAULT_ACCESS_LOG_DIR: &str = "/var/log/envoy";

static ACCESS_LOG_DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets the access log directory once, when the config service starts; it must be an absolute
/// path without `.`/`..` segments.
pub fn set_access_log_dir(dir: &str) -> Result<(), String> {
    let dir = dir.trim_end_matches('/');
    let canonical = dir.starts_with('/')
        && dir[1..]
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains(['\0', '\n']));
    if !canonical {
        return Err(format!(
            "FLOWPLANE_ACCESS_LOG_DIR '{dir}' must be an absolute path without '.' or '..' segments"
        ));
    }
    match ACCESS_LOG_DIR.set(dir.to_string()) {
        Ok(()) => Ok(()),
        Err(_) if ACCESS_LOG_DIR.get().map(String::as_str) == Some(dir) => Ok(()),
        Err(_) => Err("the access log directory is already set".into()),
    }
}

pub fn access_log_dir() -> &'static str {
    ACCESS_LOG_DIR
        .get()
        .map(String::as_str)
        .unwrap_or(DEFAULT_ACCESS_LOG_DIR)
}

/// `/dev/stdout`, `/dev/stderr`, or a canonical path under [`access_log_dir`]: no `.` or `..`
/// segment, no empty segment, only `[A-Za-z0-9._-]` in a segment.
pub fn access_log_path_problem(path: &str) -> Result<(), String> {
    if path == "/dev/stdout" || path == "/dev/stderr" {
        return Ok(());
    }
    let dir = access_log_dir();
    let refused = || {
        Err(format!(
            "must be /dev/stdout, /dev/stderr or a file under {dir}/ (no '.' or '..' segments; letters, digits, '.', '_' and '-' only)"
        ))
    };
    let Some(rest) = path.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) else {
        return refused();
    };
    if path.len() > 1024 || rest.is_empty() {
        return refused();
    }
    let canonical = rest.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    if canonical { Ok(()) } else { refused() }
}

#[cfg(test)]
mod access_log_path_tests {
    use super::*;

    #[test]
    fn only_stdio_and_canonical_paths_under_the_directory() {
        for ok in [
            "/dev/stdout",
            "/dev/stderr",
            "/var/log/envoy/access.log",
            "/var/log/envoy/team-a/x.json",
        ] {
            assert!(access_log_path_problem(ok).is_ok(), "{ok}");
        }
        for bad in [
            "/var/log/../../etc/cron.d/x",
            "/var/log/envoy/../../../etc/passwd",
            "/var/log/envoy/./x",
            "/var/log/envoy//x",
            "/var/log/envoy/",
            "/var/log/envoyx/a",
            "/etc/cron.d/x",
            "relative.log",
            "/var/log/envoy/a b",
            "/dev/stdout/../x",
        ] {
            assert!(access_log_path_problem(bad).is_err(), "{bad}");
        }
    }
}

impl AccessLog {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if let Err(message) = access_log_path_problem(&self.path) {
            errors.add(at.field("path").as_str(), message);
        }
        if let Some(status) = self.min_status
            && !(100..=599).contains(&status)
        {
            errors.add(
                at.field("minStatus").as_str(),
                "must be between 100 and 599",
            );
        }
        match &self.format {
            None => {}
            Some(AccessLogFormat::Text { template }) => {
                if template.is_empty() {
                    errors.add(
                        at.field("format").field("template").as_str(),
                        "must not be empty",
                    );
                }
                check_template(template, &at.field("format").field("template"), errors);
            }
            Some(AccessLogFormat::Json { fields }) => {
                let at = at.field("format").field("fields");
                if fields.is_empty() {
                    errors.add(at.as_str(), "at least one field is required");
                }
                for (name, template) in fields {
                    if name.is_empty() {
                        errors.add(at.as_str(), "field names must not be empty");
                    }
                    check_template(template, &at.field(name), errors);
                }
            }
        }
    }
}

impl Tracing {
    pub fn sampling_percent(&self) -> f64 {
        self.sampling_percent.unwrap_or(100.0)
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        check_name(&self.cluster, &at.field("cluster"), errors);
        if let Some(name) = &self.service_name
            && (name.is_empty() || name.len() > 128 || name.chars().any(char::is_control))
        {
            errors.add(
                at.field("serviceName").as_str(),
                "must be 1 to 128 characters",
            );
        }
        if !(0.0..=100.0).contains(&self.sampling_percent()) {
            errors.add(
                at.field("samplingPercent").as_str(),
                "must be between 0 and 100",
            );
        }
    }
}

/// Substitution commands Envoy's access log formatter knows that Flowplane accepts. Envoy
/// rejects a format with an unknown command, which would make the whole listener a NACK, so
/// templates are checked here instead.
const COMMANDS: &[&str] = &[
    "START_TIME",
    "EMIT_TIME",
    "REQUEST_DURATION",
    "REQUEST_TX_DURATION",
    "RESPONSE_DURATION",
    "RESPONSE_TX_DURATION",
    "DURATION",
    "BYTES_RECEIVED",
    "BYTES_SENT",
    "PROTOCOL",
    "UPSTREAM_PROTOCOL",
    "RESPONSE_CODE",
    "RESPONSE_CODE_DETAILS",
    "CONNECTION_TERMINATION_DETAILS",
    "RESPONSE_FLAGS",
    "RESPONSE_FLAGS_LONG",
    "UPSTREAM_HOST",
    "UPSTREAM_CLUSTER",
    "UPSTREAM_LOCAL_ADDRESS",
    "UPSTREAM_TRANSPORT_FAILURE_REASON",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT",
    "DOWNSTREAM_REMOTE_ADDRESS",
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_ADDRESS",
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_PORT",
    "REQUESTED_SERVER_NAME",
    "ROUTE_NAME",
    "VIRTUAL_CLUSTER_NAME",
    "HOSTNAME",
    "CONNECTION_ID",
    "STREAM_ID",
    "UPSTREAM_CONNECTION_ID",
    "DOWNSTREAM_TLS_VERSION",
    "DOWNSTREAM_TLS_CIPHER",
    "DOWNSTREAM_PEER_SUBJECT",
    "DOWNSTREAM_PEER_URI_SAN",
    "UNIQUE_ID",
    "TRACE_ID",
    "GRPC_STATUS",
    "GRPC_STATUS_NUMBER",
    "ACCESS_LOG_TYPE",
    "REQ",
    "RESP",
    "TRAILER",
];

/// Commands that need an argument in parentheses (the header name).
const NEEDS_ARGUMENT: &[&str] = &["REQ", "RESP", "TRAILER"];

fn check_template(template: &str, at: &Path, errors: &mut ValidationErrors) {
    if let Err(message) = template_problem(template) {
        errors.add(at.as_str(), message);
    }
}

/// `%%` is a literal percent sign; any other `%` starts a command: `NAME`, optionally
/// `(argument)` (which may itself hold `%`, as a time format does), optionally `:length`,
/// then a closing `%`.
fn template_problem(template: &str) -> Result<(), String> {
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'%') {
            i += 2;
            continue;
        }
        let start = i;
        i += 1;
        let name_start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_uppercase() || bytes[i].is_ascii_digit() || bytes[i] == b'_')
        {
            i += 1;
        }
        let name = &template[name_start..i];
        let incomplete = || {
            format!(
                "'{}' is not a complete substitution (write %% for a literal percent sign)",
                &template[start..]
            )
        };
        let mut argument = None;
        if bytes.get(i) == Some(&b'(') {
            let close = template[i..].find(')').ok_or_else(incomplete)? + i;
            argument = Some(&template[i + 1..close]);
            i = close + 1;
        }
        if bytes.get(i) == Some(&b':') {
            i += 1;
            let digits = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if digits == i {
                return Err(incomplete());
            }
        }
        if bytes.get(i) != Some(&b'%') || name.is_empty() {
            return Err(incomplete());
        }
        i += 1;
        if !COMMANDS.contains(&name) {
            return Err(format!(
                "%{name}% is not a supported substitution (for example %RESPONSE_CODE%, \
                 %REQ(:PATH)%, %START_TIME%)"
            ));
        }
        if NEEDS_ARGUMENT.contains(&name) && argument.is_none_or(str::is_empty) {
            return Err(format!(
                "%{name}% needs a header name, as in %{name}(:PATH)%"
            ));
        }
    }
    if template.contains('\0') {
        return Err("must not contain NUL".into());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn templates_with_known_commands_pass() {
        for ok in [
            "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%\" %RESPONSE_CODE%",
            "%REQ(USER-AGENT):10% 100%% done",
            "%START_TIME(%Y-%m-%dT%H:%M:%S)%",
            "plain text",
        ] {
            assert_eq!(template_problem(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn unknown_or_broken_commands_are_refused() {
        for bad in ["%NOPE%", "%REQ%", "%REQ()%", "50% off", "%REQ(:PATH%"] {
            assert!(template_problem(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options_are_checked_at_their_fields() {
        let options: HttpOptions = serde_json::from_str(
            r#"{"requestTimeoutMs":0,"maxRequestHeadersKb":9000,"xffNumTrustedHops":17,
                "serverName":""}"#,
        )
        .unwrap();
        let mut errors = ValidationErrors::new();
        options.validate(&Path::root(), &mut errors);
        let fields: Vec<String> = errors.into_errors().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "/requestTimeoutMs",
                "/maxRequestHeadersKb",
                "/xffNumTrustedHops",
                "/serverName"
            ]
        );
    }
}
