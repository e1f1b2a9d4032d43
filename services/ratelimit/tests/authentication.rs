//! Who may ask, over real gRPC: only a dataplane's own token for the team its request names.
//! A call without it, with another dataplane's, or about another team is refused and counts
//! nothing. config's side of the check (`DataplaneService.Verify`) is played here by a
//! stand-in that checks the MAC as config does; the e2e suite runs the real one, deletion
//! included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use flowplane_domain::filters::global_rate_limit::LIMIT_ENTRY_KEY;
use flowplane_proto::state::v1::dataplane_service_server::{
    DataplaneService, DataplaneServiceServer,
};
use flowplane_proto::state::v1::{VerifyDataplaneRequest, VerifyDataplaneResponse};
use flowplane_ratelimit::counters::Counters;
use flowplane_ratelimit::{RateLimitApi, RateLimiter};
use flowplane_runtime::credential::{DataplaneTokens, Service, ServiceCredential, ServiceSecret};
use flowplane_runtime::dataplanes::DataplaneVerifier;
use flowplane_xds::bootstrap::{DATAPLANE_ID_HEADER, DATAPLANE_TOKEN_HEADER};
use tonic::transport::Channel;

const SECRET: &str = "ratelimit-test-secret-0123456789";

fn tokens(secret: &str) -> DataplaneTokens {
    ServiceSecret::new(secret).unwrap().dataplane_tokens()
}

/// Answers as config does for dataplanes that all exist.
struct ConfigStandIn;

#[tonic::async_trait]
impl DataplaneService for ConfigStandIn {
    async fn verify(
        &self,
        request: tonic::Request<VerifyDataplaneRequest>,
    ) -> Result<tonic::Response<VerifyDataplaneResponse>, tonic::Status> {
        let r = request.into_inner();
        Ok(tonic::Response::new(VerifyDataplaneResponse {
            valid: tokens(SECRET).verify(&r.team, &r.dataplane_id, &r.token),
        }))
    }
}

async fn serve(listener: tokio::net::TcpListener, router: tonic::transport::server::Router) {
    tokio::spawn(
        router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
}

async fn client() -> RateLimitServiceClient<Channel> {
    let config = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config_addr = config.local_addr().unwrap();
    serve(
        config,
        tonic::transport::Server::builder().add_service(DataplaneServiceServer::new(ConfigStandIn)),
    )
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{config_addr}"))
        .unwrap()
        .connect_lazy();
    let credential = ServiceCredential::new(
        Service::Ratelimit,
        &ServiceSecret::new(SECRET)
            .unwrap()
            .credential(Service::Ratelimit),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let api = RateLimitApi::new(
        RateLimiter::new(Counters::local(), "auth-test"),
        std::sync::Arc::new(DataplaneVerifier::new(channel, credential.client())),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RateLimitServiceServer::new(api))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// One request of `team` against a limit of one per day.
fn request(team: &str, token: Option<&str>, dataplane: &str) -> tonic::Request<RateLimitRequest> {
    let mut request = tonic::Request::new(RateLimitRequest {
        domain: team.into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: LIMIT_ENTRY_KEY.into(),
                value: "once:1/day".into(),
            }],
            ..Default::default()
        }],
        hits_addend: 0,
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert(DATAPLANE_TOKEN_HEADER, token.parse().unwrap());
    }
    request
        .metadata_mut()
        .insert(DATAPLANE_ID_HEADER, dataplane.parse().unwrap());
    request
}

#[tokio::test]
async fn only_a_dataplane_of_the_team_may_ask_about_it() {
    let mut client = client().await;
    let tokens = tokens(SECRET);
    let edge_a = tokens.issue("team-a", "dp-a");
    let edge_b = tokens.issue("team-b", "dp-b");
    let stranger = self::tokens("another-secret-0123456789").issue("team-a", "dp-a");

    for (label, refused) in [
        ("no token", request("team-a", None, "dp-a")),
        (
            "another team's token",
            request("team-a", Some(&edge_b), "dp-b"),
        ),
        (
            "its token for another dataplane id",
            request("team-a", Some(&edge_a), "dp-x"),
        ),
        (
            "a token under another secret",
            request("team-a", Some(&stranger), "dp-a"),
        ),
    ] {
        let status = client.should_rate_limit(refused).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{label}");
    }

    // The refused calls counted nothing: the one allowed request is still there.
    let first = client
        .should_rate_limit(request("team-a", Some(&edge_a), "dp-a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.overall_code, Code::Ok as i32);
    let second = client
        .should_rate_limit(request("team-a", Some(&edge_a), "dp-a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.overall_code, Code::OverLimit as i32);
}
