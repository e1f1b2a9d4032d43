//! The ratelimit service: Envoy's global Rate Limit Service. Envoys of every team ask it
//! whether a request is within its limits; it counts in Redis, so a limit holds across every
//! Envoy and every replica of this service.
//!
//! - [`settings`]: its `FLOWPLANE_*` settings
//! - [`decide`]: which counters a request touches and what the answer is (pure)
//! - [`counters`]: fixed-window counters in Redis (or in-process for a single replica)
//!
//! It holds no configuration: each descriptor carries its limit, as translated from the
//! listener's `globalRateLimit` filter, so it always applies exactly what the asking Envoy
//! accepted, and scales out as a stateless deployment.
//!
//! Only dataplanes may ask, and only about their own team: every call carries the dataplane's
//! token and id (set by the bootstrap's `flowplane_ratelimit` cluster), and config must vouch
//! that the token is that live dataplane's in the team the request names as its domain
//! (`DataplaneVerifier`; ratelimit holds no key). A stranger that reaches the port can neither
//! spend a team's limits nor read its counts.

pub mod counters;
pub mod decide;
pub mod settings;

pub use settings::RateLimitConfig;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use flowplane_runtime::credential::{Service, ServiceCredential, metadata_text};
use flowplane_runtime::dataplanes::DataplaneVerifier;
use flowplane_runtime::health::{self, Readiness};
use flowplane_runtime::shutdown::Shutdown;
use flowplane_runtime::tls::config_endpoint;
use flowplane_xds::bootstrap::{DATAPLANE_ID_HEADER, DATAPLANE_TOKEN_HEADER};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use counters::Counters;

pub struct RateLimiter {
    counters: Counters,
    prefix: String,
}

impl RateLimiter {
    pub fn new(counters: Counters, prefix: &str) -> Self {
        Self {
            counters,
            prefix: prefix.to_string(),
        }
    }

    /// Counts the request against every limit it carries and says whether any is exceeded.
    pub async fn decide(&self, request: &RateLimitRequest) -> Result<RateLimitResponse, Status> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Status::internal("the clock is before 1970"))?
            .as_secs();
        let checks = decide::checks(&self.prefix, request, now);
        let increments: Vec<_> = checks.iter().map(|c| c.increment.clone()).collect();
        let counts = if increments.is_empty() {
            Vec::new()
        } else {
            let span = tracing::info_span!("ratelimit.count", limits = increments.len());
            self.counters.add(&increments).instrument(span).await.map_err(|e| {
                metrics::counter!("ratelimit_errors_total").increment(1);
                tracing::warn!(error = %e, "cannot count; Envoy applies the filter's failure mode");
                Status::unavailable(e.to_string())
            })?
        };
        let response = decide::response(request, &checks, &counts);
        let over = response.overall_code
            == envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code::OverLimit
                as i32;
        metrics::counter!("ratelimit_decisions_total", "code" => if over { "over_limit" } else { "ok" })
            .increment(1);
        Ok(response)
    }
}

/// The gRPC face: checks who is asking, then lets the limiter decide.
pub struct RateLimitApi {
    limiter: RateLimiter,
    dataplanes: Arc<DataplaneVerifier>,
}

impl RateLimitApi {
    pub fn new(limiter: RateLimiter, dataplanes: Arc<DataplaneVerifier>) -> Self {
        Self {
            limiter,
            dataplanes,
        }
    }

    /// Whether the call comes from a dataplane of the team its request is about.
    async fn authenticate(&self, request: &Request<RateLimitRequest>) -> Result<(), Status> {
        let header = |name: &str| metadata_text(request.metadata(), name);
        let (token, dataplane) = (header(DATAPLANE_TOKEN_HEADER), header(DATAPLANE_ID_HEADER));
        let team = &request.get_ref().domain;
        if !self.dataplanes.verify(team, dataplane, token).await? {
            metrics::counter!("ratelimit_refused_total").increment(1);
            return Err(Status::unauthenticated(format!(
                "missing or wrong {DATAPLANE_TOKEN_HEADER} for this domain; use the bootstrap from the envoy-config endpoint"
            )));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RateLimitService for RateLimitApi {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        self.authenticate(&request).await?;
        self.limiter
            .decide(request.get_ref())
            .await
            .map(Response::new)
    }
}

/// Serves Envoy's Rate Limit Service until `shutdown`.
pub async fn run(config: RateLimitConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let credential = ServiceCredential::new(Service::Ratelimit, &config.service_credential)?;
    let channel = config_endpoint(&config.config_url, config.config_ca_file.as_deref())?
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(10))
        .connect_lazy();
    let dataplanes = Arc::new(DataplaneVerifier::new(channel, credential.client()));
    // A bad certificate stops the start here.
    let tls = config
        .tls
        .as_ref()
        .map(flowplane_runtime::tls::TlsFiles::acceptor)
        .transpose()?;
    let counters = match &config.redis_url {
        Some(url) => Counters::redis(url)?,
        None => {
            tracing::info!(
                "FLOWPLANE_REDIS_URL is not set: global rate limits are counted in this process only (set it when running several ratelimit replicas)"
            );
            Counters::local()
        }
    };
    tracing::info!(counters = counters.describe(), addr = %config.grpc_addr, "ratelimit serving Envoy's Rate Limit Service");
    let readiness = Readiness::new();
    let http = tokio::spawn(health::serve(
        config.http_addr,
        health::router(readiness.clone()),
        shutdown.clone(),
    ));
    let limiter = RateLimiter::new(counters, &config.redis_prefix);
    readiness.set(true);
    let router = tonic::transport::Server::builder()
        .trace_fn(flowplane_runtime::telemetry::grpc_span)
        .add_service(RateLimitServiceServer::new(RateLimitApi::new(
            limiter, dataplanes,
        )));
    flowplane_runtime::tls::serve(router, config.grpc_addr, tls, shutdown.clone().wait()).await?;
    readiness.set(false);
    let _ = http.await;
    Ok(())
}
