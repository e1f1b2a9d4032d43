//! Circuit breakers: one Envoy `Thresholds` entry per configured routing priority.

use envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers as EnvoyCircuitBreakers;
use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
use flowplane_domain::cluster::{CircuitBreakerThresholds, CircuitBreakers};

use crate::envoy_core::u32_value;

pub(super) fn circuit_breakers(breakers: &CircuitBreakers) -> EnvoyCircuitBreakers {
    let by_priority = [
        (RoutingPriority::Default, &breakers.default_priority),
        (RoutingPriority::High, &breakers.high),
    ];
    EnvoyCircuitBreakers {
        thresholds: by_priority
            .into_iter()
            .filter_map(|(priority, limits)| limits.as_ref().map(|l| thresholds(priority, l)))
            .collect(),
        ..Default::default()
    }
}

fn thresholds(priority: RoutingPriority, limits: &CircuitBreakerThresholds) -> Thresholds {
    Thresholds {
        priority: priority as i32,
        max_connections: limits.max_connections.map(u32_value),
        max_pending_requests: limits.max_pending_requests.map(u32_value),
        max_requests: limits.max_requests.map(u32_value),
        max_retries: limits.max_retries.map(u32_value),
        ..Default::default()
    }
}
