//! Local rate limiting: a token bucket inside each Envoy worker set, no external service.

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, HttpStatus, StatusCode, TokenBucket};
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::local_rate_limit::LocalRateLimitFilter;

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::{any, seconds, u32_value};

const STAT_PREFIX: &str = "http_local_rate_limiter";

impl HttpFilterConfig for LocalRateLimitFilter {
    const NAME: &'static str = "envoy.filters.http.local_ratelimit";

    fn typed_config(&self, path: &Path) -> Result<Any, TranslateError> {
        config(self, path).map(|c| any(&c))
    }
}

/// The same message serves as filter config and as per-route override. `filter_enabled` and
/// `filter_enforced` default to 0%, which would make the bucket a no-op, so both are 100%.
pub(crate) fn config(
    limit: &LocalRateLimitFilter,
    path: &Path,
) -> Result<LocalRateLimit, TranslateError> {
    let code = StatusCode::try_from(i32::from(limit.status_code())).map_err(|_| {
        TranslateError::at(
            &path.field("statusCode"),
            "Envoy does not know this status code",
        )
    })?;
    let everyone = || RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: 100,
            denominator: DenominatorType::Hundred as i32,
        }),
        runtime_key: String::new(),
    };
    Ok(LocalRateLimit {
        stat_prefix: STAT_PREFIX.to_string(),
        status: Some(HttpStatus { code: code as i32 }),
        token_bucket: Some(TokenBucket {
            max_tokens: limit.max_tokens,
            tokens_per_fill: Some(u32_value(limit.tokens_per_fill())),
            fill_interval: Some(seconds(limit.fill_interval_seconds)),
        }),
        filter_enabled: Some(everyone()),
        filter_enforced: Some(everyone()),
        ..Default::default()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn limit(json: &str) -> LocalRateLimitFilter {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_bucket_is_enabled_and_enforced_for_every_request() {
        let c = config(&limit(r#"{"maxTokens":5}"#), &Path::root()).unwrap();
        let bucket = c.token_bucket.unwrap();
        assert_eq!(bucket.max_tokens, 5);
        assert_eq!(bucket.tokens_per_fill, Some(u32_value(5)));
        assert_eq!(bucket.fill_interval, Some(seconds(1)));
        assert_eq!(c.status.unwrap().code, StatusCode::TooManyRequests as i32);
        for share in [c.filter_enabled, c.filter_enforced] {
            assert_eq!(share.unwrap().default_value.unwrap().numerator, 100);
        }
    }

    #[test]
    fn a_status_envoy_does_not_know_is_reported() {
        let error = config(
            &limit(r#"{"maxTokens":5,"statusCode":430}"#),
            &Path::root().field("filter"),
        )
        .unwrap_err();
        assert_eq!(error.field, "/filter/statusCode");
    }
}
