//! A lean simulated Envoy for the load generator: ADS over raw HTTP/2 (the `h2` crate), reading
//! only what an ACK needs from each response (version, type, nonce) and stepping over the
//! resources without decoding them.
//!
//! Why not tonic: on two cores the load generator shares the CPU with the server it measures,
//! and a tonic client (a task and a channel per request stream, a full decode of every
//! response) spent as much CPU per response as the server spent producing it. Every
//! microsecond the client saves is one the server gets, so the figures measure the server.
//! The bytes on the wire are the same gRPC messages (tests compare them with prost's).

use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use flowplane_xds::bootstrap::DATAPLANE_TOKEN_HEADER;
use h2::client::SendRequest;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use tokio::sync::mpsc;

use crate::streams::{Protocol, Received};

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Threads that run simulated Envoys, each on its own single-threaded runtime, for the reason
/// xds-server serves thread-per-core (`per_core`): a thread's ACKs then leave in batches
/// instead of one system call each.
pub struct Threads {
    handles: Vec<tokio::runtime::Handle>,
}

impl Threads {
    pub fn start(count: usize) -> anyhow::Result<Self> {
        let mut handles = Vec::new();
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            // Lives as long as the benchmark process.
            std::thread::Builder::new()
                .name(format!("envoys-{index}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        }
        Ok(Self { handles })
    }

    /// The thread for the `n`th connection.
    pub fn for_connection(&self, n: usize) -> &tokio::runtime::Handle {
        &self.handles[n % self.handles.len()]
    }
}

/// One HTTP/2 connection to the server, shared by the streams opened on it.
#[derive(Clone)]
pub struct Connection {
    send: SendRequest<Bytes>,
    authority: String,
}

impl Connection {
    pub async fn open(addr: &str) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (send, connection) = h2::client::handshake(tcp).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            send,
            authority: addr.to_string(),
        })
    }

    /// Opens one ADS stream that subscribes (wildcard) to `type_url` as `node` (proven by
    /// `token`), ACKs every response, and reports each one's version and arrival time to
    /// `received` until that channel closes or the server ends the stream.
    pub async fn simulate_envoy(
        self,
        protocol: Protocol,
        node: Node,
        token: String,
        type_url: &str,
        received: mpsc::UnboundedSender<Received>,
    ) -> anyhow::Result<()> {
        let path = match protocol {
            Protocol::Sotw => SOTW_PATH,
            Protocol::Delta => DELTA_PATH,
        };
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header(DATAPLANE_TOKEN_HEADER, token.as_str())
            .body(())?;
        let mut send = self.send.ready().await?;
        let (response, mut requests) = send.send_request(request, false)?;
        requests.send_data(subscribe(protocol, node, type_url), false)?;
        let response = response.await?;
        anyhow::ensure!(response.status() == 200, "HTTP {}", response.status());
        let mut body = response.into_body();
        let mut buffered = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            body.flow_control().release_capacity(chunk.len())?;
            buffered.extend_from_slice(&chunk);
            while let Some(message) = next_message(&mut buffered)? {
                let at = Instant::now();
                let answer = Answer::read(protocol, &message)?;
                requests.send_data(answer.ack(protocol), false)?;
                let version = String::from_utf8_lossy(&answer.version).into_owned();
                if received.send(Received { version, at }).is_err() {
                    return Ok(());
                }
            }
        }
        let trailers = body.trailers().await?;
        let status = trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        anyhow::bail!("the server ended the stream (grpc-status {status})")
    }
}

/// The first request of a stream, framed.
fn subscribe(protocol: Protocol, node: Node, type_url: &str) -> Bytes {
    use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
    let message = match protocol {
        Protocol::Sotw => DiscoveryRequest {
            node: Some(node),
            type_url: type_url.into(),
            ..Default::default()
        }
        .encode_to_vec(),
        Protocol::Delta => DeltaDiscoveryRequest {
            node: Some(node),
            type_url: type_url.into(),
            ..Default::default()
        }
        .encode_to_vec(),
    };
    frame(&message)
}

/// A gRPC message: uncompressed flag, big-endian length, then the message.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// Takes the next whole gRPC message off `buffered`, if one has fully arrived.
fn next_message(buffered: &mut BytesMut) -> anyhow::Result<Option<Bytes>> {
    if buffered.len() < 5 {
        return Ok(None);
    }
    anyhow::ensure!(
        buffered[0] == 0,
        "compressed gRPC messages are not expected"
    );
    let len = u32::from_be_bytes([buffered[1], buffered[2], buffered[3], buffered[4]]) as usize;
    if buffered.len() < 5 + len {
        return Ok(None);
    }
    buffered.advance(5);
    Ok(Some(buffered.split_to(len).freeze()))
}

/// What an ACK needs from a response, and the version the benchmark records: the response's
/// `version_info` (SotW) or its first resource's version (delta).
#[derive(Debug, Default, PartialEq)]
struct Answer {
    version: Bytes,
    type_url: Bytes,
    nonce: Bytes,
}

/// Field numbers of `DiscoveryResponse` and `DeltaDiscoveryResponse` this client reads.
const RESPONSE_VERSION: u32 = 1;
const RESPONSE_RESOURCES: u32 = 2;
const RESPONSE_TYPE_URL: u32 = 4;
const RESPONSE_NONCE: u32 = 5;
/// `Resource.version`, in a delta response's entries.
const RESOURCE_VERSION: u32 = 1;

impl Answer {
    fn read(protocol: Protocol, message: &Bytes) -> anyhow::Result<Self> {
        let mut answer = Self::default();
        let mut first_resource = None;
        for_each_field(message, |tag, value| match tag {
            RESPONSE_VERSION if protocol == Protocol::Sotw => answer.version = value,
            RESPONSE_RESOURCES if first_resource.is_none() => first_resource = Some(value),
            RESPONSE_TYPE_URL => answer.type_url = value,
            RESPONSE_NONCE => answer.nonce = value,
            _ => {}
        })?;
        if let (Protocol::Delta, Some(resource)) = (protocol, first_resource) {
            for_each_field(&resource, |tag, value| {
                if tag == RESOURCE_VERSION {
                    answer.version = value;
                }
            })?;
        }
        Ok(answer)
    }

    /// The ACK, framed: `DiscoveryRequest` version_info (1), type_url (4), response_nonce
    /// (5); `DeltaDiscoveryRequest` type_url (2), response_nonce (6).
    fn ack(&self, protocol: Protocol) -> Bytes {
        let mut message = Vec::with_capacity(16 + self.type_url.len() + self.version.len());
        match protocol {
            Protocol::Sotw => {
                put_bytes(1, &self.version, &mut message);
                put_bytes(4, &self.type_url, &mut message);
                put_bytes(5, &self.nonce, &mut message);
            }
            Protocol::Delta => {
                put_bytes(2, &self.type_url, &mut message);
                put_bytes(6, &self.nonce, &mut message);
            }
        }
        frame(&message)
    }
}

/// Calls `visit` with each length-delimited field of `message` (sharing its bytes) and steps
/// over the others.
fn for_each_field(message: &Bytes, mut visit: impl FnMut(u32, Bytes)) -> anyhow::Result<()> {
    let mut rest = message.clone();
    while rest.has_remaining() {
        let (tag, wire_type) = decode_key(&mut rest)?;
        match wire_type {
            WireType::LengthDelimited => {
                let len = decode_varint(&mut rest)? as usize;
                anyhow::ensure!(len <= rest.len(), "a field runs past the message");
                visit(tag, rest.split_to(len));
            }
            WireType::Varint => {
                decode_varint(&mut rest)?;
            }
            WireType::SixtyFourBit => rest.advance(8.min(rest.len())),
            WireType::ThirtyTwoBit => rest.advance(4.min(rest.len())),
            other => anyhow::bail!("unexpected wire type {other:?}"),
        }
    }
    Ok(())
}

/// A `string` field as prost writes it: left out when empty (proto3).
fn put_bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    if value.is_empty() {
        return;
    }
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(value.len() as u64, out);
    out.put_slice(value);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
        Resource,
    };
    use envoy_types::pb::google::protobuf::Any;

    fn unframed(framed: Bytes) -> Bytes {
        let mut buffered = BytesMut::from(&framed[..]);
        let message = next_message(&mut buffered).unwrap().unwrap();
        assert!(buffered.is_empty());
        message
    }

    #[test]
    fn sotw_acks_are_what_prost_encodes() {
        let response = DiscoveryResponse {
            version_info: "v7".into(),
            resources: vec![Any {
                type_url: "t".into(),
                value: vec![1, 2, 3],
            }],
            canary: true,
            type_url: "type/x".into(),
            nonce: "42".into(),
            ..Default::default()
        };
        let answer = Answer::read(Protocol::Sotw, &response.encode_to_vec().into()).unwrap();
        let expected = DiscoveryRequest {
            version_info: "v7".into(),
            type_url: "type/x".into(),
            response_nonce: "42".into(),
            ..Default::default()
        };
        assert_eq!(
            unframed(answer.ack(Protocol::Sotw)),
            expected.encode_to_vec()
        );
        assert_eq!(answer.version, "v7");
    }

    #[test]
    fn delta_acks_are_what_prost_encodes_and_report_the_first_resource_version() {
        let resource = |name: &str, version: &str| Resource {
            name: name.into(),
            version: version.into(),
            ..Default::default()
        };
        let response = DeltaDiscoveryResponse {
            system_version_info: "system".into(),
            resources: vec![resource("a", "va"), resource("b", "vb")],
            type_url: "type/x".into(),
            nonce: "9".into(),
            removed_resources: vec!["gone".into()],
            ..Default::default()
        };
        let answer = Answer::read(Protocol::Delta, &response.encode_to_vec().into()).unwrap();
        assert_eq!(answer.version, "va");
        let expected = DeltaDiscoveryRequest {
            type_url: "type/x".into(),
            response_nonce: "9".into(),
            ..Default::default()
        };
        assert_eq!(
            unframed(answer.ack(Protocol::Delta)),
            expected.encode_to_vec()
        );
    }

    #[test]
    fn a_message_is_taken_only_once_it_has_fully_arrived() {
        let framed = frame(b"hello");
        let mut buffered = BytesMut::from(&framed[..4]);
        assert!(next_message(&mut buffered).unwrap().is_none());
        buffered.extend_from_slice(&framed[4..]);
        buffered.extend_from_slice(&framed[..2]);
        assert_eq!(next_message(&mut buffered).unwrap().unwrap(), "hello");
        assert_eq!(buffered.len(), 2);
    }
}
