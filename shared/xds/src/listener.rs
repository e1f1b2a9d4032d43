//! Listeners: a `ListenerSpec` becomes one Envoy `Listener` bound to an IP and port, with one
//! filter chain ending in a terminal network filter. Each network filter has its own module,
//! and so does each HTTP filter (under `http_filters`).

mod http_connection_manager;
pub(crate) mod http_filters;
mod tcp_proxy;

use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain as EnvoyFilterChain, Listener,
};
use flowplane_domain::error::Path;
use flowplane_domain::listener::{FilterChain, ListenerSpec, NetworkFilter};

use crate::TranslateError;
use crate::envoy_core::{checked_port, socket_address};

pub fn translate_listener(name: &str, spec: &ListenerSpec) -> Result<Listener, TranslateError> {
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
        filter_chains: filter_chains(name, &spec.filter_chains, &root.field("filterChains"))?,
        ..Default::default()
    })
}

/// Without `filter_chain_match` criteria (not modelled yet) two chains would be identical, and
/// Envoy rejects duplicate chains; none at all leaves the listener nothing to run.
fn filter_chains(
    listener: &str,
    chains: &[FilterChain],
    path: &Path,
) -> Result<Vec<EnvoyFilterChain>, TranslateError> {
    match chains {
        [chain] => Ok(vec![filter_chain(listener, chain, &path.index(0))?]),
        [] => Err(TranslateError::at(path, "one filter chain is required")),
        _ => Err(TranslateError::at(
            &path.index(1),
            "only one filter chain is supported without filterChainMatch",
        )),
    }
}

/// Both network filters Flowplane offers are terminal, so a chain holds exactly one.
fn filter_chain(
    listener: &str,
    chain: &FilterChain,
    path: &Path,
) -> Result<EnvoyFilterChain, TranslateError> {
    let filters_path = path.field("filters");
    let filter = match chain.filters.as_slice() {
        [filter] => network_filter(listener, filter, &filters_path.index(0))?,
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
    Ok(EnvoyFilterChain {
        name: chain.name.clone().unwrap_or_default(),
        filters: vec![filter],
        ..Default::default()
    })
}

fn network_filter(
    listener: &str,
    filter: &NetworkFilter,
    path: &Path,
) -> Result<Filter, TranslateError> {
    match filter {
        NetworkFilter::HttpConnectionManager(hcm) => {
            http_connection_manager::translate(listener, hcm, path)
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
        let listener = translate_listener("edge", &s).unwrap();
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
        let listener = translate_listener("l", &with_filters(HCM)).unwrap();
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
            (two_chains, "/filterChains/1"),
            (with_filters(""), "/filterChains/0/filters"),
            (
                with_filters(&format!("{HCM},{HCM}")),
                "/filterChains/0/filters/1",
            ),
        ];
        for (spec, field) in cases {
            let error = translate_listener("l", &spec).unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
    }
}
