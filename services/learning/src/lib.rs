//! The learning service: learns the shape of a team's APIs from live traffic, and counts
//! the requests every listener serves (usage reports).
//!
//! - [`settings`]: its `FLOWPLANE_*` settings
//! - [`processor`]: the External Processor Envoys copy exchanges to (gRPC), authenticated by
//!   dataplane token (config checks it; learning holds no key)
//! - [`exchange`]: one exchange put back together from Envoy's messages
//! - [`aggregate`]: per-session aggregates, mergeable (the shapes are
//!   `flowplane_domain::learning`)
//! - [`usage`]: the Access Log Service Envoys stream every request's log to; counts per
//!   minute, listener, route, cluster and status class
//! - [`flush`]: aggregates and counts sent to config every interval
//!
//! It holds nothing durable: what it learned since the last flush is all it could lose, and
//! any number of replicas can run, since config merges their aggregates.

pub mod aggregate;
pub mod exchange;
pub mod flush;
pub mod processor;
pub mod settings;
pub mod usage;

pub use settings::LearningConfig;

use std::sync::Arc;

use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::AccessLogServiceServer;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::ExternalProcessorServer;
use flowplane_proto::learning::v1::learning_results_service_client::LearningResultsServiceClient;
use flowplane_proto::reports::v1::report_service_client::ReportServiceClient;
use flowplane_runtime::credential::{Service, ServiceCredential};
use flowplane_runtime::dataplanes::DataplaneVerifier;
use flowplane_runtime::health::{self, Readiness};
use flowplane_runtime::shutdown::Shutdown;
use flowplane_runtime::tls::config_endpoint;

/// Serves the External Processor until `shutdown`, flushing to config as it goes.
pub async fn run(config: LearningConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let credential = ServiceCredential::new(Service::Learning, &config.service_credential)?;
    // A bad certificate stops the start here.
    let tls = config
        .tls
        .as_ref()
        .map(flowplane_runtime::tls::TlsFiles::acceptor)
        .transpose()?;
    let channel = config_endpoint(&config.config_url, config.config_ca_file.as_deref())?
        .connect_timeout(std::time::Duration::from_secs(3))
        // A hung config fails a flush (kept for the next) rather than stalling it.
        .timeout(std::time::Duration::from_secs(30))
        .connect_lazy();
    let clients = flush::Clients {
        learning: LearningResultsServiceClient::with_interceptor(
            channel.clone(),
            credential.client(),
        ),
        reports: ReportServiceClient::with_interceptor(channel.clone(), credential.client()),
    };
    let dataplanes = Arc::new(DataplaneVerifier::new(channel, credential.client()));
    let aggregator = Arc::new(aggregate::Aggregator::default());
    let counter = Arc::new(usage::UsageCounter::default());
    let readiness = Readiness::new();
    let http = tokio::spawn(health::serve(
        config.http_addr,
        health::router(readiness.clone()),
        shutdown.clone(),
    ));
    let flusher = tokio::spawn(flush::run(
        aggregator.clone(),
        counter.clone(),
        clients,
        config.flush_interval,
        shutdown.clone(),
    ));
    tracing::info!(addr = %config.grpc_addr, "learning serving Envoy's External Processor and Access Log Service");
    readiness.set(true);
    let processor = processor::Processor::new(dataplanes.clone(), aggregator);
    let access_logs = usage::AccessLogs::new(dataplanes, counter);
    let router = tonic::transport::Server::builder()
        .trace_fn(flowplane_runtime::telemetry::grpc_span)
        .add_service(ExternalProcessorServer::new(processor))
        .add_service(AccessLogServiceServer::new(access_logs));
    flowplane_runtime::tls::serve(router, config.grpc_addr, tls, shutdown.clone().wait()).await?;
    readiness.set(false);
    let _ = flusher.await;
    let _ = http.await;
    Ok(())
}
