//! Service identity on config's real gRPC server (and a real PostgreSQL): each service holds a
//! credential of its own, config allows each only the methods it needs, and a call for a user
//! is honoured only with a principal config signed itself: unaltered and unexpired.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flowplane_config::identity;
use flowplane_domain::ResourceKind;
use flowplane_proto::common::v1::{AssertedPrincipal, Principal, RequestContext, SignedPrincipal};
use flowplane_proto::identity::v1 as id;
use flowplane_proto::identity::v1::identity_service_client::IdentityServiceClient;
use flowplane_proto::learning::v1::learning_results_service_client::LearningResultsServiceClient;
use flowplane_proto::learning::v1::{ListLearnedRequest, RecordRequest};
use flowplane_proto::resources::v1 as res;
use flowplane_proto::resources::v1::resource_service_client::ResourceServiceClient;
use flowplane_proto::state::v1::dataplane_service_client::DataplaneServiceClient;
use flowplane_proto::state::v1::state_service_client::StateServiceClient;
use flowplane_proto::state::v1::{
    GetReplicaKeysRequest, GetRevisionRequest, GetSecretsRequest, VerifyDataplaneRequest,
};
use flowplane_runtime::credential::{ClientCredential, Service, ServiceCredential, ServiceSecret};
use flowplane_runtime::shutdown;
use prost::Message;
use support::{SERVICE_SECRET, TestDb, admin};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const SETUP: &str = "fp_setup_service-credential-test-setup";

type Authed = InterceptedService<Channel, ClientCredential>;

struct Server {
    channel: Channel,
    stop: shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn serve(db: &TestDb) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let (stop, stopped) = shutdown::channel();
    let task = tokio::spawn(flowplane_config::grpc::serve(
        db.ctx.clone(),
        addr,
        None,
        stopped,
    ));
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    Server {
        channel,
        stop,
        task,
    }
}

fn as_service(server: &Server, service: Service) -> Authed {
    as_service_under(server, service, SERVICE_SECRET)
}

fn as_service_under(server: &Server, service: Service, secret: &str) -> Authed {
    let credential = ServiceSecret::new(secret).unwrap().credential(service);
    let credential = ServiceCredential::new(service, &credential).unwrap();
    InterceptedService::new(server.channel.clone(), credential.client())
}

fn code<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match answer {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn context(signed: SignedPrincipal) -> Option<RequestContext> {
    Some(RequestContext {
        signed_principal: Some(signed),
        request_id: "r".into(),
        client_address: "127.0.0.1".into(),
    })
}

#[tokio::test]
async fn each_service_may_call_only_its_own_methods() {
    let db = TestDb::new().await;
    let server = serve(&db).await;

    // No credential, or one under another secret: refused before any handler runs.
    let anonymous = StateServiceClient::new(server.channel.clone())
        .get_revision(GetRevisionRequest {})
        .await;
    assert_eq!(code(anonymous), Code::Unauthenticated);
    let stranger = StateServiceClient::new(as_service_under(
        &server,
        Service::XdsServer,
        "another-secret-0123456789",
    ))
    .get_revision(GetRevisionRequest {})
    .await;
    assert_eq!(code(stranger), Code::Unauthenticated);

    // xds-server: state and secret material, nothing that acts for users.
    let mut state = StateServiceClient::new(as_service(&server, Service::XdsServer));
    assert_eq!(
        code(state.get_revision(GetRevisionRequest {}).await),
        Code::Ok
    );
    let secrets = state
        .get_secrets(GetSecretsRequest {
            team: "nobody".into(),
            names: vec![],
        })
        .await;
    assert_eq!(code(secrets), Code::Ok);
    let keys = state
        .get_replica_keys(GetReplicaKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys.dataplane_tokens.len(), 32);
    let as_xds = IdentityServiceClient::new(as_service(&server, Service::XdsServer))
        .authenticate(id::AuthenticateRequest::default())
        .await;
    assert_eq!(code(as_xds), Code::PermissionDenied);

    // learning: what it learned and counted, and dataplane checks. Not state, not secrets, not
    // users' reads, not identity.
    let learning = as_service(&server, Service::Learning);
    let recorded = LearningResultsServiceClient::new(learning.clone())
        .record(RecordRequest::default())
        .await;
    assert!(
        !matches!(
            code(recorded),
            Code::PermissionDenied | Code::Unauthenticated
        ),
        "learning may record what it learned"
    );
    let mut learning_state = StateServiceClient::new(learning.clone());
    for refused in [
        code(
            learning_state
                .get_secrets(GetSecretsRequest {
                    team: "nobody".into(),
                    names: vec![],
                })
                .await,
        ),
        code(
            learning_state
                .get_replica_keys(GetReplicaKeysRequest {})
                .await,
        ),
        code(
            learning_state
                .stream_state(flowplane_proto::state::v1::StreamStateRequest {})
                .await,
        ),
        code(
            LearningResultsServiceClient::new(learning.clone())
                .list_learned(ListLearnedRequest::default())
                .await,
        ),
        code(
            IdentityServiceClient::new(learning.clone())
                .create_token(id::CreateTokenRequest::default())
                .await,
        ),
        code(
            ResourceServiceClient::new(learning.clone())
                .list(res::ListResourcesRequest::default())
                .await,
        ),
    ] {
        assert_eq!(refused, Code::PermissionDenied);
    }

    // ratelimit: dataplane checks only.
    let ratelimit = as_service(&server, Service::Ratelimit);
    let verified = DataplaneServiceClient::new(ratelimit.clone())
        .verify(VerifyDataplaneRequest::default())
        .await;
    assert_eq!(code(verified), Code::Ok);
    let as_ratelimit = StateServiceClient::new(ratelimit)
        .get_revision(GetRevisionRequest {})
        .await;
    assert_eq!(code(as_ratelimit), Code::PermissionDenied);

    // api-gateway: users' calls, never state or secret material.
    let gateway_state = StateServiceClient::new(as_service(&server, Service::ApiGateway))
        .get_secrets(GetSecretsRequest {
            team: "nobody".into(),
            names: vec![],
        })
        .await;
    assert_eq!(code(gateway_state), Code::PermissionDenied);

    server.stop.fire();
    let _ = server.task.await;
    db.drop_db().await;
}

#[tokio::test]
async fn config_acts_only_on_principals_it_signed() {
    let db = TestDb::new().await;
    let server = serve(&db).await;
    let mut identity = IdentityServiceClient::new(as_service(&server, Service::ApiGateway));
    identity::announce_setup_token(&db.ctx, Some(SETUP))
        .await
        .unwrap();
    let init = identity
        .initialize(id::InitializeRequest {
            setup_token: SETUP.into(),
            email: "admin@example.com".into(),
            password: "correct horse battery".into(),
            name: "Admin".into(),
            request_id: "r".into(),
            client_address: "127.0.0.1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let answer = identity
        .authenticate(id::AuthenticateRequest {
            credential: init.token_secret.clone(),
            request_id: "r".into(),
            client_address: "127.0.0.1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let signed = answer
        .signed_principal
        .expect("config signs what it authenticated");
    let listed = identity
        .list_organizations(id::ListOrganizationsRequest {
            context: context(signed.clone()),
        })
        .await;
    assert_eq!(code(listed), Code::Ok);

    // A principal the gateway made up: no MAC.
    let invented = Principal {
        user_id: uuid::Uuid::new_v4().to_string(),
        scopes: vec!["admin:all".into()],
        ..Default::default()
    };
    let unsigned = SignedPrincipal {
        claims: AssertedPrincipal {
            principal: Some(invented.clone()),
            expires_at_unix_ms: i64::MAX,
        }
        .encode_to_vec(),
        mac: Vec::new(),
    };
    // A genuine principal widened (another user, a later expiry) under its old MAC.
    let mut claims = AssertedPrincipal::decode(signed.claims.as_slice()).unwrap();
    claims.expires_at_unix_ms = i64::MAX;
    let widened = SignedPrincipal {
        claims: claims.encode_to_vec(),
        mac: signed.mac.clone(),
    };
    // Signed by config, but expired.
    let expired = support::test_keys().sign_principal(invented, 1);
    for (label, principal) in [
        ("unsigned", unsigned),
        ("altered", widened),
        ("expired", expired),
    ] {
        let refused = identity
            .list_organizations(id::ListOrganizationsRequest {
                context: context(principal),
            })
            .await;
        assert_eq!(code(refused), Code::Unauthenticated, "{label}");
    }
    // And none at all.
    let refused = identity
        .list_organizations(id::ListOrganizationsRequest { context: None })
        .await;
    assert_eq!(code(refused), Code::Unauthenticated);

    server.stop.fire();
    let _ = server.task.await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_deleted_dataplanes_token_is_refused_at_once() {
    let db = TestDb::new().await;
    let server = serve(&db).await;
    let created = identity::create_organization(&db.ctx, &admin(), "edges", "")
        .await
        .unwrap();
    let team = created.default_team.unwrap().name;
    let body = serde_json::json!({"team": team, "name": "edge"}).to_string();
    flowplane_config::resources::create(&db.ctx, &admin(), ResourceKind::Dataplane, &team, &body)
        .await
        .unwrap();
    let deployed = flowplane_config::resources::get_for_deployment(
        &db.ctx,
        &admin(),
        ResourceKind::Dataplane,
        &team,
        "edge",
    )
    .await
    .unwrap();
    assert!(deployed.deployment_token.starts_with("fpdp_"));
    let mut dataplanes = DataplaneServiceClient::new(as_service(&server, Service::Learning));
    let (id, token) = (deployed.id.as_str(), deployed.deployment_token.as_str());
    let other_id = uuid::Uuid::new_v4().to_string();
    assert!(valid(&mut dataplanes, &team, id, token).await);
    assert!(!valid(&mut dataplanes, "another-team", id, token).await);
    assert!(!valid(&mut dataplanes, &team, &other_id, token).await);
    assert!(!valid(&mut dataplanes, &team, id, "fpdp_junk").await);

    flowplane_config::resources::delete(
        &db.ctx,
        &admin(),
        ResourceKind::Dataplane,
        &team,
        "edge",
        0,
    )
    .await
    .unwrap();
    assert!(
        !valid(&mut dataplanes, &team, id, token).await,
        "the token died with its dataplane"
    );

    server.stop.fire();
    let _ = server.task.await;
    db.drop_db().await;
}

async fn valid(
    client: &mut DataplaneServiceClient<Authed>,
    team: &str,
    id: &str,
    token: &str,
) -> bool {
    client
        .verify(VerifyDataplaneRequest {
            team: team.into(),
            dataplane_id: id.into(),
            token: token.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .valid
}
