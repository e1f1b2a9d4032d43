//! The TCP proxy network filter: every connection goes to one cluster, bytes untouched.

use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy as EnvoyTcpProxy;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
use flowplane_domain::error::Path;
use flowplane_domain::listener::TcpProxy;

use crate::TranslateError;
use crate::envoy_core::{any, given_or};

const FILTER_NAME: &str = "envoy.filters.network.tcp_proxy";

/// The stat prefix defaults to the listener name: unique per team and readable in stats.
pub(super) fn translate(
    listener: &str,
    tcp: &TcpProxy,
    path: &Path,
) -> Result<Filter, TranslateError> {
    let config = EnvoyTcpProxy {
        stat_prefix: given_or(
            tcp.stat_prefix.as_deref(),
            listener,
            &path.field("statPrefix"),
        )?,
        cluster_specifier: Some(ClusterSpecifier::Cluster(tcp.cluster.clone())),
        ..Default::default()
    };
    Ok(Filter {
        name: given_or(tcp.name.as_deref(), FILTER_NAME, &path.field("name"))?,
        config_type: Some(ConfigType::TypedConfig(any(&config))),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use prost::Message;

    fn translated(json: &str) -> Result<Filter, TranslateError> {
        let tcp: TcpProxy = serde_json::from_str(json).expect("test filter is valid");
        translate("db-listener", &tcp, &Path::root().field("filter"))
    }

    fn decoded(filter: &Filter) -> EnvoyTcpProxy {
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!("typed config expected")
        };
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
        );
        EnvoyTcpProxy::decode(any.value.as_slice()).unwrap()
    }

    #[test]
    fn proxies_to_the_cluster_with_the_listener_name_as_stat_prefix() {
        let filter = translated(r#"{"cluster":"db"}"#).unwrap();
        assert_eq!(filter.name, "envoy.filters.network.tcp_proxy");
        let config = decoded(&filter);
        assert_eq!(config.stat_prefix, "db-listener");
        assert_eq!(
            config.cluster_specifier,
            Some(ClusterSpecifier::Cluster("db".into()))
        );
    }

    #[test]
    fn explicit_names_win_but_may_not_be_empty() {
        let filter = translated(r#"{"cluster":"db","statPrefix":"pg","name":"tcp"}"#).unwrap();
        assert_eq!(filter.name, "tcp");
        assert_eq!(decoded(&filter).stat_prefix, "pg");
        let error = translated(r#"{"cluster":"db","statPrefix":""}"#).unwrap_err();
        assert_eq!(error.field, "/filter/statPrefix");
    }
}
