//! The gRPC codec of the ADS streams: requests are decoded with prost, responses arrive
//! already encoded ([`Encoded`]) and are copied out as they are, so a response shared by
//! many streams is never re-serialized per stream.
//!
//! Its buffers start small: tonic allocates them for every stream and keeps them for the
//! stream's life, and an ACK or a one-cluster push is a few hundred bytes. They grow when a
//! bigger message needs it.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::wire::Encoded;

/// Starting size of each stream's read and write buffers (tonic's default is 8 KiB each).
const BUFFER_SIZE: usize = 1024;
/// Encoded responses are handed to HTTP/2 once this much is buffered (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

fn buffer_settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

/// Decodes requests of type `R`; encodes [`Encoded`] responses.
pub struct AdsCodec<R>(PhantomData<fn() -> R>);

impl<R> Default for AdsCodec<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<R: Message + Default + Send + 'static> Codec for AdsCodec<R> {
    type Encode = Encoded;
    type Decode = R;
    type Encoder = PassThrough;
    type Decoder = RequestDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        PassThrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

/// Writes a response's pre-encoded bytes and its nonce.
pub struct PassThrough;

impl Encoder for PassThrough {
    type Item = Encoded;
    type Error = Status;

    fn encode(&mut self, item: Encoded, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.write_to(buf);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        buffer_settings()
    }
}

pub struct RequestDecoder<R>(PhantomData<fn() -> R>);

impl<R: Message + Default> Decoder for RequestDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        R::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        buffer_settings()
    }
}
