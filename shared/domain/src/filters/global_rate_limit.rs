//! Global rate limiting: every Envoy of the team asks Flowplane's `ratelimit` service, which
//! counts in Redis, so a limit holds across all dataplanes and replicas rather than per Envoy.
//!
//! The limits travel with the listener's configuration: each limit becomes a descriptor whose
//! first entry ([`LIMIT_ENTRY_KEY`]) carries its name, rate and unit, followed by one entry per
//! `per` key (client address, header value). The service needs no configuration of its own and
//! applies exactly what the Envoy asking has accepted; [`LimitEntry`] is that shared contract.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::names::check_name;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalRateLimitFilter {
    /// Every limit is checked on every request; any one over its rate refuses it (429).
    pub limits: Vec<GlobalLimit>,
    /// How long Envoy waits for the service (default 100 ms); then the request goes on,
    /// unless `failureModeDeny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Refuse requests (500) when the service cannot answer, instead of letting them through.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failure_mode_deny: bool,
    /// Add `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset` to responses.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rate_limit_headers: bool,
}

/// The limits a route or virtual host uses instead of the listener filter's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalRateLimitOverride {
    pub limits: Vec<GlobalLimit>,
}

/// At most this many requests per unit of time, counted once for everyone or separately per
/// value of the `per` keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalLimit {
    /// Names the counter; unique among the filter's limits.
    pub name: String,
    pub requests_per_unit: u32,
    pub unit: RateUnit,
    /// Count separately for each combination of these values (empty: one counter). A request
    /// that lacks a named header is not counted by this limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per: Vec<LimitKey>,
}

/// A fixed window: counters reset at the start of each second, minute, hour or day (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RateUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl RateUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            RateUnit::Second => "second",
            RateUnit::Minute => "minute",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        }
    }

    pub fn seconds(self) -> u64 {
        match self {
            RateUnit::Second => 1,
            RateUnit::Minute => 60,
            RateUnit::Hour => 3_600,
            RateUnit::Day => 86_400,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Second, Self::Minute, Self::Hour, Self::Day]
            .into_iter()
            .find(|u| u.as_str() == s)
    }
}

/// What a limit counts separately by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum LimitKey {
    /// The client's address (the downstream peer, or the trusted `x-forwarded-for` hop).
    RemoteAddress,
    /// A request header's value; pseudo-headers such as `:path` and `:method` work too.
    RequestHeader { header: String },
}

pub const MAX_LIMITS: usize = 16;
const DEFAULT_TIMEOUT_MS: u32 = 100;

impl GlobalRateLimitFilter {
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        validate_limits(&self.limits, &at.field("limits"), errors);
        if !(1..=10_000).contains(&self.timeout_ms()) {
            errors.add(
                at.field("timeoutMs").as_str(),
                "must be between 1 and 10000",
            );
        }
    }
}

impl GlobalRateLimitOverride {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        validate_limits(&self.limits, &at.field("limits"), errors);
    }
}

fn validate_limits(limits: &[GlobalLimit], at: &Path, errors: &mut ValidationErrors) {
    if limits.is_empty() || limits.len() > MAX_LIMITS {
        errors.add(
            at.as_str(),
            format!("between 1 and {MAX_LIMITS} limits are required"),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, limit) in limits.iter().enumerate() {
        let item = at.index(i);
        check_name(&limit.name, &item.field("name"), errors);
        if !names.insert(limit.name.as_str()) {
            errors.add(item.field("name").as_str(), "another limit has this name");
        }
        if limit.requests_per_unit == 0 {
            errors.add(item.field("requestsPerUnit").as_str(), "must be at least 1");
        }
        let mut keys = std::collections::BTreeSet::new();
        for (j, key) in limit.per.iter().enumerate() {
            let at_key = item.field("per").index(j);
            if !keys.insert(key.descriptor_key()) {
                errors.add(at_key.as_str(), "this key is already listed");
            }
            if let LimitKey::RequestHeader { header } = key
                && !is_header_name(header)
            {
                errors.add(
                    at_key.field("header").as_str(),
                    "must be a lower-case header name (or a pseudo-header such as :path)",
                );
            }
        }
    }
}

fn is_header_name(header: &str) -> bool {
    let name = header.strip_prefix(':').unwrap_or(header);
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl LimitKey {
    /// The descriptor entry key Envoy sends for this key.
    pub fn descriptor_key(&self) -> String {
        match self {
            LimitKey::RemoteAddress => "remote_address".to_string(),
            LimitKey::RequestHeader { header } => format!("header:{header}"),
        }
    }
}

/// The descriptor entry key whose value names a limit and its rate.
pub const LIMIT_ENTRY_KEY: &str = "flowplane.limit";

/// A limit as carried in its descriptor's first entry: `"<name>:<requests>/<unit>"`. Names
/// cannot contain `:`, so the value parses back unambiguously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitEntry<'a> {
    pub name: &'a str,
    pub requests_per_unit: u32,
    pub unit: RateUnit,
}

impl<'a> LimitEntry<'a> {
    pub fn of(limit: &'a GlobalLimit) -> Self {
        Self {
            name: &limit.name,
            requests_per_unit: limit.requests_per_unit,
            unit: limit.unit,
        }
    }

    pub fn value(&self) -> String {
        format!(
            "{}:{}/{}",
            self.name,
            self.requests_per_unit,
            self.unit.as_str()
        )
    }

    /// `None` for anything [`LimitEntry::value`] would not have written.
    pub fn parse(value: &'a str) -> Option<Self> {
        let (name, rate) = value.rsplit_once(':')?;
        let (requests, unit) = rate.split_once('/')?;
        let requests_per_unit: u32 = requests.parse().ok()?;
        (!name.is_empty() && requests_per_unit > 0).then_some(())?;
        Some(Self {
            name,
            requests_per_unit,
            unit: RateUnit::parse(unit)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        let filter: GlobalRateLimitFilter = serde_json::from_str(json).expect(json);
        let mut errors = ValidationErrors::new();
        filter.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_filter_has_no_errors() {
        assert!(
            errors(
                r#"{"limits":[{"name":"per-client","requestsPerUnit":10,"unit":"minute",
                    "per":[{"type":"remoteAddress"},{"type":"requestHeader","header":":path"}]}]}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn each_rule_is_reported_at_its_field() {
        assert_eq!(errors(r#"{"limits":[]}"#), ["/limits"]);
        assert_eq!(
            errors(
                r#"{"limits":[{"name":"a","requestsPerUnit":0,"unit":"second"},
                              {"name":"a","requestsPerUnit":1,"unit":"second",
                               "per":[{"type":"requestHeader","header":"X-Key"},
                                      {"type":"remoteAddress"},{"type":"remoteAddress"}]}],
                    "timeoutMs":0}"#
            ),
            [
                "/limits/0/requestsPerUnit",
                "/limits/1/name",
                "/limits/1/per/0/header",
                "/limits/1/per/2",
                "/timeoutMs"
            ]
        );
    }

    #[test]
    fn the_limit_entry_round_trips_and_refuses_anything_else() {
        let limit: GlobalLimit =
            serde_json::from_str(r#"{"name":"per-key","requestsPerUnit":25,"unit":"hour"}"#)
                .unwrap();
        let value = LimitEntry::of(&limit).value();
        assert_eq!(value, "per-key:25/hour");
        assert_eq!(LimitEntry::parse(&value), Some(LimitEntry::of(&limit)));
        for bad in [
            "",
            "x",
            "x:1",
            "x:0/second",
            ":1/second",
            "x:1/week",
            "x:-1/day",
        ] {
            assert_eq!(LimitEntry::parse(bad), None, "{bad}");
        }
    }
}
