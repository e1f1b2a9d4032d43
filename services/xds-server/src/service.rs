//! The gRPC face of ADS: one `AggregatedDiscoveryService` that hands each stream to the
//! protocol machine for its variant, state of the world ([`crate::ads`]) or incremental
//! ([`crate::delta`]). Both read the same snapshot store and report to the same reporter.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::snapshot::Store;
use crate::status::Reporter;

/// How many responses may wait for a slow Envoy before a stream stops producing more.
const RESPONSE_BUFFER: usize = 16;

pub struct AdsService {
    store: Arc<Store>,
    reporter: Reporter,
}

impl AdsService {
    pub fn new(store: Arc<Store>, reporter: Reporter) -> Self {
        Self { store, reporter }
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        tokio::spawn(crate::ads::serve(
            self.store.clone(),
            self.reporter.clone(),
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        tokio::spawn(crate::delta::serve(
            self.store.clone(),
            self.reporter.clone(),
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
