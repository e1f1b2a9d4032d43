//! The bootstrap a dataplane's Envoy starts from: who it is (node identity and metadata), where
//! Flowplane's xDS server and ratelimit service are, and that clusters and listeners arrive
//! over ADS. JSON rather than
//! protos because it is handed to people and written to disk as Envoy's `-c` file.

use serde_json::{Value, json};

use crate::cluster::HTTP_PROTOCOL_OPTIONS_KEY;

pub const NODE_TEAM_KEY: &str = "flowplane.team";
pub const NODE_DATAPLANE_KEY: &str = "flowplane.dataplane";
pub const NODE_DATAPLANE_ID_KEY: &str = "flowplane.dataplane_id";

/// The gRPC metadata that carries a dataplane's token on its xDS streams and its calls to the
/// ratelimit and learning services.
pub const DATAPLANE_TOKEN_HEADER: &str = "x-flowplane-dataplane-token";
/// The gRPC metadata that names the dataplane on its calls to the ratelimit and learning
/// services (whose requests name the team, but not the dataplane).
pub const DATAPLANE_ID_HEADER: &str = "x-flowplane-dataplane-id";

/// The static cluster through which Envoy reaches the xDS server.
const XDS_CLUSTER: &str = "flowplane_xds";
/// The static cluster through which Envoy reaches the ratelimit service (global rate limits).
pub const RATELIMIT_CLUSTER: &str = "flowplane_ratelimit";
/// The static cluster through which Envoy copies traffic to the learning service.
pub const LEARNING_CLUSTER: &str = "flowplane_learning";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootstrapParams<'a> {
    pub team: &'a str,
    pub dataplane_name: &'a str,
    pub dataplane_id: &'a str,
    /// The dataplane's credential on its xDS streams (`DataplaneTokens`).
    pub dataplane_token: &'a str,
    pub xds_host: &'a str,
    pub xds_port: u16,
    /// PEM of the CA that signed the xds-server's certificate, when ADS is served over TLS
    /// (likewise `ratelimit_ca` and `learning_ca` for those services).
    pub xds_ca: Option<&'a str>,
    pub ratelimit_host: &'a str,
    pub ratelimit_port: u16,
    pub ratelimit_ca: Option<&'a str>,
    pub learning_host: &'a str,
    pub learning_port: u16,
    pub learning_ca: Option<&'a str>,
    pub admin_port: u16,
}

/// A complete Envoy bootstrap. Node metadata only says which dataplane the Envoy claims to be;
/// the token its xDS streams carry is what proves it.
pub fn bootstrap(params: &BootstrapParams) -> Value {
    let credential = [
        (DATAPLANE_TOKEN_HEADER, params.dataplane_token),
        (DATAPLANE_ID_HEADER, params.dataplane_id),
    ];
    json!({
        "node": node(params),
        "dynamic_resources": dynamic_resources(params.dataplane_token),
        "static_resources": { "clusters": [
            grpc_cluster(XDS_CLUSTER, params.xds_host, params.xds_port, params.xds_ca, &[]),
            grpc_cluster(RATELIMIT_CLUSTER, params.ratelimit_host, params.ratelimit_port,
                params.ratelimit_ca, &credential),
            grpc_cluster(LEARNING_CLUSTER, params.learning_host, params.learning_port,
                params.learning_ca, &credential),
        ] },
        "admin": {
            "address": socket_address("127.0.0.1", params.admin_port),
        },
    })
}

/// A string from a node's metadata, as [`bootstrap`] writes it (e.g. [`NODE_TEAM_KEY`]).
pub fn node_metadata(
    node: &envoy_types::pb::envoy::config::core::v3::Node,
    key: &str,
) -> Option<String> {
    use envoy_types::pb::google::protobuf::value::Kind;
    node.metadata
        .as_ref()
        .and_then(|m| m.fields.get(key))
        .and_then(|v| match &v.kind {
            Some(Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

/// The dataplane token a bootstrap from [`bootstrap`] carries (what a client that speaks ADS
/// the way Envoy does must present).
pub fn dataplane_token(bootstrap: &Value) -> Option<&str> {
    bootstrap["dynamic_resources"]["ads_config"]["grpc_services"][0]["initial_metadata"]
        .as_array()?
        .iter()
        .find(|entry| entry["key"] == DATAPLANE_TOKEN_HEADER)?["value"]
        .as_str()
}

fn node(params: &BootstrapParams) -> Value {
    json!({
        "id": format!("{}/{}", params.team, params.dataplane_name),
        "cluster": params.team,
        "metadata": {
            NODE_TEAM_KEY: params.team,
            NODE_DATAPLANE_KEY: params.dataplane_name,
            NODE_DATAPLANE_ID_KEY: params.dataplane_id,
        },
    })
}

/// Clusters and listeners come over one ADS stream, so Envoy can apply them in the order the
/// server sends them (clusters before the listeners that use them). Every stream carries the
/// dataplane's token as gRPC metadata.
fn dynamic_resources(token: &str) -> Value {
    let over_ads = json!({ "ads": {}, "resource_api_version": "V3" });
    json!({
        "ads_config": {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [{
                "envoy_grpc": { "cluster_name": XDS_CLUSTER },
                "initial_metadata": [{ "key": DATAPLANE_TOKEN_HEADER, "value": token }],
            }],
        },
        "cds_config": over_ads,
        "lds_config": over_ads,
    })
}

/// gRPC needs HTTP/2 to the server. A host name resolves with V4_PREFERRED: `localhost` or a
/// dual-stack name would otherwise pick IPv6 first, which a server bound to 0.0.0.0 refuses.
/// `headers` go on every request to the cluster (upstream filters): the ratelimit service's
/// calls are made by filters in listeners that several dataplanes share, so the dataplane's
/// credential cannot travel in the filter's own configuration.
/// `ca`: the service serves TLS under a certificate this CA signed for `host`.
fn grpc_cluster(
    name: &str,
    host: &str,
    port: u16,
    ca: Option<&str>,
    headers: &[(&str, &str)],
) -> Value {
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let mut protocol_options = json!({
        "@type": format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS_KEY}"),
        "explicit_http_config": { "http2_protocol_options": {} },
    });
    if !headers.is_empty() {
        protocol_options["http_filters"] = upstream_headers(headers);
    }
    let mut cluster = json!({
        "name": name,
        "type": if is_ip { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            HTTP_PROTOCOL_OPTIONS_KEY: protocol_options,
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{
                "lb_endpoints": [{
                    "endpoint": { "address": socket_address(host, port) },
                }],
            }],
        },
    });
    if !is_ip {
        cluster["dns_lookup_family"] = json!("V4_PREFERRED");
    }
    if let Some(ca) = ca {
        cluster["transport_socket"] = tls_to(host, ca);
    }
    cluster
}

/// TLS to a Flowplane service at `host`: trusting only `ca`, checking the server's name (SNI
/// and a DNS SAN) or address (an IP SAN).
fn tls_to(host: &str, ca: &str) -> Value {
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let mut tls = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "validation_context": {
                "trusted_ca": { "inline_string": ca },
                "match_typed_subject_alt_names": [{
                    "san_type": if is_ip { "IP_ADDRESS" } else { "DNS" },
                    "matcher": { "exact": host },
                }],
            },
        },
    });
    if !is_ip {
        tls["sni"] = json!(host);
    }
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": tls })
}

/// An upstream filter chain that sets `headers` on every request, then encodes it.
fn upstream_headers(headers: &[(&str, &str)]) -> Value {
    let mutations: Vec<Value> = headers
        .iter()
        .map(|(key, value)| {
            json!({ "append": {
                "header": { "key": key, "value": value },
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            } })
        })
        .collect();
    json!([
        {
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": { "request_mutations": mutations },
            },
        },
        {
            "name": "envoy.filters.http.upstream_codec",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec",
            },
        },
    ])
}

fn socket_address(address: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": address, "port_value": port } })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn params(xds_host: &str) -> BootstrapParams<'_> {
        BootstrapParams {
            team: "payments",
            dataplane_name: "edge-1",
            dataplane_id: "2f1c0d9e-5a8b-4c3d-9e7f-1a2b3c4d5e6f",
            dataplane_token: "fpdp_token",
            xds_host,
            xds_port: 18000,
            ratelimit_host: "10.0.0.9",
            ratelimit_port: 18070,
            xds_ca: None,
            ratelimit_ca: None,
            learning_host: "10.0.0.10",
            learning_port: 18090,
            learning_ca: None,
            admin_port: 9901,
        }
    }

    #[test]
    fn the_node_says_who_the_dataplane_is() {
        let b = bootstrap(&params("xds.flowplane.internal"));
        assert_eq!(b["node"]["id"], "payments/edge-1");
        assert_eq!(b["node"]["cluster"], "payments");
        let metadata = &b["node"]["metadata"];
        assert_eq!(metadata["flowplane.team"], "payments");
        assert_eq!(metadata["flowplane.dataplane"], "edge-1");
        assert_eq!(
            metadata["flowplane.dataplane_id"],
            "2f1c0d9e-5a8b-4c3d-9e7f-1a2b3c4d5e6f"
        );
        assert_eq!(metadata.as_object().unwrap().len(), 3);
    }

    #[test]
    fn clusters_and_listeners_come_over_ads_v3() {
        let b = bootstrap(&params("xds.flowplane.internal"));
        let dynamic = &b["dynamic_resources"];
        assert_eq!(
            dynamic["ads_config"],
            json!({
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{
                    "envoy_grpc": { "cluster_name": "flowplane_xds" },
                    "initial_metadata": [
                        { "key": "x-flowplane-dataplane-token", "value": "fpdp_token" }
                    ],
                }],
            })
        );
        assert_eq!(dataplane_token(&b), Some("fpdp_token"));
        let over_ads = json!({ "ads": {}, "resource_api_version": "V3" });
        assert_eq!(dynamic["cds_config"], over_ads);
        assert_eq!(dynamic["lds_config"], over_ads);
    }

    #[test]
    fn calls_to_the_ratelimit_service_carry_the_dataplanes_credential() {
        let b = bootstrap(&params("xds.flowplane.internal"));
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        let xds_options = &clusters[0]["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert!(
            xds_options.get("http_filters").is_none(),
            "xDS uses initial metadata"
        );
        let ratelimit = &clusters[1];
        assert_eq!(ratelimit["name"], RATELIMIT_CLUSTER);
        let filters = &ratelimit["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
            ["http_filters"];
        assert_eq!(filters[1]["name"], "envoy.filters.http.upstream_codec");
        let set: Vec<(String, String)> =
            filters[0]["typed_config"]["mutations"]["request_mutations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let header = &m["append"]["header"];
                    (
                        header["key"].as_str().unwrap().to_string(),
                        header["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
        assert_eq!(
            set,
            [
                (DATAPLANE_TOKEN_HEADER.to_string(), "fpdp_token".to_string()),
                (
                    DATAPLANE_ID_HEADER.to_string(),
                    "2f1c0d9e-5a8b-4c3d-9e7f-1a2b3c4d5e6f".to_string()
                ),
            ]
        );
    }

    #[test]
    fn with_a_ca_a_services_cluster_speaks_tls_and_checks_the_servers_name() {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let dns = BootstrapParams {
            xds_ca: Some(ca),
            ..params("xds.flowplane.internal")
        };
        let b = bootstrap(&dns);
        let tls = &b["static_resources"]["clusters"][0]["transport_socket"]["typed_config"];
        assert_eq!(tls["sni"], "xds.flowplane.internal");
        let validation = &tls["common_tls_context"]["validation_context"];
        assert_eq!(validation["trusted_ca"]["inline_string"], ca);
        assert_eq!(
            validation["match_typed_subject_alt_names"][0],
            json!({"san_type": "DNS", "matcher": {"exact": "xds.flowplane.internal"}})
        );
        let ip = bootstrap(&BootstrapParams {
            xds_ca: Some(ca),
            ..params("10.0.0.5")
        });
        let tls = &ip["static_resources"]["clusters"][0]["transport_socket"]["typed_config"];
        assert!(tls.get("sni").is_none(), "no SNI for an address");
        assert_eq!(
            tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["san_type"],
            "IP_ADDRESS"
        );
        let plain = bootstrap(&params("10.0.0.5"));
        assert!(
            plain["static_resources"]["clusters"][0]
                .get("transport_socket")
                .is_none()
        );
        let learning_only = bootstrap(&BootstrapParams {
            learning_ca: Some(ca),
            ..params("10.0.0.5")
        });
        let clusters = &learning_only["static_resources"]["clusters"];
        assert!(clusters[0].get("transport_socket").is_none());
        assert!(clusters[1].get("transport_socket").is_none());
        let learning_tls = &clusters[2]["transport_socket"]["typed_config"];
        assert_eq!(
            learning_tls["common_tls_context"]["validation_context"]["trusted_ca"]["inline_string"],
            ca,
            "each service's cluster speaks TLS on its own setting"
        );
    }

    #[test]
    fn the_xds_cluster_speaks_http2_to_the_server() {
        let b = bootstrap(&params("xds.flowplane.internal"));
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 3);
        let xds = &clusters[0];
        assert_eq!(xds["name"], "flowplane_xds");
        assert_eq!(xds["type"], "STRICT_DNS");
        assert_eq!(xds["dns_lookup_family"], "V4_PREFERRED");
        assert_eq!(xds["connect_timeout"], "1s");
        let options = &xds["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(
            options["@type"],
            "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        );
        assert_eq!(
            options["explicit_http_config"],
            json!({ "http2_protocol_options": {} })
        );
        assert_eq!(xds["load_assignment"]["cluster_name"], "flowplane_xds");
        let address = &xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"];
        assert_eq!(
            address,
            &json!({ "address": "xds.flowplane.internal", "port_value": 18000 })
        );
    }

    #[test]
    fn the_ratelimit_cluster_points_at_the_ratelimit_service() {
        let b = bootstrap(&params("xds.flowplane.internal"));
        let ratelimit = &b["static_resources"]["clusters"][1];
        assert_eq!(ratelimit["name"], RATELIMIT_CLUSTER);
        assert_eq!(ratelimit["type"], "STATIC");
        assert_eq!(
            ratelimit["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            json!({ "socket_address": { "address": "10.0.0.9", "port_value": 18070 } })
        );
    }

    #[test]
    fn an_ip_xds_host_needs_no_dns() {
        let b = bootstrap(&params("10.0.0.5"));
        let xds = &b["static_resources"]["clusters"][0];
        assert_eq!(xds["type"], "STATIC");
        assert!(xds.get("dns_lookup_family").is_none());
    }

    #[test]
    fn admin_listens_on_loopback_only() {
        let b = bootstrap(&params("10.0.0.5"));
        assert_eq!(
            b["admin"]["address"],
            json!({ "socket_address": { "address": "127.0.0.1", "port_value": 9901 } })
        );
    }

    #[test]
    fn only_the_documented_sections_are_set() {
        let b = bootstrap(&params("10.0.0.5"));
        let mut keys: Vec<_> = b.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["admin", "dynamic_resources", "node", "static_resources"]
        );
    }
}
