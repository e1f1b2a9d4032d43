//! Which service is calling config, and whether it may call this method. Every internal call
//! carries its service's own credential (`fpsvc_{service}_{mac}`, see
//! `flowplane_runtime::credential`); [`ServiceAuthLayer`] checks it and then this table, in
//! front of every gRPC service config serves, so a method a service is not allowed is
//! refused before any handler runs. Acting for a user takes more: the caller's principal as
//! config signed it ([`Keys::sign_principal`]), which only api-gateway is ever given.

use std::task::{Context as TaskContext, Poll};

use flowplane_proto::common::v1::{AssertedPrincipal, Principal, SignedPrincipal};
use flowplane_runtime::bus::EventKey;
use flowplane_runtime::credential::{
    DataplaneTokens, Service, ServiceSecret, constant_time_eq, hmac_sha256,
};
use futures::future::{Either, Ready, ready};
use prost::Message;
use tonic::Status;
use tonic::codegen::http;
use tracing::Instrument;
use tracing::instrument::Instrumented;

const RESOURCES: &str = "flowplane.resources.v1.ResourceService";
const API_DEFINITIONS: &str = "flowplane.resources.v1.ApiDefinitionService";
const IDENTITY: &str = "flowplane.identity.v1.IdentityService";
const STATE: &str = "flowplane.state.v1.StateService";
const DATAPLANES: &str = "flowplane.state.v1.DataplaneService";
const LEARNING: &str = "flowplane.learning.v1.LearningResultsService";
const REPORTS: &str = "flowplane.reports.v1.ReportService";

/// Whether `service` may call `method` of gRPC service `grpc_service`.
pub fn allowed(service: Service, grpc_service: &str, method: &str) -> bool {
    match service {
        // Acting for users: everything users can do, and nothing only services do.
        Service::ApiGateway => match grpc_service {
            RESOURCES | API_DEFINITIONS | IDENTITY => true,
            LEARNING => method == "ListLearned",
            REPORTS => matches!(
                method,
                "RouteFlows"
                    | "Usage"
                    | "Trace"
                    | "Findings"
                    | "Preflight"
                    | "Delivery"
                    | "Topology"
            ),
            _ => false,
        },
        // State, secret material, and what Envoys accepted.
        Service::XdsServer => grpc_service == STATE,
        // What it learned and counted, and who the Envoys calling it are.
        Service::Learning => matches!(
            (grpc_service, method),
            (LEARNING, "Record") | (REPORTS, "RecordUsage") | (DATAPLANES, "Verify")
        ),
        Service::Ratelimit => (grpc_service, method) == (DATAPLANES, "Verify"),
    }
}

/// The keys config derives from its service secret.
#[derive(Debug, Clone)]
pub struct Keys {
    secret: ServiceSecret,
    principals: [u8; 32],
    pub events: EventKey,
    pub dataplanes: DataplaneTokens,
}

impl Keys {
    pub fn new(secret: ServiceSecret) -> Self {
        Self {
            principals: secret.derive("flowplane principal assertions v1"),
            events: EventKey::of(&secret),
            dataplanes: secret.dataplane_tokens(),
            secret,
        }
    }

    /// Checks service credentials and the method table in front of config's gRPC services.
    pub fn layer(&self) -> ServiceAuthLayer {
        ServiceAuthLayer {
            secret: self.secret.clone(),
        }
    }

    /// `principal`, signed, for config to act on until `expires_at_unix_ms`.
    pub fn sign_principal(&self, principal: Principal, expires_at_unix_ms: i64) -> SignedPrincipal {
        let claims = AssertedPrincipal {
            principal: Some(principal),
            expires_at_unix_ms,
        }
        .encode_to_vec();
        let mac = hmac_sha256(&self.principals, &[&claims]).to_vec();
        SignedPrincipal { claims, mac }
    }

    /// The principal in `signed`, if config signed it and it has not expired at `now_unix_ms`.
    pub fn verify_principal(
        &self,
        signed: &SignedPrincipal,
        now_unix_ms: i64,
    ) -> Result<Principal, &'static str> {
        let expected = hmac_sha256(&self.principals, &[&signed.claims]);
        if !constant_time_eq(&expected, &signed.mac) {
            return Err("the principal is not one config signed");
        }
        let claims = AssertedPrincipal::decode(signed.claims.as_slice())
            .map_err(|_| "the principal is not one config signed")?;
        if claims.expires_at_unix_ms <= now_unix_ms {
            return Err("the principal has expired; authenticate again");
        }
        claims.principal.ok_or("the principal is empty")
    }
}

/// Checks the service credential and the method table in front of every gRPC service.
#[derive(Clone)]
pub struct ServiceAuthLayer {
    secret: ServiceSecret,
}

impl<S> tower::Layer<S> for ServiceAuthLayer {
    type Service = ServiceAuth<S>;

    fn layer(&self, inner: S) -> ServiceAuth<S> {
        ServiceAuth {
            secret: self.secret.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct ServiceAuth<S> {
    secret: ServiceSecret,
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for ServiceAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let presented = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some(service) = self.secret.authenticate(presented) else {
            metrics::counter!("config_service_calls_refused_total", "reason" => "unauthenticated")
                .increment(1);
            return Either::Left(ready(Ok(Status::unauthenticated(
                "missing or invalid service credential",
            )
            .into_http())));
        };
        let (grpc_service, method) = request
            .uri()
            .path()
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or_default();
        if !allowed(service, grpc_service, method) {
            metrics::counter!("config_service_calls_refused_total", "reason" => "not_allowed", "service" => service.name())
                .increment(1);
            tracing::warn!(%service, grpc_service, method, "refused a method this service may not call");
            return Either::Left(ready(Ok(Status::permission_denied(format!(
                "{service} may not call {grpc_service}/{method}"
            ))
            .into_http())));
        }
        // The call's span continues the caller's trace (its `traceparent`).
        let span = flowplane_runtime::telemetry::grpc_span(&request);
        span.record("caller", tracing::field::display(service));
        request.extensions_mut().insert(service);
        Either::Right(self.inner.call(request).instrument(span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_gateway_acts_for_users() {
        for service in [Service::XdsServer, Service::Learning, Service::Ratelimit] {
            for (grpc, method) in [
                (RESOURCES, "Create"),
                (IDENTITY, "CreateToken"),
                (IDENTITY, "Authenticate"),
                (API_DEFINITIONS, "Apply"),
                (LEARNING, "ListLearned"),
            ] {
                assert!(!allowed(service, grpc, method), "{service} {grpc}/{method}");
            }
        }
        assert!(allowed(Service::ApiGateway, IDENTITY, "Authenticate"));
        assert!(!allowed(Service::ApiGateway, STATE, "GetSecrets"));
        assert!(!allowed(Service::ApiGateway, LEARNING, "Record"));
    }

    #[test]
    fn secret_material_goes_to_replicas_only() {
        assert!(allowed(Service::XdsServer, STATE, "GetSecrets"));
        assert!(allowed(Service::XdsServer, STATE, "StreamState"));
        for service in [Service::ApiGateway, Service::Learning, Service::Ratelimit] {
            for method in ["GetSecrets", "StreamState", "GetReplicaKeys"] {
                assert!(!allowed(service, STATE, method), "{service} {method}");
            }
        }
        assert!(allowed(Service::Learning, DATAPLANES, "Verify"));
        assert!(allowed(Service::Ratelimit, DATAPLANES, "Verify"));
        assert!(!allowed(Service::Ratelimit, REPORTS, "RecordUsage"));
    }

    #[test]
    fn signed_principals_cannot_be_altered_or_outlive_their_expiry() {
        let keys = Keys::new(ServiceSecret::new("0123456789abcdef-secret").unwrap());
        let principal = Principal {
            user_id: "u1".into(),
            scopes: vec!["team:a:clusters:read".into()],
            ..Default::default()
        };
        let signed = keys.sign_principal(principal.clone(), 2_000);
        assert_eq!(keys.verify_principal(&signed, 1_000), Ok(principal.clone()));
        assert!(keys.verify_principal(&signed, 2_000).is_err());
        // Widened scopes under the old MAC: refused.
        let widened = AssertedPrincipal {
            principal: Some(Principal {
                scopes: vec!["admin:all".into()],
                ..principal
            }),
            expires_at_unix_ms: 2_000,
        };
        let forged = SignedPrincipal {
            claims: widened.encode_to_vec(),
            mac: signed.mac.clone(),
        };
        assert!(keys.verify_principal(&forged, 1_000).is_err());
        let other = Keys::new(ServiceSecret::new("another-secret-value-here").unwrap());
        assert!(other.verify_principal(&signed, 1_000).is_err());
    }
}
