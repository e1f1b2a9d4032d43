//! Clusters: a `ClusterSpec` becomes one Envoy `Cluster` with its endpoints inline (no EDS),
//! optional TLS origination, and the upstream HTTP protocol it speaks.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily as EnvoyDnsLookupFamily,
    LbPolicy as EnvoyLbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    AutoHttpConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
};
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::cluster::{
    ClusterSpec, DnsLookupFamily, Endpoint, LbPolicy, UpstreamProtocol,
};
use flowplane_domain::error::Path;

use crate::TranslateError;
use crate::envoy_core::{any, checked_port, seconds, socket_address, u32_value};

/// Envoy looks upstream HTTP options up under this key in `typed_extension_protocol_options`.
pub(crate) const HTTP_PROTOCOL_OPTIONS_KEY: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

pub fn translate_cluster(name: &str, spec: &ClusterSpec) -> Result<Cluster, TranslateError> {
    check_timeout(spec)?;
    check_protocol(spec)?;
    Ok(Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(discovery_type(spec) as i32)),
        connect_timeout: Some(seconds(spec.connect_timeout_seconds)),
        lb_policy: lb_policy(spec.lb_policy) as i32,
        dns_lookup_family: dns_lookup_family(spec.dns_lookup_family) as i32,
        load_assignment: Some(load_assignment(name, &spec.endpoints)?),
        transport_socket: transport_socket(spec),
        typed_extension_protocol_options: protocol_options(spec.protocol_type),
        ..Default::default()
    })
}

/// IP literals need no resolver, so an all-IP cluster is STATIC; any name makes Envoy resolve
/// every endpoint (STRICT_DNS keeps all resolved addresses, unlike LOGICAL_DNS).
fn discovery_type(spec: &ClusterSpec) -> DiscoveryType {
    if spec.all_endpoints_are_ips() {
        DiscoveryType::Static
    } else {
        DiscoveryType::StrictDns
    }
}

fn lb_policy(policy: LbPolicy) -> EnvoyLbPolicy {
    match policy {
        LbPolicy::RoundRobin => EnvoyLbPolicy::RoundRobin,
        LbPolicy::LeastRequest => EnvoyLbPolicy::LeastRequest,
        LbPolicy::Random => EnvoyLbPolicy::Random,
        LbPolicy::RingHash => EnvoyLbPolicy::RingHash,
        LbPolicy::Maglev => EnvoyLbPolicy::Maglev,
    }
}

fn dns_lookup_family(family: DnsLookupFamily) -> EnvoyDnsLookupFamily {
    match family {
        DnsLookupFamily::Auto => EnvoyDnsLookupFamily::Auto,
        DnsLookupFamily::V4Only => EnvoyDnsLookupFamily::V4Only,
        DnsLookupFamily::V6Only => EnvoyDnsLookupFamily::V6Only,
        DnsLookupFamily::V4Preferred => EnvoyDnsLookupFamily::V4Preferred,
        DnsLookupFamily::All => EnvoyDnsLookupFamily::All,
    }
}

/// Envoy requires a connect timeout greater than zero.
fn check_timeout(spec: &ClusterSpec) -> Result<(), TranslateError> {
    if spec.connect_timeout_seconds == 0 {
        let path = Path::root().field("connectTimeoutSeconds");
        return Err(TranslateError::at(&path, "must be greater than 0"));
    }
    Ok(())
}

/// Settings that only mean something with TLS cannot be expressed on a plaintext cluster.
fn check_protocol(spec: &ClusterSpec) -> Result<(), TranslateError> {
    if spec.use_tls {
        return Ok(());
    }
    if spec.protocol_type == UpstreamProtocol::Auto {
        let path = Path::root().field("protocolType");
        return Err(TranslateError::at(
            &path,
            "AUTO negotiates the protocol with ALPN, which needs useTls: true",
        ));
    }
    if spec.tls_server_name.is_some() {
        let path = Path::root().field("tlsServerName");
        return Err(TranslateError::at(&path, "requires useTls: true"));
    }
    Ok(())
}

/// Endpoints travel inline in one locality; Flowplane has no EDS of its own.
fn load_assignment(
    name: &str,
    endpoints: &[Endpoint],
) -> Result<ClusterLoadAssignment, TranslateError> {
    let path = Path::root().field("endpoints");
    if endpoints.is_empty() {
        return Err(TranslateError::at(
            &path,
            "at least one endpoint is required",
        ));
    }
    let lb_endpoints = endpoints
        .iter()
        .enumerate()
        .map(|(i, endpoint)| lb_endpoint(endpoint, &path.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn lb_endpoint(endpoint: &Endpoint, path: &Path) -> Result<LbEndpoint, TranslateError> {
    let port = checked_port(endpoint.port, &path.field("port"))?;
    if endpoint.weight == Some(0) {
        // Envoy rejects a zero endpoint weight instead of treating it as "drain".
        return Err(TranslateError::at(
            &path.field("weight"),
            "must be at least 1",
        ));
    }
    Ok(LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(EnvoyEndpoint {
            address: Some(socket_address(&endpoint.host, port)),
            ..Default::default()
        })),
        load_balancing_weight: endpoint.weight.map(u32_value),
        ..Default::default()
    })
}

/// No validation context: `ClusterSpec` carries no trust anchors yet, so the upstream
/// certificate is not verified; TLS here gives confidentiality, not upstream authentication.
fn transport_socket(spec: &ClusterSpec) -> Option<TransportSocket> {
    if !spec.use_tls {
        return None;
    }
    let tls = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: alpn_protocols(spec.protocol_type),
            ..Default::default()
        }),
        sni: server_name(spec),
        ..Default::default()
    };
    Some(TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(ConfigType::TypedConfig(any(&tls))),
    })
}

/// SNI defaults to the first endpoint's host name; an IP literal is not a valid SNI value
/// (RFC 6066), so an IP-addressed upstream gets none unless `tlsServerName` says otherwise.
fn server_name(spec: &ClusterSpec) -> String {
    if let Some(name) = &spec.tls_server_name {
        return name.clone();
    }
    spec.endpoints
        .first()
        .map(|e| e.host.as_str())
        .filter(|host| host.parse::<std::net::IpAddr>().is_err())
        .unwrap_or_default()
        .to_string()
}

/// Many TLS servers only speak HTTP/2 when the client offers `h2` in ALPN, and AUTO chooses
/// between HTTP/2 and HTTP/1.1 from what ALPN negotiates.
fn alpn_protocols(protocol: UpstreamProtocol) -> Vec<String> {
    let protocols: &[&str] = match protocol {
        UpstreamProtocol::Http1 => &[],
        UpstreamProtocol::Http2 => &["h2"],
        UpstreamProtocol::Auto => &["h2", "http/1.1"],
    };
    protocols.iter().map(|p| p.to_string()).collect()
}

/// HTTP/1.1 is Envoy's default, so it needs no options. The map holds at most one entry:
/// prost encodes maps in iteration order, and one entry keeps the bytes (and so the resource
/// version) deterministic.
fn protocol_options(protocol: UpstreamProtocol) -> HashMap<String, Any> {
    let options = match protocol {
        UpstreamProtocol::Http1 => return HashMap::new(),
        UpstreamProtocol::Http2 => {
            UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Default::default())),
            })
        }
        UpstreamProtocol::Auto => UpstreamProtocolOptions::AutoConfig(AutoHttpConfig {
            http_protocol_options: Some(Default::default()),
            http2_protocol_options: Some(Default::default()),
            ..Default::default()
        }),
    };
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(options),
        ..Default::default()
    };
    HashMap::from([(HTTP_PROTOCOL_OPTIONS_KEY.to_string(), any(&options))])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::address;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use prost::Message;

    fn spec(body: &str) -> ClusterSpec {
        flowplane_domain::parse_spec::<ClusterSpec>(body)
            .expect("test body is valid")
            .spec
    }

    fn endpoint(host: &str, port: u32) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            port,
            weight: None,
        }
    }

    fn lb_endpoints(cluster: &Cluster) -> &[LbEndpoint] {
        &cluster.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints
    }

    fn address_of(lb: &LbEndpoint) -> (String, u32) {
        let Some(HostIdentifier::Endpoint(e)) = &lb.host_identifier else {
            panic!("endpoint expected")
        };
        let Some(address::Address::SocketAddress(s)) = &e.address.as_ref().unwrap().address else {
            panic!("socket address expected")
        };
        let Some(PortSpecifier::PortValue(port)) = s.port_specifier else {
            panic!("port value expected")
        };
        (s.address.clone(), port)
    }

    fn tls_context(cluster: &Cluster) -> UpstreamTlsContext {
        let socket = cluster.transport_socket.as_ref().expect("TLS configured");
        assert_eq!(socket.name, "envoy.transport_sockets.tls");
        let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
            panic!("typed config expected")
        };
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
        );
        UpstreamTlsContext::decode(any.value.as_slice()).unwrap()
    }

    fn http_options(cluster: &Cluster) -> Option<UpstreamProtocolOptions> {
        let any = cluster
            .typed_extension_protocol_options
            .get(HTTP_PROTOCOL_OPTIONS_KEY)?;
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        );
        HttpProtocolOptions::decode(any.value.as_slice())
            .unwrap()
            .upstream_protocol_options
    }

    #[test]
    fn ip_only_clusters_are_static_and_named_hosts_use_strict_dns() {
        let statics =
            spec(r#"{"endpoints":[{"host":"10.0.0.1","port":80},{"host":"::1","port":81}]}"#);
        let mixed = spec(
            r#"{"endpoints":[{"host":"10.0.0.1","port":80},{"host":"api.example.com","port":81}]}"#,
        );
        let discovery = |s: &ClusterSpec| translate_cluster("c", s).unwrap().cluster_discovery_type;
        assert_eq!(
            discovery(&statics),
            Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32))
        );
        assert_eq!(
            discovery(&mixed),
            Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
        );
    }

    #[test]
    fn endpoints_are_inline_with_their_weights() {
        let s = spec(
            r#"{"endpoints":[{"host":"a.example","port":8080,"weight":3},{"host":"b.example","port":9090}],
               "connectTimeoutSeconds":7}"#,
        );
        let cluster = translate_cluster("backend", &s).unwrap();
        assert_eq!(cluster.name, "backend");
        assert_eq!(
            cluster.load_assignment.as_ref().unwrap().cluster_name,
            "backend"
        );
        assert_eq!(cluster.connect_timeout, Some(seconds(7)));
        let endpoints = lb_endpoints(&cluster);
        assert_eq!(endpoints.len(), 2);
        assert_eq!(address_of(&endpoints[0]), ("a.example".to_string(), 8080));
        assert_eq!(address_of(&endpoints[1]), ("b.example".to_string(), 9090));
        assert_eq!(endpoints[0].load_balancing_weight, Some(u32_value(3)));
        assert_eq!(endpoints[1].load_balancing_weight, None);
    }

    #[test]
    fn lb_policies_map_one_to_one() {
        let cases = [
            (LbPolicy::RoundRobin, EnvoyLbPolicy::RoundRobin),
            (LbPolicy::LeastRequest, EnvoyLbPolicy::LeastRequest),
            (LbPolicy::Random, EnvoyLbPolicy::Random),
            (LbPolicy::RingHash, EnvoyLbPolicy::RingHash),
            (LbPolicy::Maglev, EnvoyLbPolicy::Maglev),
        ];
        for (domain, envoy) in cases {
            let mut s = spec(r#"{"endpoints":[{"host":"10.0.0.1","port":80}]}"#);
            s.lb_policy = domain;
            assert_eq!(
                translate_cluster("c", &s).unwrap().lb_policy,
                envoy as i32,
                "{domain:?}"
            );
        }
    }

    #[test]
    fn dns_lookup_families_map_one_to_one() {
        let cases = [
            (DnsLookupFamily::Auto, EnvoyDnsLookupFamily::Auto),
            (DnsLookupFamily::V4Only, EnvoyDnsLookupFamily::V4Only),
            (DnsLookupFamily::V6Only, EnvoyDnsLookupFamily::V6Only),
            (
                DnsLookupFamily::V4Preferred,
                EnvoyDnsLookupFamily::V4Preferred,
            ),
            (DnsLookupFamily::All, EnvoyDnsLookupFamily::All),
        ];
        for (domain, envoy) in cases {
            let mut s = spec(r#"{"endpoints":[{"host":"svc.example","port":80}]}"#);
            s.dns_lookup_family = domain;
            let cluster = translate_cluster("c", &s).unwrap();
            assert_eq!(cluster.dns_lookup_family, envoy as i32, "{domain:?}");
        }
    }

    #[test]
    fn plaintext_http1_has_no_transport_socket_or_protocol_options() {
        let cluster = translate_cluster(
            "c",
            &spec(r#"{"endpoints":[{"host":"10.0.0.1","port":80}]}"#),
        )
        .unwrap();
        assert!(cluster.transport_socket.is_none());
        assert!(cluster.typed_extension_protocol_options.is_empty());
    }

    #[test]
    fn tls_sni_defaults_to_the_first_named_endpoint() {
        let s = spec(r#"{"endpoints":[{"host":"httpbin.org","port":443}],"useTls":true}"#);
        let tls = tls_context(&translate_cluster("c", &s).unwrap());
        assert_eq!(tls.sni, "httpbin.org");
        assert!(tls.common_tls_context.unwrap().alpn_protocols.is_empty());
    }

    #[test]
    fn tls_server_name_overrides_the_endpoint_host() {
        let s = spec(
            r#"{"endpoints":[{"host":"10.1.2.3","port":443}],"useTls":true,"tlsServerName":"api.internal"}"#,
        );
        assert_eq!(
            tls_context(&translate_cluster("c", &s).unwrap()).sni,
            "api.internal"
        );
    }

    #[test]
    fn an_ip_endpoint_gives_no_sni() {
        let s = spec(r#"{"endpoints":[{"host":"10.1.2.3","port":443}],"useTls":true}"#);
        assert_eq!(tls_context(&translate_cluster("c", &s).unwrap()).sni, "");
    }

    #[test]
    fn http2_is_explicit_and_offers_h2_over_tls() {
        let s = spec(
            r#"{"endpoints":[{"host":"grpc.example","port":443}],"useTls":true,"protocolType":"HTTP2"}"#,
        );
        let cluster = translate_cluster("c", &s).unwrap();
        let Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) = http_options(&cluster)
        else {
            panic!("explicit HTTP config expected")
        };
        assert!(matches!(
            explicit.protocol_config,
            Some(ProtocolConfig::Http2ProtocolOptions(_))
        ));
        assert_eq!(
            tls_context(&cluster)
                .common_tls_context
                .unwrap()
                .alpn_protocols,
            ["h2"]
        );
    }

    #[test]
    fn http2_without_tls_is_cleartext_h2() {
        let s = spec(r#"{"endpoints":[{"host":"10.0.0.1","port":8080}],"protocolType":"HTTP2"}"#);
        let cluster = translate_cluster("c", &s).unwrap();
        assert!(cluster.transport_socket.is_none());
        assert!(matches!(
            http_options(&cluster),
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(_))
        ));
    }

    #[test]
    fn auto_negotiates_h2_or_http1_with_alpn() {
        let s = spec(
            r#"{"endpoints":[{"host":"web.example","port":443}],"useTls":true,"protocolType":"AUTO"}"#,
        );
        let cluster = translate_cluster("c", &s).unwrap();
        let Some(UpstreamProtocolOptions::AutoConfig(auto)) = http_options(&cluster) else {
            panic!("auto config expected")
        };
        assert!(auto.http_protocol_options.is_some());
        assert!(auto.http2_protocol_options.is_some());
        assert_eq!(
            tls_context(&cluster)
                .common_tls_context
                .unwrap()
                .alpn_protocols,
            ["h2", "http/1.1"]
        );
    }

    #[test]
    fn inexpressible_fields_are_reported_at_their_rest_path() {
        let base = || ClusterSpec {
            service_name: None,
            endpoints: vec![endpoint("10.0.0.1", 80)],
            connect_timeout_seconds: 5,
            use_tls: false,
            tls_server_name: None,
            lb_policy: LbPolicy::default(),
            dns_lookup_family: DnsLookupFamily::default(),
            protocol_type: UpstreamProtocol::default(),
        };
        let cases: Vec<(ClusterSpec, &str)> = vec![
            (
                ClusterSpec {
                    endpoints: vec![],
                    ..base()
                },
                "/endpoints",
            ),
            (
                ClusterSpec {
                    endpoints: vec![endpoint("10.0.0.1", 80), endpoint("10.0.0.2", 70000)],
                    ..base()
                },
                "/endpoints/1/port",
            ),
            (
                ClusterSpec {
                    endpoints: vec![endpoint("10.0.0.1", 0)],
                    ..base()
                },
                "/endpoints/0/port",
            ),
            (
                ClusterSpec {
                    endpoints: vec![Endpoint {
                        weight: Some(0),
                        ..endpoint("10.0.0.1", 80)
                    }],
                    ..base()
                },
                "/endpoints/0/weight",
            ),
            (
                ClusterSpec {
                    connect_timeout_seconds: 0,
                    ..base()
                },
                "/connectTimeoutSeconds",
            ),
            (
                ClusterSpec {
                    protocol_type: UpstreamProtocol::Auto,
                    ..base()
                },
                "/protocolType",
            ),
            (
                ClusterSpec {
                    tls_server_name: Some("x.example".into()),
                    ..base()
                },
                "/tlsServerName",
            ),
        ];
        for (spec, field) in cases {
            let error = translate_cluster("c", &spec).expect_err(field);
            assert_eq!(error.field, field, "{error}");
        }
    }

    #[test]
    fn the_same_spec_encodes_to_the_same_bytes() {
        let s = spec(
            r#"{"endpoints":[{"host":"a.example","port":443,"weight":2},{"host":"10.0.0.9","port":443}],
               "useTls":true,"protocolType":"AUTO","lbPolicy":"MAGLEV"}"#,
        );
        let first = translate_cluster("c", &s).unwrap().encode_to_vec();
        for _ in 0..10 {
            assert_eq!(translate_cluster("c", &s).unwrap().encode_to_vec(), first);
        }
    }
}
