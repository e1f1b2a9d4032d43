//! Listeners: a `ListenerSpec` becomes one Envoy `Listener` bound to an IP and port, with one
//! filter chain ending in a terminal network filter. Each network filter has its own module,
//! and so does each HTTP filter (under `http_filters`).

mod http_connection_manager;
pub(crate) mod http_filters;
mod observability;
mod tcp_proxy;

use envoy_types::pb::envoy::config::listener::v3::listener_filter::ConfigType as ListenerFilterConfig;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain as EnvoyFilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use flowplane_domain::error::Path;
use flowplane_domain::listener::{FilterChain, ListenerSpec, NetworkFilter};

use crate::TranslateError;
use crate::envoy_core::{any, checked_port, socket_address};
use crate::tls::downstream_transport_socket;

const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// `team` owns the listener (it keys team-wide filter state such as global rate limits).
pub fn translate_listener(
    team: &str,
    name: &str,
    spec: &ListenerSpec,
) -> Result<Listener, TranslateError> {
    let root = Path::root();
    if spec.address.parse::<std::net::IpAddr>().is_err() {
        // Envoy binds listeners to IP literals; it never resolves a name for them.
        let message = "must be an IP address such as 0.0.0.0";
        return Err(TranslateError::at(&root.field("address"), message));
    }
    let port = checked_port(spec.port, &root.field("port"))?;
    Ok(Listener {
        name: name.to_string(),
        address: Some(socket_address(&spec.address, port)),
        filter_chains: filter_chains(team, name, &spec.filter_chains, &root.field("filterChains"))?,
        listener_filters: listener_filters(&spec.filter_chains),
        ..Default::default()
    })
}

/// Envoy rejects chains it cannot tell apart, and a listener with none has nothing to run.
/// Chains differ only by server names, so each name may belong to one chain and at most one
/// chain may go without (the domain rules say the same; this is the backstop).
fn filter_chains(
    team: &str,
    listener: &str,
    chains: &[FilterChain],
    path: &Path,
) -> Result<Vec<EnvoyFilterChain>, TranslateError> {
    if chains.is_empty() {
        return Err(TranslateError::at(path, "one filter chain is required"));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut catch_all = false;
    let mut translated = Vec::with_capacity(chains.len());
    for (i, chain) in chains.iter().enumerate() {
        let at = path.index(i);
        let distinct = if chain.server_names.is_empty() {
            !std::mem::replace(&mut catch_all, true)
        } else {
            chain.server_names.iter().all(|n| seen.insert(n.as_str()))
        };
        if !distinct {
            let message = "matches the same connections as an earlier filter chain";
            return Err(TranslateError::at(&at.field("serverNames"), message));
        }
        translated.push(filter_chain(team, listener, chain, &at)?);
    }
    Ok(translated)
}

/// Server names are matched on the TLS ClientHello's SNI, which only the TLS inspector reads;
/// it also lets a TLS chain coexist with a plaintext one.
fn listener_filters(chains: &[FilterChain]) -> Vec<ListenerFilter> {
    let needs_inspector = chains
        .iter()
        .any(|c| c.tls.is_some() || !c.server_names.is_empty());
    if !needs_inspector {
        return Vec::new();
    }
    vec![ListenerFilter {
        name: TLS_INSPECTOR.to_string(),
        config_type: Some(ListenerFilterConfig::TypedConfig(any(
            &TlsInspector::default(),
        ))),
        ..Default::default()
    }]
}

/// Both network filters Flowplane offers are terminal, so a chain holds exactly one.
fn filter_chain(
    team: &str,
    listener: &str,
    chain: &FilterChain,
    path: &Path,
) -> Result<EnvoyFilterChain, TranslateError> {
    let filters_path = path.field("filters");
    let filter = match chain.filters.as_slice() {
        [filter] => network_filter(team, listener, filter, &filters_path.index(0))?,
        [] => {
            let message =
                "a terminal network filter (httpConnectionManager or tcpProxy) is required";
            return Err(TranslateError::at(&filters_path, message));
        }
        _ => {
            let message = "nothing may follow a terminal network filter";
            return Err(TranslateError::at(&filters_path.index(1), message));
        }
    };
    let filter_chain_match = (!chain.server_names.is_empty()).then(|| FilterChainMatch {
        server_names: chain.server_names.clone(),
        ..Default::default()
    });
    Ok(EnvoyFilterChain {
        name: chain.name.clone().unwrap_or_default(),
        filter_chain_match,
        filters: vec![filter],
        transport_socket: chain.tls.as_ref().map(downstream_transport_socket),
        ..Default::default()
    })
}

fn network_filter(
    team: &str,
    listener: &str,
    filter: &NetworkFilter,
    path: &Path,
) -> Result<Filter, TranslateError> {
    match filter {
        NetworkFilter::HttpConnectionManager(hcm) => {
            http_connection_manager::translate(team, listener, hcm, path)
        }
        NetworkFilter::TcpProxy(tcp) => tcp_proxy::translate(listener, tcp, path),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::address::Address;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;

    fn spec(json: &str) -> ListenerSpec {
        serde_json::from_str(json).expect("test listener is valid")
    }

    const HCM: &str = r#"{"type":"httpConnectionManager","routeConfigName":"r"}"#;

    fn with_filters(filters: &str) -> ListenerSpec {
        spec(&format!(
            r#"{{"port":10000,"filterChains":[{{"filters":[{filters}]}}]}}"#
        ))
    }

    #[test]
    fn binds_the_address_and_port_and_names_the_chain() {
        let s = spec(&format!(
            r#"{{"address":"::","port":8443,"filterChains":[{{"name":"main","filters":[{HCM}]}}]}}"#
        ));
        let listener = translate_listener("team", "edge", &s).unwrap();
        assert_eq!(listener.name, "edge");
        let Some(Address::SocketAddress(socket)) = listener.address.unwrap().address else {
            panic!("socket address expected")
        };
        assert_eq!(socket.address, "::");
        assert_eq!(socket.port_specifier, Some(PortSpecifier::PortValue(8443)));
        assert_eq!(listener.filter_chains.len(), 1);
        assert_eq!(listener.filter_chains[0].name, "main");
        assert_eq!(listener.filter_chains[0].filters.len(), 1);
    }

    #[test]
    fn the_address_defaults_to_all_ipv4_interfaces() {
        let listener = translate_listener("team", "l", &with_filters(HCM)).unwrap();
        let Some(Address::SocketAddress(socket)) = listener.address.unwrap().address else {
            panic!("socket address expected")
        };
        assert_eq!(socket.address, "0.0.0.0");
    }

    #[test]
    fn inexpressible_listeners_are_reported_at_their_rest_path() {
        let mut named_address = with_filters(HCM);
        named_address.address = "localhost".into();
        let mut big_port = with_filters(HCM);
        big_port.port = 70000;
        let mut no_chains = with_filters(HCM);
        no_chains.filter_chains.clear();
        let mut two_chains = with_filters(HCM);
        two_chains
            .filter_chains
            .push(two_chains.filter_chains[0].clone());
        let cases = [
            (named_address, "/address"),
            (big_port, "/port"),
            (no_chains, "/filterChains"),
            (two_chains, "/filterChains/1/serverNames"),
            (with_filters(""), "/filterChains/0/filters"),
            (
                with_filters(&format!("{HCM},{HCM}")),
                "/filterChains/0/filters/1",
            ),
        ];
        for (spec, field) in cases {
            let error = translate_listener("team", "l", &spec).unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
    }
}
