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
//! token and id (set by the bootstrap's `flowplane_ratelimit` cluster), and the token must be
//! that dataplane's in the team the request names as its domain. A stranger that reaches the
//! port can neither spend a team's limits nor read its counts.

pub mod counters;
pub mod decide;
pub mod settings;

pub use settings::RateLimitConfig;

use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use flowplane_runtime::credential::{DataplaneTokens, metadata_text};
use flowplane_runtime::health::{self, Readiness};
use flowplane_runtime::shutdown::Shutdown;
use flowplane_xds::bootstrap::{DATAPLANE_ID_HEADER, DATAPLANE_TOKEN_HEADER};
use tonic::{Request, Response, Status};

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
            self.counters.add(&increments).await.map_err(|e| {
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
    tokens: DataplaneTokens,
}

impl RateLimitApi {
    pub fn new(limiter: RateLimiter, tokens: DataplaneTokens) -> Self {
        Self { limiter, tokens }
    }

    /// Whether the call comes from a dataplane of the team its request is about.
    fn authenticate(&self, request: &Request<RateLimitRequest>) -> Result<(), Status> {
        let header = |name: &str| metadata_text(request.metadata(), name);
        let (token, dataplane) = (header(DATAPLANE_TOKEN_HEADER), header(DATAPLANE_ID_HEADER));
        let team = &request.get_ref().domain;
        if token.is_empty() || !self.tokens.verify(team, dataplane, token) {
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
        self.authenticate(&request)?;
        self.limiter
            .decide(request.get_ref())
            .await
            .map(Response::new)
    }
}

/// Serves Envoy's Rate Limit Service until `shutdown`.
pub async fn run(config: RateLimitConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    if config.service_token.len() < 16 {
        anyhow::bail!(
            "FLOWPLANE_SERVICE_TOKEN must be set (at least 16 characters): it keys the dataplane tokens Envoys present"
        );
    }
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
    let router = tonic::transport::Server::builder().add_service(RateLimitServiceServer::new(
        RateLimitApi::new(limiter, DataplaneTokens::new(&config.service_token)),
    ));
    flowplane_runtime::tls::serve(router, config.grpc_addr, tls, shutdown.clone().wait()).await?;
    readiness.set(false);
    let _ = http.await;
    Ok(())
}
