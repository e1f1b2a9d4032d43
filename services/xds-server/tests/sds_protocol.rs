//! SDS over ADS, both protocol variants, against a real gRPC stream (in process): a secret is
//! served by name to its own team's Envoys only, and a rotation pushes the new secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use flowplane_proto::resources::v1::{Resource, ResourceKind};
use flowplane_proto::state::v1::{ChangeEvent, ChangeOp, State};
use flowplane_xds::bootstrap::{NODE_DATAPLANE_ID_KEY, NODE_TEAM_KEY};
use flowplane_xds::resource::SECRET_TYPE;
use flowplane_xds_server::service::AdsService;
use flowplane_xds_server::snapshot::Store;
use flowplane_xds_server::status::Reporter;
use prost::Message;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn resource(kind: ResourceKind, team: &str, name: &str, spec: serde_json::Value) -> Resource {
    Resource {
        kind: kind as i32,
        id: format!("id-{team}-{name}"),
        team: team.into(),
        name: name.into(),
        revision: 1,
        spec_json: spec.to_string(),
        ..Default::default()
    }
}

/// A generic secret keeps the test free of PEM; the SDS path is the same for every type.
fn secret(team: &str, name: &str, value: &str) -> Resource {
    resource(
        ResourceKind::Secret,
        team,
        name,
        json!({"type": "genericSecret", "secret": value}),
    )
}

fn store() -> Arc<Store> {
    let store = Arc::new(Store::new());
    store.replace_all(State {
        revision: 4,
        resources: vec![
            resource(ResourceKind::Dataplane, "team-a", "edge", json!({})),
            resource(ResourceKind::Dataplane, "team-b", "edge", json!({})),
            secret("team-a", "shared-name", "team-a-value"),
            secret("team-b", "shared-name", "team-b-value"),
        ],
        ..Default::default()
    });
    store
}

async fn client(store: Arc<Store>) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    let (reporter, _reports) = Reporter::channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdsService::new(
                store,
                reporter,
                support::tokens(),
                flowplane_xds_server::delivery::Deliveries::new("test"),
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn node(team: &str) -> Node {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.into())),
    };
    let mut metadata = Struct::default();
    metadata.fields.insert(NODE_TEAM_KEY.into(), string(team));
    metadata
        .fields
        .insert(NODE_DATAPLANE_ID_KEY.into(), string("edge"));
    Node {
        id: format!("{team}/edge"),
        cluster: team.into(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

fn generic_value(any_value: &[u8]) -> String {
    let secret = Secret::decode(any_value).unwrap();
    let Some(Type::GenericSecret(generic)) = secret.r#type else {
        panic!("generic secret expected")
    };
    match generic.secret.and_then(|s| s.specifier) {
        Some(envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineString(s)) => {
            s
        }
        other => panic!("inline string expected, got {other:?}"),
    }
}

fn rotate(store: &Store, value: &str) {
    let changed = secret("team-a", "shared-name", value);
    let event = ChangeEvent {
        revision: store.revision() + 1,
        op: ChangeOp::Upsert as i32,
        kind: ResourceKind::Secret as i32,
        team: "team-a".into(),
        name: "shared-name".into(),
        resource: Some(changed),
        changes: Vec::new(),
    };
    assert_eq!(store.apply(&event).ok(), Some(true));
}

async fn sotw_next(rx: &mut tonic::Streaming<DiscoveryResponse>) -> DiscoveryResponse {
    tokio::time::timeout(Duration::from_secs(3), rx.message())
        .await
        .expect("a response within 3s")
        .unwrap()
        .expect("stream open")
}

#[tokio::test]
async fn sotw_serves_a_named_secret_to_its_team_only_and_pushes_rotations() {
    let store = store();
    let mut client = client(store.clone()).await;
    let mut values = Vec::new();
    for team in ["team-a", "team-b"] {
        let (tx, rx) = mpsc::channel(4);
        tx.send(DiscoveryRequest {
            node: Some(node(team)),
            type_url: SECRET_TYPE.into(),
            resource_names: vec!["shared-name".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        let mut rx = client
            .stream_aggregated_resources(support::with_token(
                ReceiverStream::new(rx),
                &support::token_for(&store, &node(team)),
            ))
            .await
            .unwrap()
            .into_inner();
        let sds = sotw_next(&mut rx).await;
        assert_eq!(sds.type_url, SECRET_TYPE);
        let [only] = sds.resources.as_slice() else {
            panic!("exactly the named secret, got {}", sds.resources.len())
        };
        values.push(generic_value(&only.value));
        if team == "team-a" {
            tx.send(DiscoveryRequest {
                type_url: SECRET_TYPE.into(),
                version_info: sds.version_info.clone(),
                response_nonce: sds.nonce.clone(),
                resource_names: vec!["shared-name".into()],
                ..Default::default()
            })
            .await
            .unwrap();
            rotate(&store, "rotated");
            let pushed = sotw_next(&mut rx).await;
            assert_eq!(pushed.type_url, SECRET_TYPE);
            assert_ne!(pushed.version_info, sds.version_info);
            assert_eq!(generic_value(&pushed.resources[0].value), "rotated");
        }
    }
    // Same name in two teams: each Envoy gets its own team's secret.
    assert_eq!(values, ["team-a-value", "team-b-value"]);
}

#[tokio::test]
async fn sotw_without_names_serves_no_secret() {
    let store = store();
    let mut client = client(store.clone()).await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(node("team-a")),
        type_url: SECRET_TYPE.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut rx = client
        .stream_aggregated_resources(support::with_token(
            ReceiverStream::new(rx),
            &support::token_for(&store, &node("team-a")),
        ))
        .await
        .unwrap()
        .into_inner();
    let next = tokio::time::timeout(Duration::from_millis(500), rx.message()).await;
    let sent = next.ok().and_then(|r| r.ok()).flatten();
    assert!(
        sent.as_ref().is_none_or(|r| r.resources.is_empty()),
        "SDS is never a wildcard: {sent:?}"
    );
}

async fn delta_next(rx: &mut tonic::Streaming<DeltaDiscoveryResponse>) -> DeltaDiscoveryResponse {
    tokio::time::timeout(Duration::from_secs(3), rx.message())
        .await
        .expect("a response within 3s")
        .unwrap()
        .expect("stream open")
}

#[tokio::test]
async fn delta_serves_a_named_secret_to_its_team_only_and_pushes_rotations() {
    let store = store();
    let mut client = client(store.clone()).await;
    let mut values = Vec::new();
    for team in ["team-b", "team-a"] {
        let (tx, rx) = mpsc::channel(4);
        tx.send(DeltaDiscoveryRequest {
            node: Some(node(team)),
            type_url: SECRET_TYPE.into(),
            resource_names_subscribe: vec!["shared-name".into(), "absent".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        let mut rx = client
            .delta_aggregated_resources(support::with_token(
                ReceiverStream::new(rx),
                &support::token_for(&store, &node(team)),
            ))
            .await
            .unwrap()
            .into_inner();
        let sds = delta_next(&mut rx).await;
        assert_eq!(sds.type_url, SECRET_TYPE);
        let [only] = sds.resources.as_slice() else {
            panic!("exactly the named secret, got {}", sds.resources.len())
        };
        assert_eq!(only.name, "shared-name");
        values.push(generic_value(&only.resource.as_ref().unwrap().value));
        if team == "team-a" {
            tx.send(DeltaDiscoveryRequest {
                type_url: SECRET_TYPE.into(),
                response_nonce: sds.nonce.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
            rotate(&store, "rotated");
            let pushed = delta_next(&mut rx).await;
            assert_eq!(pushed.type_url, SECRET_TYPE);
            assert_eq!(pushed.resources.len(), 1);
            let value = &pushed.resources[0].resource.as_ref().unwrap().value;
            assert_eq!(generic_value(value), "rotated");
        }
    }
    assert_eq!(values, ["team-b-value", "team-a-value"]);
}
