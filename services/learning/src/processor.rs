//! The External Processor face: Envoy opens one stream per HTTP exchange on a listener with
//! an active learning session, and copies the exchange into it without waiting for answers
//! (observability mode). Only a dataplane of the session's team may send.

use std::sync::Arc;

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessor;
use envoy_types::pb::envoy::service::ext_proc::v3::{ProcessingRequest, ProcessingResponse};
use flowplane_runtime::credential::metadata_text;
use flowplane_runtime::dataplanes::DataplaneVerifier;
use flowplane_xds::bootstrap::{DATAPLANE_ID_HEADER, DATAPLANE_TOKEN_HEADER};
use flowplane_xds::learning::{PATH_PREFIX_HEADER, SESSION_HEADER, TEAM_HEADER};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::aggregate::{Aggregator, SessionKey};
use crate::exchange::{Exchange, Progress};

pub struct Processor {
    dataplanes: Arc<DataplaneVerifier>,
    aggregator: Arc<Aggregator>,
}

impl Processor {
    pub fn new(dataplanes: Arc<DataplaneVerifier>, aggregator: Arc<Aggregator>) -> Self {
        Self {
            dataplanes,
            aggregator,
        }
    }

    /// The session the stream is for, once the caller is proven to be a dataplane of its
    /// team; and the session's path prefix.
    async fn authenticate(&self, metadata: &MetadataMap) -> Result<(SessionKey, String), Status> {
        let header = |name: &str| metadata_text(metadata, name).to_string();
        let team = header(TEAM_HEADER);
        let token = header(DATAPLANE_TOKEN_HEADER);
        if !self
            .dataplanes
            .verify(&team, &header(DATAPLANE_ID_HEADER), &token)
            .await?
        {
            metrics::counter!("learning_refused_total").increment(1);
            return Err(Status::unauthenticated(format!(
                "missing or wrong {DATAPLANE_TOKEN_HEADER} for this team; use the bootstrap from the envoy-config endpoint"
            )));
        }
        let session = header(SESSION_HEADER);
        if session.is_empty() {
            return Err(Status::invalid_argument(format!(
                "{SESSION_HEADER} is required"
            )));
        }
        let prefix = match header(PATH_PREFIX_HEADER) {
            p if p.is_empty() => "/".to_string(),
            p => p,
        };
        Ok(((team, session), prefix))
    }
}

#[tonic::async_trait]
impl ExternalProcessor for Processor {
    type ProcessStream = ReceiverStream<Result<ProcessingResponse, Status>>;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let (session, prefix) = self.authenticate(request.metadata()).await?;
        let mut inbound = request.into_inner();
        let aggregator = self.aggregator.clone();
        // Nothing is ever sent back (observability mode); the stream stays open until the
        // exchange is read, and closing it tells Envoy to send no more.
        let (done, answers) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut exchange = Exchange::default();
            while let Ok(Some(message)) = inbound.message().await {
                match exchange.add(message, &prefix) {
                    Progress::More => {}
                    Progress::Unwanted => break,
                    Progress::Complete => {
                        if let Some(observation) = exchange.observation() {
                            aggregator.observe(&session, &observation);
                        }
                        break;
                    }
                }
            }
            drop(done);
        });
        Ok(Response::new(ReceiverStream::new(answers)))
    }
}
