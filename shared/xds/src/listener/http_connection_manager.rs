//! The HTTP connection manager network filter: parses HTTP, fetches its route configuration
//! over RDS on the same ADS stream, and runs the HTTP filter chain ending in the router.

use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::{
    CodecType, RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager as EnvoyHttpConnectionManager, Rds,
};
use flowplane_domain::error::Path;
use flowplane_domain::listener::HttpConnectionManager;

use super::{http_filters, observability};
use crate::TranslateError;
use crate::envoy_core::{ads_config_source, any, given_or, milliseconds, seconds, u32_value};
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions;
use envoy_types::pb::google::protobuf::BoolValue;

fn bool_value(value: bool) -> BoolValue {
    BoolValue { value }
}

const FILTER_NAME: &str = "envoy.filters.network.http_connection_manager";

/// The codec is AUTO so one listener serves HTTP/1.1 and HTTP/2 (h2c or ALPN) alike. The stat
/// prefix defaults to the listener name: unique per team and readable in stats.
pub(super) fn translate(
    team: &str,
    listener: &str,
    hcm: &HttpConnectionManager,
    path: &Path,
) -> Result<Filter, TranslateError> {
    if hcm.route_config_name.is_empty() {
        return Err(TranslateError::at(
            &path.field("routeConfigName"),
            "must not be empty",
        ));
    }
    let options = &hcm.options;
    let config = EnvoyHttpConnectionManager {
        codec_type: CodecType::Auto as i32,
        stat_prefix: given_or(
            hcm.stat_prefix.as_deref(),
            listener,
            &path.field("statPrefix"),
        )?,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: hcm.route_config_name.clone(),
        })),
        // The team's own access logs, then the one that counts usage.
        access_log: hcm
            .access_logs
            .iter()
            .map(observability::access_log)
            .chain(std::iter::once(crate::learning::usage_log(listener)))
            .collect(),
        tracing: hcm
            .tracing
            .as_ref()
            .map(|t| observability::tracing(t, listener)),
        use_remote_address: options.use_remote_address.then(|| bool_value(true)),
        xff_num_trusted_hops: options.xff_num_trusted_hops.unwrap_or(0),
        request_timeout: options.request_timeout_ms.map(milliseconds),
        request_headers_timeout: options.request_headers_timeout_ms.map(milliseconds),
        stream_idle_timeout: options.stream_idle_timeout_seconds.map(seconds),
        common_http_protocol_options: options.idle_timeout_seconds.map(|s| HttpProtocolOptions {
            idle_timeout: Some(seconds(s)),
            ..Default::default()
        }),
        max_request_headers_kb: options.max_request_headers_kb.map(u32_value),
        server_name: options.server_name.clone().unwrap_or_default(),
        normalize_path: options.normalize_path.then(|| bool_value(true)),
        merge_slashes: options.merge_slashes,
        preserve_external_request_id: options.preserve_external_request_id,
        http_filters: http_filters::translate(
            &hcm.http_filters,
            team,
            listener,
            &path.field("httpFilters"),
        )?,
        ..Default::default()
    };
    Ok(Filter {
        name: given_or(hcm.name.as_deref(), FILTER_NAME, &path.field("name"))?,
        config_type: Some(ConfigType::TypedConfig(any(&config))),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
    use envoy_types::pb::envoy::config::core::v3::{AggregatedConfigSource, ApiVersion};
    use prost::Message;

    fn translated(json: &str) -> Result<Filter, TranslateError> {
        let hcm: HttpConnectionManager = serde_json::from_str(json).expect("test filter is valid");
        translate("team", "edge", &hcm, &Path::root().field("filter"))
    }

    fn decoded(filter: &Filter) -> EnvoyHttpConnectionManager {
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!("typed config expected")
        };
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        );
        EnvoyHttpConnectionManager::decode(any.value.as_slice()).unwrap()
    }

    #[test]
    fn fetches_routes_over_ads_and_ends_in_the_router() {
        let filter = translated(r#"{"routeConfigName":"edge-routes"}"#).unwrap();
        assert_eq!(filter.name, "envoy.filters.network.http_connection_manager");
        let hcm = decoded(&filter);
        assert_eq!(hcm.codec_type, CodecType::Auto as i32);
        assert_eq!(hcm.stat_prefix, "edge");
        let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier else {
            panic!("RDS expected")
        };
        assert_eq!(rds.route_config_name, "edge-routes");
        let source = rds.config_source.unwrap();
        assert_eq!(source.resource_api_version, ApiVersion::V3 as i32);
        assert_eq!(
            source.config_source_specifier,
            Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {}))
        );
        let names: Vec<_> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["flowplane.learning/edge", "envoy.filters.http.router"]
        );
    }

    #[test]
    fn explicit_names_and_prefixes_win() {
        let filter =
            translated(r#"{"routeConfigName":"r","name":"hcm","statPrefix":"ingress"}"#).unwrap();
        assert_eq!(filter.name, "hcm");
        assert_eq!(decoded(&filter).stat_prefix, "ingress");
    }

    #[test]
    fn inexpressible_fields_are_reported_at_their_rest_path() {
        let cases = [
            (r#"{"routeConfigName":""}"#, "/filter/routeConfigName"),
            (
                r#"{"routeConfigName":"r","statPrefix":""}"#,
                "/filter/statPrefix",
            ),
            (r#"{"routeConfigName":"r","name":""}"#, "/filter/name"),
        ];
        for (json, field) in cases {
            assert_eq!(translated(json).unwrap_err().field, field, "{json}");
        }
    }
}
