//! The limiter against the real Redis: two limiters (as two replicas would) share one count,
//! and a Redis that cannot be reached is an error Envoy turns into its failure mode, never a
//! silent "OK".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use flowplane_domain::filters::global_rate_limit::LIMIT_ENTRY_KEY;
use flowplane_ratelimit::RateLimiter;
use flowplane_ratelimit::counters::Counters;

fn redis_url() -> String {
    std::env::var("FLOWPLANE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A prefix no other run shares, so counts start at zero.
fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("fp-test-{}-{nanos}", std::process::id())
}

fn request(client: &str) -> RateLimitRequest {
    let entry = |key: &str, value: &str| Entry {
        key: key.into(),
        value: value.into(),
    };
    RateLimitRequest {
        domain: "team-a".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![
                entry(LIMIT_ENTRY_KEY, "per-client:2/day"),
                entry("header:x-client", client),
            ],
            ..Default::default()
        }],
        hits_addend: 0,
    }
}

#[tokio::test]
async fn replicas_share_one_count_in_redis() {
    let prefix = unique_prefix();
    let one = RateLimiter::new(Counters::redis(&redis_url()).unwrap(), &prefix);
    let two = RateLimiter::new(Counters::redis(&redis_url()).unwrap(), &prefix);
    let mut codes = Vec::new();
    for limiter in [&one, &two, &one] {
        let response = limiter.decide(&request("alice")).await.unwrap();
        codes.push(Code::try_from(response.overall_code).unwrap());
    }
    assert_eq!(codes, [Code::Ok, Code::Ok, Code::OverLimit]);
    let bob = two.decide(&request("bob")).await.unwrap();
    assert_eq!(bob.overall_code, Code::Ok as i32);
    assert_eq!(bob.statuses[0].limit_remaining, 1);
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_an_answer() {
    let limiter = RateLimiter::new(Counters::redis("redis://127.0.0.1:1").unwrap(), "x");
    let status = limiter.decide(&request("alice")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
}
