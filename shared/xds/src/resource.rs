//! The encoded form of an Envoy resource that the xDS server keeps in its snapshots: packed
//! once per change and shared by every stream, with versions that are pure functions of
//! content so every replica reports the same version for the same state.

use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use sha2::{Digest, Sha256};

pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
/// ECDS: HTTP filter configurations (learning sessions fill their listener's slot).
pub const EXTENSION_CONFIG_TYPE: &str =
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// Whether Envoy always names the resources of `type_url` it wants (an empty list asks for
/// nothing), rather than subscribing to all of them when it names none (CDS and LDS).
pub fn always_named(type_url: &str) -> bool {
    matches!(
        type_url,
        ROUTE_TYPE | SECRET_TYPE | ENDPOINT_TYPE | EXTENSION_CONFIG_TYPE
    )
}

/// Hex characters kept from a SHA-256: 64 bits, ample to tell states apart, short in logs.
const VERSION_LEN: usize = 16;

/// One resource ready for a `DiscoveryResponse` (`any`) or a delta `Resource` (`name`,
/// `version`).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedResource {
    pub name: String,
    pub type_url: &'static str,
    pub any: Any,
    /// First 16 hex characters of the SHA-256 of the encoded bytes.
    pub version: String,
    /// The revision of the Flowplane resource it was translated from (0 until the store sets
    /// it), so that what Envoy accepts or rejects can be tied to the version config wrote.
    pub revision: i64,
}

/// Encodes `msg` once. Translation output is deterministic (no multi-entry maps), so the same
/// resource always yields the same bytes and therefore the same version.
pub fn encode<M: Message>(name: &str, type_url: &'static str, msg: &M) -> EncodedResource {
    let value = msg.encode_to_vec();
    let version = short_hash(Sha256::digest(&value).as_slice());
    EncodedResource {
        name: name.to_string(),
        type_url,
        any: Any {
            type_url: type_url.to_string(),
            value,
        },
        version,
        revision: 0,
    }
}

/// The version of a set of resources: a hash over their (name, version) pairs in name order,
/// so it ignores the order resources were collected in. Each field is length-prefixed, so no
/// two different sets can produce the same hashed byte stream.
pub fn version_of(resources: &[&EncodedResource]) -> String {
    let mut sorted: Vec<&EncodedResource> = resources.to_vec();
    sorted.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    let mut hasher = Sha256::new();
    for resource in sorted {
        for field in [resource.name.as_bytes(), resource.version.as_bytes()] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field);
        }
    }
    short_hash(hasher.finalize().as_slice())
}

fn short_hash(digest: &[u8]) -> String {
    let mut hex = hex::encode(digest);
    hex.truncate(VERSION_LEN);
    hex
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
    use prost::Name;

    fn cluster(name: &str, timeout: i64) -> Cluster {
        Cluster {
            name: name.to_string(),
            connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: timeout,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn type_urls_are_the_ones_envoy_expects() {
        assert_eq!(CLUSTER_TYPE, Cluster::type_url());
        assert_eq!(LISTENER_TYPE, Listener::type_url());
        assert_eq!(ROUTE_TYPE, RouteConfiguration::type_url());
        assert_eq!(ENDPOINT_TYPE, ClusterLoadAssignment::type_url());
        assert_eq!(SECRET_TYPE, Secret::type_url());
    }

    #[test]
    fn encoding_packs_the_message_and_hashes_its_bytes() {
        let c = cluster("a", 5);
        let encoded = encode("a", CLUSTER_TYPE, &c);
        assert_eq!(encoded.name, "a");
        assert_eq!(encoded.type_url, CLUSTER_TYPE);
        assert_eq!(encoded.any.type_url, CLUSTER_TYPE);
        assert_eq!(Cluster::decode(encoded.any.value.as_slice()).unwrap(), c);
        let expected = hex::encode(Sha256::digest(c.encode_to_vec()));
        assert_eq!(encoded.version, expected[..16]);
    }

    #[test]
    fn versions_follow_content() {
        let a = encode("a", CLUSTER_TYPE, &cluster("a", 5));
        assert_eq!(a, encode("a", CLUSTER_TYPE, &cluster("a", 5)));
        assert_ne!(
            a.version,
            encode("a", CLUSTER_TYPE, &cluster("a", 6)).version
        );
    }

    #[test]
    fn set_versions_ignore_order_but_not_content() {
        let a = encode("a", CLUSTER_TYPE, &cluster("a", 5));
        let b = encode("b", CLUSTER_TYPE, &cluster("b", 5));
        let b2 = encode("b", CLUSTER_TYPE, &cluster("b", 6));
        assert_eq!(version_of(&[&a, &b]), version_of(&[&b, &a]));
        assert_ne!(version_of(&[&a, &b]), version_of(&[&a, &b2]));
        assert_ne!(version_of(&[&a, &b]), version_of(&[&a]));
        assert_eq!(version_of(&[]).len(), 16);
    }

    #[test]
    fn set_versions_depend_on_names() {
        let a = encode("a", CLUSTER_TYPE, &cluster("x", 5));
        let mut renamed = a.clone();
        renamed.name = "b".into();
        assert_ne!(version_of(&[&a]), version_of(&[&renamed]));
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let mut left = encode("ab", CLUSTER_TYPE, &cluster("x", 5));
        let mut right = left.clone();
        left.version = "c".into();
        right.name = "a".into();
        right.version = "bc".into();
        assert_ne!(version_of(&[&left]), version_of(&[&right]));
    }
}
