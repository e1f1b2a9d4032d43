//! Responses as they go on the wire. A response is written from pieces that are encoded once
//! and shared ([`crate::views`]) around the one field each stream owns, its nonce. The bytes
//! are exactly what prost produces for the same message, which writes fields in tag order:
//! `DiscoveryResponse` is version_info (1), resources (2), type_url (4) | nonce (5);
//! `DeltaDiscoveryResponse` is system_version_info (1), resources (2), type_url (4) |
//! nonce (5) | removed_resources (6).

use envoy_types::pb::envoy::service::discovery::v3::Resource;
use flowplane_xds::resource::EncodedResource;
use prost::bytes::{BufMut, Bytes};
use prost::encoding::{self, WireType};

/// The `nonce` field number in both `DiscoveryResponse` and `DeltaDiscoveryResponse`.
const NONCE_TAG: u32 = 5;

/// A response ready to send: the encoded fields before its nonce, the nonce, and the encoded
/// fields after it.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub head: Bytes,
    pub nonce: u64,
    pub tail: Bytes,
}

impl Encoded {
    /// Writes the whole message.
    pub fn write_to(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.head);
        let mut digits = [0u8; 20];
        put_bytes(NONCE_TAG, decimal(self.nonce, &mut digits), buf);
        buf.put_slice(&self.tail);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 24 + self.tail.len());
        self.write_to(&mut out);
        out
    }
}

/// Whether `nonce` is how [`Encoded::write_to`] wrote `n`.
pub fn is_nonce(nonce: &str, n: u64) -> bool {
    let mut digits = [0u8; 20];
    nonce.as_bytes() == decimal(n, &mut digits)
}

/// `n` in decimal, written into `buf` (what `n.to_string()` gives, without allocating).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// A `string` or `bytes` field, as prost writes it.
fn put_bytes(tag: u32, value: &[u8], buf: &mut impl BufMut) {
    encoding::encode_key(tag, WireType::LengthDelimited, buf);
    encoding::encode_varint(value.len() as u64, buf);
    buf.put_slice(value);
}

/// One resource as an entry of a `DeltaDiscoveryResponse`'s `resources` (field 2).
pub fn delta_entry(resource: &EncodedResource) -> Vec<u8> {
    let entry = Resource {
        name: resource.name.clone(),
        version: resource.version.clone(),
        resource: Some(resource.any.clone()),
        ..Default::default()
    };
    let mut out = Vec::new();
    encoding::message::encode(2, &entry, &mut out);
    out
}

/// A `DeltaDiscoveryResponse` with `nonce`, from entries made by [`delta_entry`].
pub fn delta<'a>(
    version: &str,
    entries: impl Iterator<Item = &'a [u8]>,
    type_url: &str,
    nonce: u64,
    removed: &[String],
) -> Encoded {
    let entries: Vec<&[u8]> = entries.collect();
    let size = entries.iter().map(|e| e.len()).sum::<usize>() + version.len() + type_url.len();
    let mut out = Vec::with_capacity(size + 16);
    // proto3: prost leaves out empty strings, but writes every entry of a repeated field.
    if !version.is_empty() {
        put_bytes(1, version.as_bytes(), &mut out);
    }
    for entry in entries {
        out.extend_from_slice(entry);
    }
    if !type_url.is_empty() {
        put_bytes(4, type_url.as_bytes(), &mut out);
    }
    let mut tail = Vec::new();
    for name in removed {
        put_bytes(6, name.as_bytes(), &mut tail);
    }
    Encoded {
        head: out.into(),
        nonce,
        tail: tail.into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryResponse, DiscoveryResponse,
    };
    use flowplane_xds::resource::{CLUSTER_TYPE, encode};
    use prost::Message;

    fn cluster(name: &str) -> EncodedResource {
        let cluster = Cluster {
            name: name.into(),
            ..Default::default()
        };
        encode(name, CLUSTER_TYPE, &cluster)
    }

    #[test]
    fn nonces_are_written_in_decimal() {
        let mut buf = [0u8; 20];
        for n in [0, 1, 9, 10, 12345, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
        assert!(is_nonce("12345", 12345));
        assert!(!is_nonce("012345", 12345));
        assert!(!is_nonce("", 0));
    }

    #[test]
    fn a_shared_sotw_body_plus_a_nonce_is_what_prost_encodes() {
        let resources = [cluster("a"), cluster("b")];
        let mut response = DiscoveryResponse {
            version_info: "v1".into(),
            resources: resources.iter().map(|r| r.any.clone()).collect(),
            type_url: CLUSTER_TYPE.into(),
            ..Default::default()
        };
        let body = Bytes::from(response.encode_to_vec());
        for nonce in [1, 42, 1_000_000] {
            response.nonce = nonce.to_string();
            let encoded = Encoded {
                head: body.clone(),
                nonce,
                tail: Bytes::new(),
            };
            assert_eq!(encoded.to_vec(), response.encode_to_vec());
        }
    }

    #[test]
    fn a_delta_body_plus_a_nonce_is_what_prost_encodes() {
        let resources = [cluster("a"), cluster("b")];
        let removed = ["gone".to_string(), "also-gone".to_string()];
        for (updated, removed) in [
            (&resources[..], &removed[..]),
            (&[][..], &removed[..]),
            (&resources[..1], &[][..]),
        ] {
            let expected = DeltaDiscoveryResponse {
                system_version_info: "v2".into(),
                resources: updated
                    .iter()
                    .map(|r| Resource {
                        name: r.name.clone(),
                        version: r.version.clone(),
                        resource: Some(r.any.clone()),
                        ..Default::default()
                    })
                    .collect(),
                type_url: CLUSTER_TYPE.into(),
                removed_resources: removed.to_vec(),
                nonce: "7".into(),
                ..Default::default()
            };
            let entries: Vec<Vec<u8>> = updated.iter().map(delta_entry).collect();
            let encoded = delta(
                "v2",
                entries.iter().map(Vec::as_slice),
                CLUSTER_TYPE,
                7,
                removed,
            );
            assert_eq!(encoded.to_vec(), expected.encode_to_vec());
            assert_eq!(
                DeltaDiscoveryResponse::decode(encoded.to_vec().as_slice()).unwrap(),
                expected
            );
        }
    }
}
