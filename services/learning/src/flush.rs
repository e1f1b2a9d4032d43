//! Sends what this replica learned to config every interval, and once more on shutdown.

use std::sync::Arc;
use std::time::Duration;

use flowplane_proto::learning::v1::RecordRequest;
use flowplane_proto::learning::v1::learning_results_service_client::LearningResultsServiceClient;
use flowplane_runtime::credential::ClientCredential;
use flowplane_runtime::shutdown::Shutdown;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::aggregate::Aggregator;

pub type ConfigClient = LearningResultsServiceClient<InterceptedService<Channel, ClientCredential>>;

pub async fn run(
    aggregator: Arc<Aggregator>,
    mut client: ConfigClient,
    interval: Duration,
    shutdown: Shutdown,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => flush(&aggregator, &mut client).await,
            _ = shutdown.clone().wait() => {
                flush(&aggregator, &mut client).await;
                return;
            }
        }
    }
}

/// One flush: each session's aggregates in one call. What config could not take (it is
/// down) is kept for the next flush; what it refused (the session ended) is dropped.
pub async fn flush(aggregator: &Aggregator, client: &mut ConfigClient) {
    for ((team, session), endpoints) in aggregator.take() {
        let endpoints_json = endpoints
            .values()
            .filter_map(|e| serde_json::to_string(e).ok())
            .collect();
        let request = RecordRequest {
            team: team.clone(),
            session: session.clone(),
            endpoints_json,
        };
        match client.record(request).await {
            Ok(reply) if reply.get_ref().recorded => {
                metrics::counter!("learning_flushes_total", "result" => "recorded").increment(1);
            }
            Ok(_) => {
                metrics::counter!("learning_flushes_total", "result" => "session_inactive")
                    .increment(1);
                tracing::debug!(%team, %session, "session is not active; dropping what was learned");
            }
            Err(status) => {
                metrics::counter!("learning_flushes_total", "result" => "failed").increment(1);
                tracing::warn!(%team, %session, error = %status.message(), "cannot flush to config; keeping it for the next flush");
                aggregator.restore((team, session), endpoints);
            }
        }
    }
}
