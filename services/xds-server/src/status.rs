//! Forwards Envoy's ACKs and NACKs to config without ever blocking a stream: reports go through
//! a bounded queue, and when it is full the oldest news is simply superseded by the next.
//!
//! Status is kept per dataplane, not per Envoy, so when a fleet of Envoys of one dataplane
//! ACKs the same version, only the first answer is news: the rest are not sent, which keeps a
//! change to a large fleet from turning into one config call per Envoy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flowplane_proto::state::v1::ReportStatusRequest;
use flowplane_runtime::shutdown::Shutdown;
use tokio::sync::mpsc;

use crate::sync::StateClient;

#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<ReportStatusRequest>,
    /// The last report sent for each (team, dataplane, type).
    last: Arc<Mutex<Last>>,
}

/// team → dataplane → type → the last report sent: nested, so that checking whether a report
/// is news (10,000 times per change with a large fleet) needs no allocation.
#[derive(Default)]
struct Last(HashMap<String, HashMap<String, HashMap<String, ReportStatusRequest>>>);

impl Last {
    fn get(&self, team: &str, dataplane: &str, type_url: &str) -> Option<&ReportStatusRequest> {
        self.0.get(team)?.get(dataplane)?.get(type_url)
    }

    fn insert(&mut self, report: ReportStatusRequest) {
        self.0
            .entry(report.team.clone())
            .or_default()
            .entry(report.dataplane.clone())
            .or_default()
            .insert(report.type_url.clone(), report);
    }
}

/// What a report says, borrowed, to compare with the last one before building it.
pub struct News<'a, N> {
    pub team: &'a str,
    pub dataplane: &'a str,
    pub type_url: &'a str,
    pub version: &'a str,
    pub accepted: bool,
    pub error_message: &'a str,
    pub resource_names: N,
}

impl Reporter {
    /// A reporter whose reports arrive on the returned receiver (tests, or a custom sink).
    pub fn channel() -> (Self, mpsc::Receiver<ReportStatusRequest>) {
        let (tx, rx) = mpsc::channel(1024);
        let last = Arc::default();
        (Self { tx, last }, rx)
    }

    /// A reporter that forwards to config's StateService.
    pub fn spawn(mut client: StateClient, shutdown: Shutdown) -> Self {
        let (reporter, mut rx) = Self::channel();
        tokio::spawn(async move {
            loop {
                let report = tokio::select! {
                    report = rx.recv() => match report { Some(r) => r, None => return },
                    _ = shutdown.clone().wait() => return,
                };
                if let Err(e) = client.report_status(report).await {
                    tracing::warn!(error = %e, "could not report dataplane status to config");
                }
            }
        });
        reporter
    }

    /// Reports what `news` says, unless it is what was last reported for its dataplane and
    /// type; `build` makes the report only when it is news.
    pub fn report_news<'n, N>(&self, news: News<'_, N>, build: impl FnOnce() -> ReportStatusRequest)
    where
        N: Iterator<Item = &'n str>,
    {
        let old = {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            last.get(news.team, news.dataplane, news.type_url)
                .is_some_and(|previous| same_news(previous, news))
        };
        if !old {
            self.report(build());
        }
    }

    pub fn report(&self, report: ReportStatusRequest) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last
            .get(&report.team, &report.dataplane, &report.type_url)
            .is_some_and(|previous| same_news(previous, news_of(&report)))
        {
            return;
        }
        match self.tx.try_send(report.clone()) {
            Ok(()) => last.insert(report),
            Err(_) => metrics::counter!("xds_status_reports_dropped_total").increment(1),
        }
    }
}

fn news_of(report: &ReportStatusRequest) -> News<'_, impl Iterator<Item = &str>> {
    News {
        team: &report.team,
        dataplane: &report.dataplane,
        type_url: &report.type_url,
        version: &report.version,
        accepted: report.accepted,
        error_message: &report.error_message,
        resource_names: report.resource_names.iter().map(String::as_str),
    }
}

/// Whether `news` tells config nothing `previous` did not (the node that said it aside).
fn same_news<'n>(
    previous: &ReportStatusRequest,
    news: News<'_, impl Iterator<Item = &'n str>>,
) -> bool {
    previous.version == news.version
        && previous.accepted == news.accepted
        && previous.error_message == news.error_message
        && previous
            .resource_names
            .iter()
            .map(String::as_str)
            .eq(news.resource_names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(node: &str, version: &str) -> ReportStatusRequest {
        ReportStatusRequest {
            team: "t".into(),
            dataplane: "edge".into(),
            node_id: node.into(),
            type_url: "cds".into(),
            version: version.into(),
            resource_names: vec!["a".into()],
            accepted: true,
            error_message: String::new(),
            resource_revisions: vec![1],
        }
    }

    #[test]
    fn a_fleet_acking_the_same_version_is_reported_once_and_news_gets_through() {
        let (reporter, mut rx) = Reporter::channel();
        reporter.report(ack("envoy-1", "v1"));
        reporter.report(ack("envoy-2", "v1"));
        reporter.report(ack("envoy-2", "v2"));
        let mut nack = ack("envoy-3", "v2");
        nack.accepted = false;
        nack.error_message = "bad".into();
        reporter.report(nack);
        let mut other_dataplane = ack("envoy-4", "v2");
        other_dataplane.dataplane = "other".into();
        reporter.report(other_dataplane);
        let sent: Vec<(String, String, bool)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| (r.dataplane, r.version, r.accepted))
            .collect();
        assert_eq!(
            sent,
            [
                ("edge".to_string(), "v1".to_string(), true),
                ("edge".to_string(), "v2".to_string(), true),
                ("edge".to_string(), "v2".to_string(), false),
                ("other".to_string(), "v2".to_string(), true),
            ]
        );
    }
}
