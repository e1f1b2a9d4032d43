//! Forwards Envoy's ACKs and NACKs to config without ever blocking a stream: reports go through
//! a bounded queue, and when it is full the oldest news is simply superseded by the next.

use flowplane_proto::state::v1::ReportStatusRequest;
use flowplane_runtime::shutdown::Shutdown;
use tokio::sync::mpsc;

use crate::sync::StateClient;

#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<ReportStatusRequest>,
}

impl Reporter {
    /// A reporter whose reports arrive on the returned receiver (tests, or a custom sink).
    pub fn channel() -> (Self, mpsc::Receiver<ReportStatusRequest>) {
        let (tx, rx) = mpsc::channel(1024);
        (Self { tx }, rx)
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

    pub fn report(&self, report: ReportStatusRequest) {
        if self.tx.try_send(report).is_err() {
            metrics::counter!("xds_status_reports_dropped_total").increment(1);
        }
    }
}
