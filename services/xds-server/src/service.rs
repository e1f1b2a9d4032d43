//! The gRPC face of ADS: the `AggregatedDiscoveryService`, which hands each stream to the
//! protocol machine for its variant, state of the world ([`crate::ads`]) or incremental
//! ([`crate::delta`]). Both read the same shared views and report to the same reporter.
//!
//! It routes the two methods itself rather than through the router `envoy-types` generates,
//! because that router fixes the codec: here responses go out through [`AdsCodec`], as bytes
//! encoded once and shared by every stream that sends the same content.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use flowplane_runtime::credential::DataplaneTokens;
use futures::Stream;
use tonic::body::Body;
use tonic::codegen::Body as HttpBody;
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService};
use tonic::{Request, Response, Status, Streaming};

use crate::codec::AdsCodec;
use crate::delivery::Deliveries;
use crate::outbox::{Outbox, drive};
use crate::snapshot::Store;
use crate::status::Reporter;
use crate::stream::{StreamContext, StreamCredential};
use crate::views::Views;
use crate::wire::Encoded;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// The ADS gRPC service, ready for `tonic::transport::Server::add_service`.
#[derive(Clone)]
pub struct AdsService {
    views: Arc<Views>,
    reporter: Reporter,
    deliveries: Arc<Deliveries>,
    /// Check the dataplane token each stream presents.
    tokens: DataplaneTokens,
}

impl AdsService {
    pub fn new(
        store: Arc<Store>,
        reporter: Reporter,
        tokens: DataplaneTokens,
        deliveries: Arc<Deliveries>,
    ) -> Self {
        Self {
            views: Arc::new(Views::new(store)),
            reporter,
            deliveries,
            tokens,
        }
    }

    /// What a new stream's protocol machine starts with, given its request metadata.
    fn context(&self, metadata: &tonic::metadata::MetadataMap) -> StreamContext {
        StreamContext {
            views: self.views.clone(),
            reporter: self.reporter.clone(),
            credential: StreamCredential::from_metadata(metadata, self.tokens.clone()),
            deliveries: self.deliveries.clone(),
        }
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<Encoded, Status>> + Send>>;

impl<B> Service<http::Request<B>> for AdsService
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.clone();
        match request.uri().path() {
            SOTW_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(AdsCodec::<DiscoveryRequest>::default());
                Ok(grpc.streaming(Sotw(service), request).await)
            }),
            DELTA_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(AdsCodec::<DeltaDiscoveryRequest>::default());
                Ok(grpc.streaming(Delta(service), request).await)
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

/// Runs the protocol machine of one stream inside its response body: what it sends is what
/// the body carries.
fn open<F>(serve: impl FnOnce(Outbox) -> F) -> Response<ResponseStream>
where
    F: Future<Output = ()> + Send + 'static,
{
    Response::new(Box::pin(drive(serve)))
}

struct Sotw(AdsService);

impl Service<Request<Streaming<DiscoveryRequest>>> for Sotw {
    type Response = Response<ResponseStream>;
    type Error = Status;
    type Future = Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Streaming<DiscoveryRequest>>) -> Self::Future {
        let context = self.0.context(request.metadata());
        ready(Ok(open(|tx| {
            crate::ads::serve(context, request.into_inner(), tx)
        })))
    }
}

struct Delta(AdsService);

impl Service<Request<Streaming<DeltaDiscoveryRequest>>> for Delta {
    type Response = Response<ResponseStream>;
    type Error = Status;
    type Future = Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Streaming<DeltaDiscoveryRequest>>) -> Self::Future {
        let context = self.0.context(request.metadata());
        ready(Ok(open(|tx| {
            crate::delta::serve(context, request.into_inner(), tx)
        })))
    }
}
