//! Clusters: a `ClusterSpec` becomes one Envoy `Cluster` and, when its endpoints are IP
//! addresses, a `ClusterLoadAssignment` served over EDS (so an endpoint change re-sends only the
//! endpoints, not the cluster); endpoints with host names stay inline for Envoy to resolve.
//! Also optional TLS origination, the upstream HTTP protocol it speaks, and how Envoy judges
//! endpoints (active health checks, outlier detection, circuit breakers).

mod circuit_breakers;
mod health_check;
mod outlier_detection;

use std::collections::{BTreeMap, HashMap};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily as EnvoyDnsLookupFamily,
    LbPolicy as EnvoyLbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{
    HttpProtocolOptions as CommonHttpProtocolOptions, TransportSocket,
};
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
use envoy_types::pb::envoy::config::core::v3::Http1ProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    AutoHttpConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
};
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::cluster::{
    ClusterSpec, DnsLookupFamily, Endpoint, LbPolicy, UpstreamProtocol,
};
use flowplane_domain::error::Path;

use crate::TranslateError;
use crate::envoy_core::{ads_config_source, any, checked_port, seconds, socket_address, u32_value};
use crate::tls::{TLS_TRANSPORT_SOCKET, sds_secret, validation_from};

/// Envoy looks upstream HTTP options up under this key in `typed_extension_protocol_options`.
pub(crate) const HTTP_PROTOCOL_OPTIONS_KEY: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub fn translate_cluster(name: &str, spec: &ClusterSpec) -> Result<Cluster, TranslateError> {
    check_timeout(spec)?;
    check_protocol(spec)?;
    // Checked for every cluster, whether the endpoints travel inline or over EDS.
    let endpoints = load_assignment(name, &spec.endpoints)?;
    let discovery = discovery_type(spec);
    let over_eds = discovery == DiscoveryType::Eds;
    Ok(Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(discovery as i32)),
        eds_cluster_config: over_eds.then(|| EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: String::new(),
        }),
        connect_timeout: Some(seconds(spec.connect_timeout_seconds)),
        lb_policy: lb_policy(spec.lb_policy) as i32,
        dns_lookup_family: dns_lookup_family(spec.dns_lookup_family) as i32,
        load_assignment: (!over_eds).then_some(endpoints),
        transport_socket: transport_socket(spec),
        typed_extension_protocol_options: protocol_options(spec),
        health_checks: health_check::health_checks(&spec.health_checks, spec.protocol_type)?,
        circuit_breakers: spec
            .circuit_breakers
            .as_ref()
            .map(circuit_breakers::circuit_breakers),
        outlier_detection: spec
            .outlier_detection
            .as_ref()
            .map(outlier_detection::outlier_detection),
        ..Default::default()
    })
}

/// The endpoints of a cluster served over EDS (named like the cluster), or `None` when they
/// travel inline in the cluster.
pub fn translate_cluster_endpoints(
    name: &str,
    spec: &ClusterSpec,
) -> Result<Option<ClusterLoadAssignment>, TranslateError> {
    if discovery_type(spec) != DiscoveryType::Eds {
        return Ok(None);
    }
    load_assignment(name, &spec.endpoints).map(Some)
}

/// IP literals need no resolver, so an all-IP cluster gets its endpoints over EDS; any name
/// makes Envoy resolve every endpoint (STRICT_DNS keeps all resolved addresses, unlike
/// LOGICAL_DNS), which EDS cannot do.
fn discovery_type(spec: &ClusterSpec) -> DiscoveryType {
    if spec.all_endpoints_are_ips() {
        DiscoveryType::Eds
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
    if spec.tls.is_some() {
        let path = Path::root().field("tls");
        return Err(TranslateError::at(&path, "requires useTls: true"));
    }
    Ok(())
}

/// Endpoints travel inline, one locality per priority (Envoy's failover unit); Flowplane has
/// no EDS of its own.
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
    let mut by_priority: BTreeMap<u32, Vec<LbEndpoint>> = BTreeMap::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let lb = lb_endpoint(endpoint, &path.index(i))?;
        by_priority.entry(endpoint.priority()).or_default().push(lb);
    }
    // Envoy accepts a gap (an empty priority level), but it is almost surely a typo; domain
    // validation refuses it, and this keeps an unvalidated spec from slipping one through.
    if let Some((i, endpoint)) = endpoints
        .iter()
        .enumerate()
        .find(|(_, e)| !(0..e.priority()).all(|p| by_priority.contains_key(&p)))
    {
        return Err(TranslateError::at(
            &path.index(i).field("priority"),
            format!(
                "priorities must be contiguous from 0 (priority {} has a gap below it)",
                endpoint.priority()
            ),
        ));
    }
    Ok(ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: by_priority
            .into_iter()
            .map(|(priority, lb_endpoints)| LocalityLbEndpoints {
                lb_endpoints,
                priority,
                ..Default::default()
            })
            .collect(),
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

/// Without `tls.validationSecret` the upstream certificate is not verified: TLS then gives
/// confidentiality, not upstream authentication. Certificates and trust anchors come from
/// secrets over SDS, so rotating them does not re-send the cluster.
fn transport_socket(spec: &ClusterSpec) -> Option<TransportSocket> {
    if !spec.use_tls {
        return None;
    }
    let secrets = spec.tls.as_ref();
    let tls = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            alpn_protocols: alpn_protocols(spec.protocol_type),
            tls_certificate_sds_secret_configs: secrets
                .and_then(|t| t.client_certificate_secret.as_deref())
                .map(sds_secret)
                .into_iter()
                .collect(),
            validation_context_type: validation_from(
                secrets.and_then(|t| t.validation_secret.as_ref()),
            ),
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

/// HTTP/1.1 without an idle timeout is Envoy's default, so it needs no options. The map holds
/// at most one entry: prost encodes maps in iteration order, and one entry keeps the bytes (and
/// so the resource version) deterministic.
fn protocol_options(spec: &ClusterSpec) -> HashMap<String, Any> {
    let common = spec
        .idle_timeout_seconds
        .map(|idle| CommonHttpProtocolOptions {
            idle_timeout: Some(seconds(idle)),
            ..Default::default()
        });
    let options = match spec.protocol_type {
        UpstreamProtocol::Http1 if common.is_none() => return HashMap::new(),
        // Envoy requires the protocol to be stated whenever these options are present.
        UpstreamProtocol::Http1 => {
            UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::HttpProtocolOptions(
                    Http1ProtocolOptions::default(),
                )),
            })
        }
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
        common_http_protocol_options: common,
        upstream_protocol_options: Some(options),
        ..Default::default()
    };
    HashMap::from([(HTTP_PROTOCOL_OPTIONS_KEY.to_string(), any(&options))])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::envoy_core::milliseconds;
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
            priority: None,
        }
    }

    fn lb_endpoints(cluster: &Cluster) -> &[LbEndpoint] {
        &cluster.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints
    }

    /// The endpoints wherever they travel: inline, or over EDS.
    fn assignment(name: &str, s: &ClusterSpec) -> ClusterLoadAssignment {
        match translate_cluster_endpoints(name, s).unwrap() {
            Some(eds) => eds,
            None => translate_cluster(name, s).unwrap().load_assignment.unwrap(),
        }
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

    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;

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
    fn ip_only_clusters_use_eds_and_named_hosts_use_strict_dns() {
        let statics =
            spec(r#"{"endpoints":[{"host":"10.0.0.1","port":80},{"host":"::1","port":81}]}"#);
        let mixed = spec(
            r#"{"endpoints":[{"host":"10.0.0.1","port":80},{"host":"api.example.com","port":81}]}"#,
        );
        let discovery = |s: &ClusterSpec| translate_cluster("c", s).unwrap().cluster_discovery_type;
        assert_eq!(
            discovery(&statics),
            Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        );
        assert_eq!(
            discovery(&mixed),
            Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32))
        );
        // Over EDS the cluster carries no endpoints; they are their own resource.
        let eds = translate_cluster("c", &statics).unwrap();
        assert_eq!(eds.load_assignment, None);
        assert_eq!(
            eds.eds_cluster_config.unwrap().eds_config,
            Some(ads_config_source())
        );
        let endpoints = translate_cluster_endpoints("c", &statics).unwrap().unwrap();
        assert_eq!(endpoints.cluster_name, "c");
        assert_eq!(endpoints.endpoints[0].lb_endpoints.len(), 2);
        assert_eq!(translate_cluster_endpoints("c", &mixed).unwrap(), None);
    }

    #[test]
    fn an_endpoint_change_leaves_an_eds_cluster_unchanged() {
        let before = spec(r#"{"endpoints":[{"host":"10.0.0.1","port":80}]}"#);
        let after = spec(r#"{"endpoints":[{"host":"10.0.0.2","port":80,"weight":5}]}"#);
        assert_eq!(
            translate_cluster("c", &before).unwrap(),
            translate_cluster("c", &after).unwrap()
        );
        assert_ne!(
            translate_cluster_endpoints("c", &before).unwrap(),
            translate_cluster_endpoints("c", &after).unwrap()
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
            tls: None,
            lb_policy: LbPolicy::default(),
            dns_lookup_family: DnsLookupFamily::default(),
            protocol_type: UpstreamProtocol::default(),
            idle_timeout_seconds: None,
            health_checks: Vec::new(),
            circuit_breakers: None,
            outlier_detection: None,
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
            (
                ClusterSpec {
                    tls: Some(flowplane_domain::cluster::UpstreamTls {
                        client_certificate_secret: None,
                        validation_secret: Some("ca".into()),
                    }),
                    ..base()
                },
                "/tls",
            ),
        ];
        for (spec, field) in cases {
            let error = translate_cluster("c", &spec).expect_err(field);
            assert_eq!(error.field, field, "{error}");
        }
    }

    #[test]
    fn upstream_secrets_are_fetched_over_sds_by_name() {
        let s = spec(
            r#"{"endpoints":[{"host":"api.internal","port":443}],"useTls":true,
                "tls":{"clientCertificateSecret":"me","validationSecret":"ca"}}"#,
        );
        let common = tls_context(&translate_cluster("c", &s).unwrap())
            .common_tls_context
            .unwrap();
        let [cert] = common.tls_certificate_sds_secret_configs.as_slice() else {
            panic!("one client certificate expected")
        };
        assert_eq!(cert.name, "me");
        assert!(cert.sds_config.is_some(), "fetched over ADS");
        let Some(ValidationContextType::ValidationContextSdsSecretConfig(ca)) =
            common.validation_context_type
        else {
            panic!("validation context over SDS expected")
        };
        assert_eq!(ca.name, "ca");
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

    #[test]
    fn endpoints_are_grouped_into_one_locality_per_priority() {
        let s = spec(
            r#"{"endpoints":[{"host":"10.0.0.1","port":80,"priority":1},{"host":"10.0.0.2","port":80},
                {"host":"10.0.0.3","port":80,"priority":1}]}"#,
        );
        let localities = &assignment("c", &s).endpoints;
        let shape: Vec<(u32, Vec<String>)> = localities
            .iter()
            .map(|l| {
                let hosts = l.lb_endpoints.iter().map(|e| address_of(e).0).collect();
                (l.priority, hosts)
            })
            .collect();
        assert_eq!(
            shape,
            [
                (0, vec!["10.0.0.2".to_string()]),
                (1, vec!["10.0.0.1".to_string(), "10.0.0.3".to_string()])
            ]
        );
    }

    #[test]
    fn a_priority_gap_is_reported_at_the_endpoint() {
        let mut s = spec(r#"{"endpoints":[{"host":"10.0.0.1","port":80}]}"#);
        s.endpoints[0].priority = Some(1);
        let error = translate_cluster("c", &s).unwrap_err();
        assert_eq!(error.field, "/endpoints/0/priority");
    }

    #[test]
    fn http_health_checks_carry_timing_thresholds_and_statuses() {
        use envoy_types::pb::envoy::config::core::v3::health_check::HealthChecker;
        let s = spec(
            r#"{"endpoints":[{"host":"10.0.0.1","port":80}],"protocolType":"HTTP2",
                "healthChecks":[{"http":{"path":"/healthz","host":"probe","expectedStatuses":[200,204]},
                  "intervalMs":250,"timeoutMs":1500,"unhealthyThreshold":1,"healthyThreshold":4,
                  "noTrafficIntervalMs":500}]}"#,
        );
        let cluster = translate_cluster("c", &s).unwrap();
        let check = &cluster.health_checks[0];
        assert_eq!(check.interval, Some(milliseconds(250)));
        assert_eq!(
            check.timeout,
            Some(envoy_types::pb::google::protobuf::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(check.no_traffic_interval, Some(milliseconds(500)));
        assert_eq!(check.unhealthy_threshold, Some(u32_value(1)));
        assert_eq!(check.healthy_threshold, Some(u32_value(4)));
        let Some(HealthChecker::HttpHealthCheck(http)) = &check.health_checker else {
            panic!("HTTP health check expected")
        };
        assert_eq!(
            (http.path.as_str(), http.host.as_str()),
            ("/healthz", "probe")
        );
        let ranges: Vec<(i64, i64)> = http
            .expected_statuses
            .iter()
            .map(|r| (r.start, r.end))
            .collect();
        assert_eq!(ranges, [(200, 201), (204, 205)]);
        // An HTTP/2 upstream is probed over HTTP/2.
        assert_eq!(
            http.codec_client_type,
            envoy_types::pb::envoy::r#type::v3::CodecClientType::Http2 as i32
        );
    }

    #[test]
    fn tcp_and_grpc_health_checks_map_their_payloads() {
        use envoy_types::pb::envoy::config::core::v3::health_check::HealthChecker;
        use envoy_types::pb::envoy::config::core::v3::health_check::payload::Payload as Kind;
        let checkers: Vec<HealthChecker> = [
            r#"{"tcp":{"send":"50494e47","receive":["504f4e47"]}}"#,
            r#"{"tcp":{}}"#,
            r#"{"grpc":{"serviceName":"orders","authority":"orders.internal"}}"#,
        ]
        .iter()
        .map(|check| {
            let s = spec(&format!(
                r#"{{"endpoints":[{{"host":"10.0.0.1","port":80}}],"protocolType":"HTTP2",
                    "healthChecks":[{check}]}}"#
            ));
            let cluster = translate_cluster("c", &s).unwrap();
            cluster.health_checks[0].health_checker.clone().unwrap()
        })
        .collect();
        let HealthChecker::TcpHealthCheck(tcp) = &checkers[0] else {
            panic!("TCP expected")
        };
        assert_eq!(
            tcp.send.as_ref().and_then(|p| p.payload.clone()),
            Some(Kind::Text("50494e47".into()))
        );
        assert_eq!(tcp.receive.len(), 1);
        let HealthChecker::TcpHealthCheck(connect_only) = &checkers[1] else {
            panic!("TCP expected")
        };
        assert!(connect_only.send.is_none() && connect_only.receive.is_empty());
        let HealthChecker::GrpcHealthCheck(grpc) = &checkers[2] else {
            panic!("gRPC expected")
        };
        assert_eq!(
            (grpc.service_name.as_str(), grpc.authority.as_str()),
            ("orders", "orders.internal")
        );
    }

    #[test]
    fn circuit_breakers_and_outlier_detection_keep_unset_fields_unset() {
        use envoy_types::pb::envoy::config::core::v3::RoutingPriority;
        let s = spec(
            r#"{"endpoints":[{"host":"10.0.0.1","port":80}],
                "circuitBreakers":{"default":{"maxPendingRequests":1,"maxRequests":2},"high":{"maxRetries":9}},
                "outlierDetection":{"consecutiveGatewayFailure":3,"intervalMs":100,"maxEjectionPercent":50}}"#,
        );
        let cluster = translate_cluster("c", &s).unwrap();
        let thresholds = cluster.circuit_breakers.unwrap().thresholds;
        assert_eq!(thresholds.len(), 2);
        assert_eq!(thresholds[0].priority, RoutingPriority::Default as i32);
        assert_eq!(thresholds[0].max_pending_requests, Some(u32_value(1)));
        assert_eq!(thresholds[0].max_requests, Some(u32_value(2)));
        assert_eq!(thresholds[0].max_connections, None);
        assert_eq!(thresholds[1].priority, RoutingPriority::High as i32);
        assert_eq!(thresholds[1].max_retries, Some(u32_value(9)));
        let outliers = cluster.outlier_detection.unwrap();
        assert_eq!(outliers.consecutive_gateway_failure, Some(u32_value(3)));
        assert_eq!(
            outliers.enforcing_consecutive_gateway_failure,
            Some(u32_value(100))
        );
        assert_eq!(outliers.interval, Some(milliseconds(100)));
        assert_eq!(outliers.max_ejection_percent, Some(u32_value(50)));
        assert_eq!(outliers.consecutive_5xx, None);
        assert_eq!(outliers.base_ejection_time, None);
    }

    #[test]
    fn an_idle_timeout_states_the_protocol_even_for_http1() {
        let s = spec(r#"{"endpoints":[{"host":"10.0.0.1","port":80}],"idleTimeoutSeconds":30}"#);
        let cluster = translate_cluster("c", &s).unwrap();
        let any = &cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS_KEY];
        let options = HttpProtocolOptions::decode(any.value.as_slice()).unwrap();
        assert_eq!(
            options.common_http_protocol_options.unwrap().idle_timeout,
            Some(seconds(30))
        );
        let Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) =
            options.upstream_protocol_options
        else {
            panic!("explicit HTTP config expected")
        };
        assert!(matches!(
            explicit.protocol_config,
            Some(ProtocolConfig::HttpProtocolOptions(_))
        ));
    }
}
