//! What one `ShouldRateLimit` call decides. Each descriptor Envoy sends is checked on its own:
//! its first entry names the limit and rate (`flowplane_domain`'s [`LimitEntry`]), the rest say
//! whose counter it is. Descriptors without a limit entry are not limited. The domain is the
//! team, so no two teams ever share a counter.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration;
use flowplane_domain::filters::global_rate_limit::{LIMIT_ENTRY_KEY, LimitEntry, RateUnit};
use sha2::{Digest, Sha256};

use crate::counters::Increment;

/// One descriptor's limit, its counter for the current window, and when that window ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The descriptor's position in the request (statuses answer in the same order).
    pub descriptor: usize,
    pub requests_per_unit: u32,
    pub unit: RateUnit,
    pub increment: Increment,
    pub seconds_until_reset: u64,
}

/// The counters a request touches at `now` (seconds since the Unix epoch). Windows are
/// aligned to the epoch, so every replica agrees on them without talking.
pub fn checks(prefix: &str, request: &RateLimitRequest, now: u64) -> Vec<Check> {
    let request_hits = u64::from(request.hits_addend.max(1));
    request
        .descriptors
        .iter()
        .enumerate()
        .filter_map(|(index, descriptor)| {
            let limit = limit_of(descriptor)?;
            let window = limit.unit.seconds();
            let window_start = now - now % window;
            let hits = descriptor
                .hits_addend
                .as_ref()
                .map_or(request_hits, |h| h.value);
            Some(Check {
                descriptor: index,
                requests_per_unit: limit.requests_per_unit,
                unit: limit.unit,
                increment: Increment {
                    key: counter_key(prefix, &request.domain, &limit, descriptor, window_start),
                    hits,
                    ttl_seconds: window_start + window - now,
                },
                seconds_until_reset: window_start + window - now,
            })
        })
        .collect()
}

fn limit_of(descriptor: &RateLimitDescriptor) -> Option<LimitEntry<'_>> {
    let first = descriptor.entries.first()?;
    (first.key == LIMIT_ENTRY_KEY)
        .then(|| LimitEntry::parse(&first.value))
        .flatten()
}

/// The counter's Redis key: the domain, the limit's name and unit, and the values it counts
/// by, hashed, so header values and client addresses are never stored as they came and any
/// value makes a key of the same size. The rate itself is left out: raising a limit keeps
/// the window's count.
fn counter_key(
    prefix: &str,
    domain: &str,
    limit: &LimitEntry,
    descriptor: &RateLimitDescriptor,
    window_start: u64,
) -> String {
    let mut hash = Sha256::new();
    for part in [domain, limit.name, limit.unit.as_str()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for entry in descriptor.entries.iter().skip(1) {
        // Length-prefixed, so no choice of values can make two descriptors collide.
        for part in [&entry.key, &entry.value] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
    }
    format!(
        "{prefix}:ratelimit:{}:{window_start}",
        hex::encode(hash.finalize())
    )
}

/// The answer for `checks` whose counters now stand at `counts` (same order).
pub fn response(request: &RateLimitRequest, checks: &[Check], counts: &[u64]) -> RateLimitResponse {
    let mut statuses: Vec<DescriptorStatus> = request
        .descriptors
        .iter()
        .map(|_| DescriptorStatus {
            code: Code::Ok as i32,
            ..Default::default()
        })
        .collect();
    let mut over = false;
    for (check, &count) in checks.iter().zip(counts) {
        let limit = u64::from(check.requests_per_unit);
        let over_limit = count > limit;
        over |= over_limit;
        statuses[check.descriptor] = DescriptorStatus {
            code: if over_limit {
                Code::OverLimit
            } else {
                Code::Ok
            } as i32,
            current_limit: Some(RateLimit {
                name: String::new(),
                requests_per_unit: check.requests_per_unit,
                unit: unit(check.unit) as i32,
            }),
            limit_remaining: u32::try_from(limit.saturating_sub(count)).unwrap_or(u32::MAX),
            duration_until_reset: Some(Duration {
                seconds: i64::try_from(check.seconds_until_reset).unwrap_or(i64::MAX),
                nanos: 0,
            }),
            ..Default::default()
        };
    }
    RateLimitResponse {
        overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
        statuses,
        ..Default::default()
    }
}

fn unit(unit: RateUnit) -> Unit {
    match unit {
        RateUnit::Second => Unit::Second,
        RateUnit::Minute => Unit::Minute,
        RateUnit::Hour => Unit::Hour,
        RateUnit::Day => Unit::Day,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;

    fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(key, value)| Entry {
                    key: key.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn request(domain: &str, descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
        RateLimitRequest {
            domain: domain.into(),
            descriptors,
            hits_addend: 0,
        }
    }

    const NOW: u64 = 1_700_000_010; // 30 s into a minute

    #[test]
    fn only_descriptors_with_a_limit_entry_are_counted() {
        let r = request(
            "team-a",
            vec![
                descriptor(&[("remote_address", "10.0.0.1")]),
                descriptor(&[
                    (LIMIT_ENTRY_KEY, "per-client:5/minute"),
                    ("remote_address", "10.0.0.1"),
                ]),
                descriptor(&[(LIMIT_ENTRY_KEY, "garbage")]),
            ],
        );
        let checks = checks("fp", &r, NOW);
        assert_eq!(checks.len(), 1);
        let check = &checks[0];
        assert_eq!(check.descriptor, 1);
        assert_eq!((check.requests_per_unit, check.unit), (5, RateUnit::Minute));
        assert_eq!(check.increment.hits, 1);
        assert_eq!(check.seconds_until_reset, 30);
        assert_eq!(check.increment.ttl_seconds, 30);
        assert!(check.increment.key.starts_with("fp:ratelimit:"));
        assert!(
            check.increment.key.ends_with(":1699999980"),
            "{}",
            check.increment.key
        );
        assert!(
            !check.increment.key.contains("10.0.0.1"),
            "values are hashed"
        );
    }

    #[test]
    fn counters_are_separate_per_team_value_and_limit_but_not_per_rate() {
        let key = |domain: &str, limit: &str, address: &str| {
            let r = request(
                domain,
                vec![descriptor(&[
                    (LIMIT_ENTRY_KEY, limit),
                    ("remote_address", address),
                ])],
            );
            checks("fp", &r, NOW).remove(0).increment.key
        };
        let base = key("team-a", "l:5/minute", "10.0.0.1");
        assert_ne!(base, key("team-b", "l:5/minute", "10.0.0.1"));
        assert_ne!(base, key("team-a", "m:5/minute", "10.0.0.1"));
        assert_ne!(base, key("team-a", "l:5/hour", "10.0.0.1"));
        assert_ne!(base, key("team-a", "l:5/minute", "10.0.0.2"));
        assert_eq!(base, key("team-a", "l:9/minute", "10.0.0.1"));
    }

    #[test]
    fn the_descriptor_hits_addend_overrides_the_request_one() {
        let mut d = descriptor(&[(LIMIT_ENTRY_KEY, "l:5/second")]);
        let mut r = request("t", vec![d.clone()]);
        r.hits_addend = 3;
        assert_eq!(checks("fp", &r, NOW)[0].increment.hits, 3);
        d.hits_addend = Some(envoy_types::pb::google::protobuf::UInt64Value { value: 7 });
        r.descriptors = vec![d];
        assert_eq!(checks("fp", &r, NOW)[0].increment.hits, 7);
    }

    #[test]
    fn over_any_limit_is_over_limit_overall() {
        let r = request(
            "t",
            vec![
                descriptor(&[(LIMIT_ENTRY_KEY, "a:2/second")]),
                descriptor(&[("other", "x")]),
                descriptor(&[(LIMIT_ENTRY_KEY, "b:10/second")]),
            ],
        );
        let checks = checks("fp", &r, NOW);
        let ok = response(&r, &checks, &[2, 10]);
        assert_eq!(ok.overall_code, Code::Ok as i32);
        assert_eq!(ok.statuses.len(), 3);
        assert_eq!(ok.statuses[0].limit_remaining, 0);
        assert_eq!(ok.statuses[1].current_limit, None);
        let over = response(&r, &checks, &[3, 1]);
        assert_eq!(over.overall_code, Code::OverLimit as i32);
        assert_eq!(over.statuses[0].code, Code::OverLimit as i32);
        assert_eq!(over.statuses[2].code, Code::Ok as i32);
        assert_eq!(over.statuses[2].limit_remaining, 9);
    }
}
