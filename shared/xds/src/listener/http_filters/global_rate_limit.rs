//! Global rate limiting: Envoy asks Flowplane's `ratelimit` service (through the bootstrap's
//! static [`RATELIMIT_CLUSTER`]) before forwarding. The team is the rate-limit domain, so
//! teams never share counters; each limit is one descriptor carrying its own rate (see
//! `flowplane_domain::filters::global_rate_limit`).

use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{ApiVersion, GrpcService};
use envoy_types::pb::envoy::config::ratelimit::v3::RateLimitServiceConfig;
use envoy_types::pb::envoy::config::route::v3::RateLimit as RouteRateLimit;
use envoy_types::pb::envoy::config::route::v3::rate_limit::Action;
use envoy_types::pb::envoy::config::route::v3::rate_limit::action::{
    ActionSpecifier, GenericKey, RemoteAddress, RequestHeaders,
};
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3::rate_limit::XRateLimitHeadersRfcVersion;
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3::{
    RateLimit, RateLimitPerRoute,
};
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::global_rate_limit::{
    GlobalLimit, GlobalRateLimitFilter, GlobalRateLimitOverride, LIMIT_ENTRY_KEY, LimitEntry,
    LimitKey,
};

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::bootstrap::RATELIMIT_CLUSTER;
use crate::envoy_core::{any, milliseconds};

/// The filter as one team's listener uses it: the team names the domain.
pub(super) struct TeamRateLimit<'a> {
    pub team: &'a str,
    pub filter: &'a GlobalRateLimitFilter,
}

impl HttpFilterConfig for TeamRateLimit<'_> {
    const NAME: &'static str = "envoy.filters.http.ratelimit";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        let headers = if self.filter.rate_limit_headers {
            XRateLimitHeadersRfcVersion::DraftVersion03
        } else {
            XRateLimitHeadersRfcVersion::Off
        };
        Ok(any(&RateLimit {
            domain: self.team.to_string(),
            timeout: Some(milliseconds(self.filter.timeout_ms())),
            failure_mode_deny: self.filter.failure_mode_deny,
            rate_limit_service: Some(RateLimitServiceConfig {
                grpc_service: Some(GrpcService {
                    target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                        cluster_name: RATELIMIT_CLUSTER.to_string(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
                transport_api_version: ApiVersion::V3 as i32,
            }),
            enable_x_ratelimit_headers: headers as i32,
            rate_limits: descriptors(&self.filter.limits),
            ..Default::default()
        }))
    }
}

/// A route's own limits; the domain stays the listener filter's (the team's).
pub(crate) fn per_route(over: &GlobalRateLimitOverride) -> RateLimitPerRoute {
    RateLimitPerRoute {
        rate_limits: descriptors(&over.limits),
        ..Default::default()
    }
}

/// One descriptor per limit: the limit entry, then one entry per key it counts by.
fn descriptors(limits: &[GlobalLimit]) -> Vec<RouteRateLimit> {
    limits
        .iter()
        .map(|limit| {
            let limit_entry = ActionSpecifier::GenericKey(GenericKey {
                descriptor_key: LIMIT_ENTRY_KEY.to_string(),
                descriptor_value: LimitEntry::of(limit).value(),
                ..Default::default()
            });
            let keys = limit.per.iter().map(|key| match key {
                LimitKey::RemoteAddress => ActionSpecifier::RemoteAddress(RemoteAddress {}),
                LimitKey::RequestHeader { header } => {
                    ActionSpecifier::RequestHeaders(RequestHeaders {
                        header_name: header.clone(),
                        descriptor_key: key.descriptor_key(),
                        skip_if_absent: false,
                    })
                }
            });
            RouteRateLimit {
                actions: std::iter::once(limit_entry)
                    .chain(keys)
                    .map(|specifier| Action {
                        action_specifier: Some(specifier),
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .collect()
}
