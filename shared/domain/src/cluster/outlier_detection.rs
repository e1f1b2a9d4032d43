//! Passive health checking: Envoy watches real responses and ejects an endpoint that keeps
//! failing for a while, growing the ejection time each time it happens again.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};

/// Every field is optional; `{}` turns outlier detection on with Envoy's defaults (eject after
/// 5 consecutive 5xx, checked every 10 s, for 30 s × the number of ejections, at most 10% of
/// endpoints).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive 5xx answers (or connect failures) that eject an endpoint.
    #[serde(
        rename = "consecutive5xx",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub consecutive_5xx: Option<u32>,
    /// Consecutive 502/503/504 answers that eject an endpoint. Unlike Envoy, setting this
    /// enforces it (Envoy's own default only counts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_failure: Option<u32>,
    /// How often ejections are evaluated and lifted, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u32>,
    /// The first ejection's length in milliseconds; later ones are multiples of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time_ms: Option<u32>,
    /// The most endpoints that may be ejected at once, in percent (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
}

const MAX_DURATION_MS: u32 = 86_400_000;

impl OutlierDetection {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        for (field, value) in [
            ("consecutive5xx", self.consecutive_5xx),
            (
                "consecutiveGatewayFailure",
                self.consecutive_gateway_failure,
            ),
        ] {
            if value == Some(0) {
                errors.add(at.field(field).as_str(), "must be at least 1");
            }
        }
        // Envoy requires both durations to be greater than zero.
        for (field, value) in [
            ("intervalMs", self.interval_ms),
            ("baseEjectionTimeMs", self.base_ejection_time_ms),
        ] {
            if let Some(value) = value
                && !(1..=MAX_DURATION_MS).contains(&value)
            {
                errors.add(
                    at.field(field).as_str(),
                    format!("must be between 1 and {MAX_DURATION_MS} (one day)"),
                );
            }
        }
        if let Some(percent) = self.max_ejection_percent
            && percent > 100
        {
            errors.add(
                at.field("maxEjectionPercent").as_str(),
                "must be between 0 and 100",
            );
        }
    }
}
