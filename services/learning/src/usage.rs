//! Usage counting: Envoy streams its access log of every request to the learning service
//! (gRPC Access Log Service, one stream per listener and Envoy, in batches); each entry adds
//! one request to the count of its minute, listener, route, cluster and status class. Counts
//! add up, so any number of replicas can count and config sums what they flush.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::data::accesslog::v3::HttpAccessLogEntry;
use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::AccessLogService;
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
use envoy_types::pb::envoy::service::accesslog::v3::{
    StreamAccessLogsMessage, StreamAccessLogsResponse,
};
use flowplane_proto::reports::v1::UsageCount;
use flowplane_runtime::credential::metadata_text;
use flowplane_runtime::dataplanes::DataplaneVerifier;
use flowplane_xds::bootstrap::{
    DATAPLANE_ID_HEADER, DATAPLANE_TOKEN_HEADER, NODE_TEAM_KEY, node_metadata,
};
use tonic::{Request, Response, Status, Streaming};

/// What one count is of: minute (unix seconds), listener, route, cluster, status class.
type UsageKey = (i64, String, String, String, u32);
/// Requests, and their summed duration in ms.
type Tally = (u64, u64);

/// Requests and their summed duration (ms) per key, per team, since the last flush.
#[derive(Default)]
pub struct UsageCounter {
    pending: Mutex<HashMap<String, HashMap<UsageKey, Tally>>>,
}

impl UsageCounter {
    /// Counts one request seen on `listener` of `team`.
    pub fn count(&self, team: &str, listener: &str, entry: &HttpAccessLogEntry) {
        let common = entry.common_properties.clone().unwrap_or_default();
        let minute = common
            .start_time
            .map_or(0, |t| t.seconds - t.seconds.rem_euclid(60));
        let status = entry
            .response
            .as_ref()
            .and_then(|r| r.response_code)
            .map_or(0, |code| code.value / 100);
        let duration_ms = common.duration.map_or(0, |d| {
            let millis = d.seconds.saturating_mul(1000) + i64::from(d.nanos / 1_000_000);
            u64::try_from(millis).unwrap_or_default()
        });
        let key = (
            minute,
            listener.to_string(),
            common.route_name,
            common.upstream_cluster,
            if status <= 5 { status } else { 0 },
        );
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let count = pending
            .entry(team.to_string())
            .or_default()
            .entry(key)
            .or_default();
        count.0 += 1;
        count.1 = count.1.saturating_add(duration_ms);
        metrics::counter!("learning_requests_counted_total").increment(1);
    }

    /// Everything pending, per team, leaving nothing.
    pub fn take(&self) -> HashMap<String, Vec<UsageCount>> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        pending
            .into_iter()
            .map(|(team, counts)| {
                let counts = counts
                    .into_iter()
                    .map(
                        |(
                            (minute, listener, route, cluster, status_class),
                            (requests, duration),
                        )| {
                            UsageCount {
                                minute,
                                listener,
                                route,
                                cluster,
                                status_class,
                                requests,
                                duration_ms_sum: duration,
                            }
                        },
                    )
                    .collect();
                (team, counts)
            })
            .collect()
    }

    /// Puts back counts that could not be flushed; they add to whatever came since.
    pub fn restore(&self, team: &str, counts: Vec<UsageCount>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let team = pending.entry(team.to_string()).or_default();
        for c in counts {
            let count = team
                .entry((c.minute, c.listener, c.route, c.cluster, c.status_class))
                .or_default();
            count.0 += c.requests;
            count.1 = count.1.saturating_add(c.duration_ms_sum);
        }
    }
}

/// The Access Log Service face: only a dataplane's Envoy, proven by its token, may stream,
/// and its counts go to the team its node names. The token is checked again with every
/// message (answers are cached), so a deleted dataplane's open stream stops counting too.
pub struct AccessLogs {
    dataplanes: Arc<DataplaneVerifier>,
    counter: Arc<UsageCounter>,
}

impl AccessLogs {
    pub fn new(dataplanes: Arc<DataplaneVerifier>, counter: Arc<UsageCounter>) -> Self {
        Self {
            dataplanes,
            counter,
        }
    }

    async fn authenticate(&self, team: &str, dataplane: &str, token: &str) -> Result<(), Status> {
        if self.dataplanes.verify(team, dataplane, token).await? {
            return Ok(());
        }
        metrics::counter!("learning_refused_total").increment(1);
        Err(Status::unauthenticated(format!(
            "missing or wrong {DATAPLANE_TOKEN_HEADER} for this node; use the bootstrap from the envoy-config endpoint"
        )))
    }
}

#[tonic::async_trait]
impl AccessLogService for AccessLogs {
    async fn stream_access_logs(
        &self,
        request: Request<Streaming<StreamAccessLogsMessage>>,
    ) -> Result<Response<StreamAccessLogsResponse>, Status> {
        let header = |name: &str| metadata_text(request.metadata(), name).to_string();
        let (token, dataplane) = (header(DATAPLANE_TOKEN_HEADER), header(DATAPLANE_ID_HEADER));
        let mut stream = request.into_inner();
        // The first message names the node and the log (the listener); later ones do not.
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty access log stream"))?;
        let identifier = first.identifier.clone().unwrap_or_default();
        let team = identifier
            .node
            .as_ref()
            .and_then(|node| node_metadata(node, NODE_TEAM_KEY))
            .unwrap_or_default();
        let listener = identifier.log_name;
        let mut next = Some(first);
        while let Some(message) = next {
            self.authenticate(&team, &dataplane, &token).await?;
            if let Some(LogEntries::HttpLogs(logs)) = message.log_entries {
                for entry in &logs.log_entry {
                    self.counter.count(&team, &listener, entry);
                }
            }
            next = stream.message().await?;
        }
        Ok(Response::new(StreamAccessLogsResponse {}))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::data::accesslog::v3::{AccessLogCommon, HttpResponseProperties};
    use envoy_types::pb::google::protobuf::{Duration, Timestamp};

    fn entry(second: i64, route: &str, status: Option<u32>, millis: i32) -> HttpAccessLogEntry {
        HttpAccessLogEntry {
            common_properties: Some(AccessLogCommon {
                start_time: Some(Timestamp {
                    seconds: second,
                    nanos: 0,
                }),
                duration: Some(Duration {
                    seconds: 0,
                    nanos: millis * 1_000_000,
                }),
                route_name: route.into(),
                upstream_cluster: "users".into(),
                ..Default::default()
            }),
            response: Some(HttpResponseProperties {
                response_code: status
                    .map(|value| envoy_types::pb::google::protobuf::UInt32Value { value }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn requests_count_per_minute_route_and_status_class() {
        let counter = UsageCounter::default();
        counter.count("t", "edge", &entry(120, "users", Some(200), 10));
        counter.count("t", "edge", &entry(179, "users", Some(204), 30));
        counter.count("t", "edge", &entry(180, "users", Some(503), 5));
        counter.count("t", "edge", &entry(181, "users", None, 1));
        let mut counts = counter.take().remove("t").unwrap();
        counts.sort_by_key(|c| (c.minute, c.status_class));
        let summary: Vec<(i64, u32, u64, u64)> = counts
            .iter()
            .map(|c| (c.minute, c.status_class, c.requests, c.duration_ms_sum))
            .collect();
        assert_eq!(summary, [(120, 2, 2, 40), (180, 0, 1, 1), (180, 5, 1, 5)]);
        assert!(counter.take().is_empty());
    }

    #[test]
    fn restored_counts_add_to_new_ones() {
        let counter = UsageCounter::default();
        counter.count("t", "edge", &entry(60, "users", Some(200), 10));
        let taken = counter.take().remove("t").unwrap();
        counter.count("t", "edge", &entry(61, "users", Some(200), 10));
        counter.restore("t", taken);
        let counts = counter.take().remove("t").unwrap();
        assert_eq!(counts.len(), 1);
        assert_eq!((counts[0].requests, counts[0].duration_ms_sum), (2, 20));
    }
}
