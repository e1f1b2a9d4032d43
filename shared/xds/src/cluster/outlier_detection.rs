//! Outlier detection: unset fields are left unset so Envoy applies its own defaults.

use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection as EnvoyOutlierDetection;
use flowplane_domain::cluster::OutlierDetection;

use crate::envoy_core::{milliseconds, u32_value};

/// Envoy counts consecutive gateway failures but enforces them 0% of the time by default; a
/// caller who sets the threshold means it, so it is enforced every time.
const ALWAYS: u32 = 100;

pub(super) fn outlier_detection(outliers: &OutlierDetection) -> EnvoyOutlierDetection {
    EnvoyOutlierDetection {
        consecutive_5xx: outliers.consecutive_5xx.map(u32_value),
        consecutive_gateway_failure: outliers.consecutive_gateway_failure.map(u32_value),
        enforcing_consecutive_gateway_failure: outliers
            .consecutive_gateway_failure
            .map(|_| u32_value(ALWAYS)),
        interval: outliers.interval_ms.map(milliseconds),
        base_ejection_time: outliers.base_ejection_time_ms.map(milliseconds),
        max_ejection_percent: outliers.max_ejection_percent.map(u32_value),
        ..Default::default()
    }
}
