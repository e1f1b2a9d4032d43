//! The golden cases under `testdata/in`. Each file is a JSON object of REST bodies by kind and
//! resource name (`{"secrets": {...}, "clusters": {...}, "routeConfigs": {...}, "listeners":
//! {...}}`); a case is
//! parsed exactly as the REST API parses a request and then translated.
// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::FilterConfig;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::trace::v3::OpenTelemetryConfig;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
use envoy_types::pb::envoy::extensions::access_loggers::grpc::v3::HttpGrpcAccessLogConfig;
use envoy_types::pb::envoy::extensions::compression::gzip::compressor::v3::Gzip;
use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::Compressor;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::envoy::extensions::filters::http::credential_injector::v3::CredentialInjector;
use envoy_types::pb::envoy::extensions::filters::http::custom_response::v3::CustomResponse;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::ExtAuthz;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ExternalProcessor;
use envoy_types::pb::envoy::extensions::filters::http::header_mutation::v3::{
    HeaderMutation, HeaderMutationPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::http::health_check::v3::HealthCheck;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, PerRouteConfig,
};
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::http::oauth2::v3::OAuth2;
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3::{
    RateLimit, RateLimitPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::{Rbac, RbacPerRoute};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::http::custom_response::local_response_policy::v3::LocalResponsePolicy;
use envoy_types::pb::envoy::extensions::http::injected_credentials::generic::v3::Generic;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::extensions::path::rewrite::uri_template::v3::UriTemplateRewriteConfig;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, Secret, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    HttpResponseStatusCodeClassMatchInput, HttpResponseStatusCodeMatchInput,
};
use envoy_types::pb::google::protobuf::StringValue;
use flowplane_domain::cluster::ClusterSpec;
use flowplane_domain::listener::ListenerSpec;
use flowplane_domain::parse_spec;
use flowplane_domain::resource::Spec;
use flowplane_domain::route_config::RouteConfigSpec;
use flowplane_domain::secret::SecretSpec;
use flowplane_xds::{
    translate_cluster, translate_cluster_endpoints, translate_listener, translate_route_config,
    translate_secret,
};
use prost::{Message, Name};
use serde_json::Value;

/// The team every golden listener belongs to (it names the global rate limit domain).
const GOLDEN_TEAM: &str = "golden";

const KINDS: [&str; 4] = ["secrets", "clusters", "routeConfigs", "listeners"];

/// One case, translated. Each list is in name order.
pub struct Case {
    pub name: String,
    pub secrets: Vec<Secret>,
    pub clusters: Vec<Cluster>,
    /// EDS resources of the clusters whose endpoints are IP addresses.
    pub endpoints: Vec<ClusterLoadAssignment>,
    pub route_configs: Vec<RouteConfiguration>,
    pub listeners: Vec<Listener>,
}

pub fn testdata() -> PathBuf {
    // At run time: a build shared by several checkouts may have been compiled in another.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    Path::new(&manifest).join("testdata")
}

/// Every case in `testdata/in`, in file-name order.
pub fn load_all() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata().join("in"))
        .expect("testdata/in exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.iter().map(|path| load(path)).collect()
}

fn load(path: &Path) -> Case {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("UTF-8 file name")
        .to_string();
    let text = std::fs::read_to_string(path).expect("readable case file");
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{name}: not a JSON object"));
    for key in object.keys() {
        assert!(
            KINDS.contains(&key.as_str()),
            "{name}: unknown kind '{key}' (expected {KINDS:?})"
        );
    }
    Case {
        secrets: translate_all::<SecretSpec, _>(&name, &value["secrets"], translate_secret),
        clusters: translate_all::<ClusterSpec, _>(&name, &value["clusters"], translate_cluster),
        endpoints: translate_all::<ClusterSpec, _>(
            &name,
            &value["clusters"],
            translate_cluster_endpoints,
        )
        .into_iter()
        .flatten()
        .collect(),
        route_configs: translate_all::<RouteConfigSpec, _>(
            &name,
            &value["routeConfigs"],
            translate_route_config,
        ),
        listeners: translate_all::<ListenerSpec, _>(&name, &value["listeners"], |name, spec| {
            translate_listener(GOLDEN_TEAM, name, spec)
        }),
        name,
    }
}

/// Parses each body like a REST request (field-path errors, defaults, validation) and
/// translates it; any failure names the case and resource.
fn translate_all<S: Spec, T>(
    case: &str,
    bodies: &Value,
    translate: fn(&str, &S) -> Result<T, flowplane_xds::TranslateError>,
) -> Vec<T> {
    let Some(bodies) = bodies.as_object() else {
        return Vec::new();
    };
    let sorted: BTreeMap<&String, &Value> = bodies.iter().collect();
    sorted
        .into_iter()
        .map(|(name, body)| {
            let parsed = parse_spec::<S>(&body.to_string())
                .unwrap_or_else(|e| panic!("{case}: '{name}' does not parse: {e}"));
            if let Some(body_name) = &parsed.name {
                assert_eq!(body_name, name, "{case}: body name differs from its key");
            }
            translate(name, &parsed.spec)
                .unwrap_or_else(|e| panic!("{case}: '{name}' does not translate: {e}"))
        })
        .collect()
}

/// The golden text of a case: each resource's pretty `Debug`, sorted by kind then name, with
/// `Any` payloads decoded in place (raw bytes would make the files unreviewable).
/// `typed_per_filter_config`, RBAC policies and JWT providers are `HashMap`s whose `Debug`
/// order is random, so a golden case keeps each of those maps to at most one entry.
pub fn render(case: &Case) -> String {
    let mut sections: BTreeSet<(&str, &str, String)> = BTreeSet::new();
    for s in &case.secrets {
        sections.insert(("secret", &s.name, format!("{s:#?}")));
    }
    for c in &case.clusters {
        sections.insert(("cluster", &c.name, format!("{c:#?}")));
    }
    for e in &case.endpoints {
        sections.insert(("endpoints", &e.cluster_name, format!("{e:#?}")));
    }
    for r in &case.route_configs {
        sections.insert(("route_config", &r.name, format!("{r:#?}")));
    }
    for l in &case.listeners {
        sections.insert(("listener", &l.name, format!("{l:#?}")));
    }
    let mut out = String::new();
    for (kind, name, debug) in sections {
        out.push_str(&format!("# {kind} {name}\n{}\n\n", expand_any(&debug)));
    }
    out
}

type Decoder = fn(&[u8]) -> String;

fn decoder<M: Message + Name + Default + Debug>() -> (String, Decoder) {
    fn decode<M: Message + Default + Debug>(bytes: &[u8]) -> String {
        format!(
            "{:#?}",
            M::decode(bytes).expect("payload decodes as its type URL says")
        )
    }
    (M::type_url(), decode::<M>)
}

/// Every `Any` payload translation produces. An unknown one fails the test so that a new
/// payload type gets registered here instead of landing in a golden file as bytes.
fn decoders() -> BTreeMap<String, Decoder> {
    BTreeMap::from([
        decoder::<UpstreamTlsContext>(),
        decoder::<DownstreamTlsContext>(),
        decoder::<TlsInspector>(),
        decoder::<HttpProtocolOptions>(),
        decoder::<UriTemplateMatchConfig>(),
        decoder::<UriTemplateRewriteConfig>(),
        decoder::<HttpConnectionManager>(),
        decoder::<Router>(),
        decoder::<Cors>(),
        decoder::<CorsPolicy>(),
        decoder::<HeaderMutation>(),
        decoder::<LocalRateLimit>(),
        decoder::<FilterConfig>(),
        decoder::<Rbac>(),
        decoder::<JwtAuthentication>(),
        decoder::<HeaderMutationPerRoute>(),
        decoder::<RbacPerRoute>(),
        decoder::<PerRouteConfig>(),
        decoder::<TcpProxy>(),
        decoder::<Compressor>(),
        decoder::<Gzip>(),
        decoder::<HealthCheck>(),
        decoder::<ExtAuthz>(),
        decoder::<RateLimit>(),
        decoder::<RateLimitPerRoute>(),
        decoder::<CredentialInjector>(),
        decoder::<Generic>(),
        decoder::<CustomResponse>(),
        decoder::<ExternalProcessor>(),
        decoder::<OAuth2>(),
        decoder::<FileAccessLog>(),
        decoder::<HttpGrpcAccessLogConfig>(),
        decoder::<OpenTelemetryConfig>(),
        decoder::<Wasm>(),
        decoder::<StringValue>(),
        decoder::<LocalResponsePolicy>(),
        decoder::<HttpResponseStatusCodeMatchInput>(),
        decoder::<HttpResponseStatusCodeClassMatchInput>(),
    ])
}

/// Rewrites `type_url: "...", value: [bytes]` in a pretty `Debug` dump into
/// `type_url: "...", value: <decoded message>`, recursively (an HCM carries a Router).
fn expand_any(debug: &str) -> String {
    let decoders = decoders();
    let lines: Vec<&str> = debug.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        out.push(lines[i].to_string());
        let type_url = lines[i]
            .trim()
            .strip_prefix("type_url: \"")
            .and_then(|s| s.strip_suffix("\","));
        let next = lines.get(i + 1).map(|l| l.trim_start());
        let (Some(type_url), Some(next)) = (type_url, next) else {
            i += 1;
            continue;
        };
        if !next.starts_with("value: [") {
            i += 1;
            continue;
        }
        let indent = &lines[i + 1][..lines[i + 1].len() - next.len()];
        let (bytes, consumed) = collect_bytes(&lines[i + 1..]);
        let decode = decoders
            .get(type_url)
            .unwrap_or_else(|| panic!("register a decoder for {type_url} in tests/cases"));
        let decoded = expand_any(&decode(&bytes));
        out.push(format!("{indent}value: {}", indent_after_first(&decoded, indent)) + ",");
        i += 1 + consumed;
    }
    out.join("\n")
}

/// Reads `value: [` … `],` (or `value: [],`) and returns the bytes and the lines consumed.
fn collect_bytes(lines: &[&str]) -> (Vec<u8>, usize) {
    if lines[0].trim() == "value: []," {
        return (Vec::new(), 1);
    }
    let mut bytes = Vec::new();
    for (n, line) in lines.iter().enumerate().skip(1) {
        let item = line.trim();
        if item == "]," {
            return (bytes, n + 1);
        }
        let byte = item.trim_end_matches(',').parse::<u8>();
        bytes.push(byte.unwrap_or_else(|_| panic!("unexpected line in Any bytes: {line}")));
    }
    panic!("unterminated Any bytes")
}

fn indent_after_first(text: &str, indent: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            if n == 0 {
                line.to_string()
            } else {
                format!("{indent}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
