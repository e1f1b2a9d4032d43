//! The ADS protocol against a real gRPC stream (in process), with a store filled directly:
//! initial responses, ACK and NACK handling, pushes on change, and reconnects that need nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use flowplane_proto::resources::v1::{Resource, ResourceKind};
use flowplane_proto::state::v1::{ChangeEvent, ChangeOp, ReportStatusRequest, State};
use flowplane_xds::bootstrap::{NODE_DATAPLANE_ID_KEY, NODE_TEAM_KEY};
use flowplane_xds::resource::{CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use flowplane_xds_server::service::AdsService;
use flowplane_xds_server::snapshot::Store;
use flowplane_xds_server::status::Reporter;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

fn resource(kind: ResourceKind, team: &str, name: &str, spec: serde_json::Value) -> Resource {
    Resource {
        kind: kind as i32,
        id: format!("id-{name}"),
        team: team.into(),
        name: name.into(),
        revision: 1,
        spec_json: spec.to_string(),
        ..Default::default()
    }
}

fn cluster(team: &str, name: &str, port: u16) -> Resource {
    resource(
        ResourceKind::Cluster,
        team,
        name,
        json!({"endpoints": [{"host": "127.0.0.1", "port": port}]}),
    )
}

fn initial_state() -> State {
    State {
        revision: 3,
        resources: vec![
            resource(ResourceKind::Dataplane, "team-a", "edge", json!({})),
            cluster("team-a", "a1", 8001),
            cluster("team-b", "b1", 8002),
            resource(
                ResourceKind::RouteConfig,
                "team-a",
                "r1",
                json!({"virtualHosts": [{"name": "vh", "domains": ["*"],
                "routes": [{"match": {"path": {"type": "prefix", "value": "/"}}, "action": {"type": "forward", "cluster": "a1"}}]}]}),
            ),
        ],
        ..Default::default()
    }
}

struct Harness {
    store: Arc<Store>,
    reports: mpsc::Receiver<ReportStatusRequest>,
    client: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
}

async fn harness() -> Harness {
    let store = Arc::new(Store::new());
    store.replace_all(initial_state());
    let (reporter, reports) = Reporter::channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let service = AdsService::new(
        store.clone(),
        reporter,
        support::tokens(),
        flowplane_xds_server::delivery::Deliveries::new("test"),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Harness {
        store,
        reports,
        client,
    }
}

fn node(team: &str, dataplane: &str) -> Node {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.into())),
    };
    let mut metadata = Struct::default();
    metadata.fields.insert(NODE_TEAM_KEY.into(), string(team));
    metadata
        .fields
        .insert(NODE_DATAPLANE_ID_KEY.into(), string(dataplane));
    Node {
        id: format!("{team}/{dataplane}"),
        cluster: team.into(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

struct Stream {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Stream {
    async fn open(h: &mut Harness, node: Node, type_url: &str, version: &str) -> Self {
        let token = support::token_for(&h.store, &node);
        Self::open_with_token(h, node, type_url, version, &token).await
    }

    async fn open_with_token(
        h: &mut Harness,
        node: Node,
        type_url: &str,
        version: &str,
        token: &str,
    ) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let first = DiscoveryRequest {
            node: Some(node),
            type_url: type_url.into(),
            version_info: version.into(),
            ..Default::default()
        };
        tx.send(first).await.unwrap_or_else(|e| panic!("{e}"));
        let rx = h
            .client
            .stream_aggregated_resources(support::with_token(ReceiverStream::new(rx), token))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        Self { tx, rx }
    }

    async fn send(&self, request: DiscoveryRequest) {
        self.tx
            .send(request)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(3), self.rx.message())
            .await
            .unwrap_or_else(|_| panic!("no response within 3s"))
            .unwrap_or_else(|e| panic!("stream error: {e}"))
            .unwrap_or_else(|| panic!("stream ended"))
    }

    async fn nothing(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(300), self.rx.message()).await;
        assert!(
            next.is_err(),
            "expected no response, got {:?}",
            next.map(|r| r.map(|m| m.map(|m| (m.type_url, m.version_info))))
        );
    }

    async fn ack(&self, response: &DiscoveryResponse, names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            version_info: response.version_info.clone(),
            response_nonce: response.nonce.clone(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await;
    }
}

#[tokio::test]
async fn serves_only_the_nodes_team_and_acks_quiet_the_stream() {
    let mut h = harness().await;
    let mut s = Stream::open(&mut h, node("team-a", "id-edge"), CLUSTER_TYPE, "").await;
    let cds = s.next().await;
    assert_eq!(cds.type_url, CLUSTER_TYPE);
    assert_eq!(cds.resources.len(), 1, "team-b's cluster must not leak");
    s.ack(&cds, &[]).await;
    s.nothing().await;
    let report = h
        .reports
        .recv()
        .await
        .unwrap_or_else(|| panic!("no report"));
    assert!(report.accepted);
    assert_eq!(
        (report.team.as_str(), report.dataplane.as_str()),
        ("team-a", "edge")
    );
    assert_eq!(report.resource_names, vec!["a1".to_string()]);

    // RDS is served by name only.
    s.send(DiscoveryRequest {
        type_url: ROUTE_TYPE.into(),
        resource_names: vec!["r1".into()],
        ..Default::default()
    })
    .await;
    let rds = s.next().await;
    assert_eq!(
        (rds.type_url.as_str(), rds.resources.len()),
        (ROUTE_TYPE, 1)
    );
}

#[tokio::test]
async fn a_change_pushes_clusters_before_listeners_and_a_nack_is_not_resent() {
    let mut h = harness().await;
    let mut s = Stream::open(&mut h, node("team-a", "edge"), CLUSTER_TYPE, "").await;
    let cds = s.next().await;
    s.ack(&cds, &[]).await;
    s.send(DiscoveryRequest {
        type_url: LISTENER_TYPE.into(),
        ..Default::default()
    })
    .await;
    let lds = s.next().await;
    assert_eq!(
        (lds.type_url.as_str(), lds.resources.len()),
        (LISTENER_TYPE, 0)
    );
    s.ack(&lds, &[]).await;

    let listener = resource(
        ResourceKind::Listener,
        "team-a",
        "l1",
        json!({"port": 10000, "filterChains": [{"filters": [
        {"type": "httpConnectionManager", "routeConfigName": "r1"}]}]}),
    );
    for (revision, r) in [(4, cluster("team-a", "a2", 8003)), (5, listener)] {
        let event = ChangeEvent {
            revision,
            op: ChangeOp::Upsert as i32,
            kind: r.kind,
            team: r.team.clone(),
            name: r.name.clone(),
            resource: Some(r),
            changes: Vec::new(),
        };
        assert_eq!(h.store.apply(&event).ok(), Some(true));
    }
    // Whether the two changes arrive together or apart, clusters come first.
    let first = s.next().await;
    assert_eq!(first.type_url, CLUSTER_TYPE);
    assert_eq!(first.resources.len(), 2);
    let mut pushed = s.next().await;
    if pushed.type_url == CLUSTER_TYPE {
        pushed = s.next().await;
    }
    assert_eq!(
        (pushed.type_url.as_str(), pushed.resources.len()),
        (LISTENER_TYPE, 1)
    );

    // Envoy rejects the listener: the NACK is reported and nothing is re-sent.
    s.send(DiscoveryRequest {
        type_url: LISTENER_TYPE.into(),
        version_info: lds.version_info.clone(),
        response_nonce: pushed.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "l1: cannot bind".into(),
            details: vec![],
        }),
        ..Default::default()
    })
    .await;
    s.nothing().await;
    let mut nack = None;
    while let Ok(Some(report)) =
        tokio::time::timeout(Duration::from_secs(1), h.reports.recv()).await
    {
        if !report.accepted {
            nack = Some(report);
            break;
        }
    }
    let nack = nack.unwrap_or_else(|| panic!("no NACK report"));
    assert_eq!(
        (nack.type_url.as_str(), nack.error_message.as_str()),
        (LISTENER_TYPE, "l1: cannot bind")
    );
    assert_eq!(nack.version, pushed.version_info);
    assert_eq!(nack.resource_names, vec!["l1".to_string()]);

    // Gaps are refused, duplicates ignored.
    let gap = ChangeEvent {
        revision: 9,
        op: ChangeOp::Delete as i32,
        kind: ResourceKind::Cluster as i32,
        team: "team-a".into(),
        name: "a2".into(),
        resource: None,
        changes: Vec::new(),
    };
    assert!(h.store.apply(&gap).is_err());
    let old = ChangeEvent { revision: 2, ..gap };
    assert_eq!(h.store.apply(&old).ok(), Some(false));
}

#[tokio::test]
async fn a_reconnect_with_the_current_version_gets_no_push_and_strangers_are_refused() {
    let mut h = harness().await;
    let mut first = Stream::open(&mut h, node("team-a", "edge"), CLUSTER_TYPE, "").await;
    let cds = first.next().await;
    // The same state gives the same version on any replica: a reconnect that presents it
    // needs nothing.
    let mut again = Stream::open(
        &mut h,
        node("team-a", "edge"),
        CLUSTER_TYPE,
        &cds.version_info,
    )
    .await;
    again.nothing().await;

    let mut stranger = Stream::open(
        &mut h,
        node("team-a", "no-such-dataplane"),
        CLUSTER_TYPE,
        "",
    )
    .await;
    let refused = tokio::time::timeout(Duration::from_secs(3), stranger.rx.message()).await;
    match refused {
        Ok(Err(status)) => assert_eq!(status.code(), tonic::Code::Unauthenticated),
        other => panic!(
            "expected Unauthenticated, got {:?}",
            other.map(|r| r.map(|m| m.is_some()))
        ),
    }
}

#[tokio::test]
async fn a_stream_must_carry_its_own_dataplanes_token() {
    let mut h = harness().await;
    let edge_of_b = support::token_for(&h.store, &node("team-b", "edge"));
    let other_secret = flowplane_runtime::credential::ServiceSecret::new("another-secret-0123456")
        .unwrap()
        .dataplane_tokens()
        .issue("team-a", "id-edge");
    for (label, token) in [
        ("no token", String::new()),
        ("another dataplane's token", edge_of_b),
        ("a token under another secret", other_secret),
    ] {
        let mut stream =
            Stream::open_with_token(&mut h, node("team-a", "edge"), CLUSTER_TYPE, "", &token).await;
        match tokio::time::timeout(Duration::from_secs(3), stream.rx.message()).await {
            Ok(Err(status)) => {
                assert_eq!(status.code(), tonic::Code::Unauthenticated, "{label}");
                assert!(!status.message().contains("fpdp_"), "{label}: {status:?}");
            }
            other => panic!(
                "{label}: expected Unauthenticated, got {:?}",
                other.map(|r| r.map(|m| m.is_some()))
            ),
        }
    }
    // The same node with its own token is served.
    let mut served = Stream::open(&mut h, node("team-a", "edge"), CLUSTER_TYPE, "").await;
    assert_eq!(served.next().await.type_url, CLUSTER_TYPE);
}

#[tokio::test]
async fn deleting_the_dataplane_ends_its_open_streams() {
    let mut h = harness().await;
    let mut s = Stream::open(&mut h, node("team-a", "edge"), CLUSTER_TYPE, "").await;
    let cds = s.next().await;
    s.ack(&cds, &[]).await;

    let deleted = ChangeEvent {
        revision: h.store.revision() + 1,
        op: ChangeOp::Delete as i32,
        kind: ResourceKind::Dataplane as i32,
        team: "team-a".into(),
        name: "edge".into(),
        resource: None,
        changes: Vec::new(),
    };
    assert_eq!(h.store.apply(&deleted).ok(), Some(true));
    match tokio::time::timeout(Duration::from_secs(3), s.rx.message()).await {
        Ok(Err(status)) => assert_eq!(status.code(), tonic::Code::Unauthenticated),
        other => panic!(
            "expected the stream to end, got {:?}",
            other.map(|r| r.map(|m| m.map(|m| m.type_url)))
        ),
    }
}
