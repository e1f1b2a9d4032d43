//! Sends what this replica learned and counted to config every interval, and once more on
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use flowplane_proto::learning::v1::RecordRequest;
use flowplane_proto::learning::v1::learning_results_service_client::LearningResultsServiceClient;
use flowplane_proto::reports::v1::RecordUsageRequest;
use flowplane_proto::reports::v1::report_service_client::ReportServiceClient;
use flowplane_runtime::credential::ClientCredential;
use flowplane_runtime::shutdown::Shutdown;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::aggregate::Aggregator;
use crate::usage::UsageCounter;

type ConfigChannel = InterceptedService<Channel, ClientCredential>;

/// The config services a flush calls.
pub struct Clients {
    pub learning: LearningResultsServiceClient<ConfigChannel>,
    pub reports: ReportServiceClient<ConfigChannel>,
}

pub async fn run(
    aggregator: Arc<Aggregator>,
    counter: Arc<UsageCounter>,
    mut clients: Clients,
    interval: Duration,
    shutdown: Shutdown,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                flush(&aggregator, &mut clients.learning).await;
                flush_usage(&counter, &mut clients.reports).await;
            }
            _ = shutdown.clone().wait() => {
                flush(&aggregator, &mut clients.learning).await;
                flush_usage(&counter, &mut clients.reports).await;
                return;
            }
        }
    }
}

/// One flush: each session's aggregates in one call. What config could not take (it is
/// down) is kept for the next flush; what it refused (the session ended) is dropped.
pub async fn flush(
    aggregator: &Aggregator,
    client: &mut LearningResultsServiceClient<ConfigChannel>,
) {
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
        // Each flush starts a trace of its own that config's call joins.
        let span =
            tracing::info_span!("learning.flush", %team, %session, endpoints = endpoints.len());
        match client.record(request).instrument(span).await {
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

/// Each team's counts in one call; what config could not take is counted again next time.
pub async fn flush_usage(counter: &UsageCounter, client: &mut ReportServiceClient<ConfigChannel>) {
    for (team, counts) in counter.take() {
        let request = RecordUsageRequest {
            team: team.clone(),
            counts: counts.clone(),
        };
        let span = tracing::info_span!("learning.flush_usage", %team);
        if let Err(status) = client.record_usage(request).instrument(span).await {
            metrics::counter!("learning_flushes_total", "result" => "usage_failed").increment(1);
            tracing::warn!(%team, error = %status.message(), "cannot flush usage to config; keeping it for the next flush");
            counter.restore(&team, counts);
        }
    }
}
