//! Internal gRPC refuses callers without the shared service credential.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flowplane_proto::state::v1::GetRevisionRequest;
use flowplane_proto::state::v1::state_service_client::StateServiceClient;
use flowplane_runtime::credential::ServiceCredential;
use flowplane_runtime::shutdown;
use support::TestDb;

#[tokio::test]
async fn calls_without_the_service_credential_are_refused() {
    let db = TestDb::new().await;
    let credential =
        ServiceCredential::new("a-shared-secret-for-tests").unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let (stop, stopped) = shutdown::channel();
    let server = tokio::spawn(flowplane_config::grpc::serve(
        db.ctx.clone(),
        addr,
        credential.clone(),
        stopped,
    ));
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };

    let mut anonymous = StateServiceClient::new(channel.clone());
    let refused = anonymous.get_revision(GetRevisionRequest {}).await;
    assert_eq!(
        refused.map_err(|s| s.code()).err(),
        Some(tonic::Code::Unauthenticated)
    );

    let forged = ServiceCredential::new("not-the-shared-secret").unwrap_or_else(|e| panic!("{e}"));
    let mut impostor = StateServiceClient::with_interceptor(channel.clone(), forged.client());
    let refused = impostor.get_revision(GetRevisionRequest {}).await;
    assert_eq!(
        refused.map_err(|s| s.code()).err(),
        Some(tonic::Code::Unauthenticated)
    );

    let mut service = StateServiceClient::with_interceptor(channel, credential.client());
    let revision = service
        .get_revision(GetRevisionRequest {})
        .await
        .map(|r| r.into_inner().revision);
    assert_eq!(revision.ok(), Some(0));

    stop.fire();
    let _ = server.await;
    db.drop_db().await;
}
