//! The incremental (delta) ADS protocol against a real gRPC stream (in process), with a store
//! filled directly: wildcard and named subscriptions, only-what-changed pushes, removals,
//! reconnects that declare what they hold, NACKs, and strangers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use flowplane_proto::resources::v1::{Resource, ResourceKind};
use flowplane_proto::state::v1::{ChangeEvent, ChangeOp, ReportStatusRequest, State};
use flowplane_xds::bootstrap::{NODE_DATAPLANE_ID_KEY, NODE_TEAM_KEY};
use flowplane_xds::resource::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
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

/// A cluster whose endpoint travels inside it (a host name), so a port change changes it.
fn cluster(name: &str, port: u16) -> Resource {
    resource(
        ResourceKind::Cluster,
        "team-a",
        name,
        json!({"endpoints": [{"host": "localhost", "port": port}]}),
    )
}

/// A cluster of IP endpoints: its endpoints are a resource of their own (EDS).
fn eds_cluster(name: &str, port: u16) -> Resource {
    resource(
        ResourceKind::Cluster,
        "team-a",
        name,
        json!({"endpoints": [{"host": "127.0.0.1", "port": port}]}),
    )
}

fn route_config(name: &str, cluster: &str) -> Resource {
    resource(
        ResourceKind::RouteConfig,
        "team-a",
        name,
        json!({"virtualHosts": [{"name": "vh", "domains": ["*"],
            "routes": [{"match": {"path": {"type": "prefix", "value": "/"}},
                "action": {"type": "forward", "cluster": cluster}}]}]}),
    )
}

fn listener(name: &str, port: u16, route_config: &str) -> Resource {
    resource(
        ResourceKind::Listener,
        "team-a",
        name,
        json!({"port": port, "filterChains": [{"filters": [
            {"type": "httpConnectionManager", "routeConfigName": route_config}]}]}),
    )
}

fn initial_state() -> State {
    State {
        revision: 3,
        resources: vec![
            resource(ResourceKind::Dataplane, "team-a", "edge", json!({})),
            cluster("a1", 8001),
            resource(
                ResourceKind::Cluster,
                "team-b",
                "b1",
                json!({"endpoints": [{"host": "127.0.0.1", "port": 8002}]}),
            ),
            route_config("r1", "a1"),
        ],
        ..Default::default()
    }
}

struct Harness {
    store: Arc<Store>,
    reports: mpsc::Receiver<ReportStatusRequest>,
    client: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
    revision: i64,
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
        revision: 3,
    }
}

impl Harness {
    fn upsert(&mut self, r: Resource) {
        self.revision += 1;
        let event = ChangeEvent {
            revision: self.revision,
            op: ChangeOp::Upsert as i32,
            kind: r.kind,
            team: r.team.clone(),
            name: r.name.clone(),
            resource: Some(r),
            changes: Vec::new(),
        };
        assert_eq!(self.store.apply(&event).ok(), Some(true));
    }

    fn delete(&mut self, kind: ResourceKind, name: &str) {
        self.revision += 1;
        let event = ChangeEvent {
            revision: self.revision,
            op: ChangeOp::Delete as i32,
            kind: kind as i32,
            team: "team-a".into(),
            name: name.into(),
            resource: None,
            changes: Vec::new(),
        };
        assert_eq!(self.store.apply(&event).ok(), Some(true));
    }

    /// The next report that matches `accepted`, skipping others.
    async fn report(&mut self, accepted: bool) -> ReportStatusRequest {
        while let Ok(Some(report)) =
            tokio::time::timeout(Duration::from_secs(2), self.reports.recv()).await
        {
            if report.accepted == accepted {
                return report;
            }
        }
        panic!("no report with accepted = {accepted}");
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
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

impl Stream {
    /// Opens a stream whose first request is `first` (the node is added).
    async fn open(h: &mut Harness, node: Node, first: DeltaDiscoveryRequest) -> Self {
        let token = support::token_for(&h.store, &node);
        let (tx, rx) = mpsc::channel(16);
        let first = DeltaDiscoveryRequest {
            node: Some(node),
            ..first
        };
        tx.send(first).await.unwrap_or_else(|e| panic!("{e}"));
        let rx = h
            .client
            .delta_aggregated_resources(support::with_token(ReceiverStream::new(rx), &token))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        Self { tx, rx }
    }

    async fn wildcard(h: &mut Harness, type_url: &str) -> Self {
        Self::open(h, node("team-a", "id-edge"), subscribe(type_url, &[])).await
    }

    async fn send(&self, request: DeltaDiscoveryRequest) {
        self.tx
            .send(request)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn next(&mut self) -> DeltaDiscoveryResponse {
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
            next.map(|r| r.map(|m| m.map(|m| (names(&m), m.type_url, m.removed_resources))))
        );
    }

    async fn ack(&self, response: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    /// Receives the next response, checks it is of `type_url`, and ACKs it.
    async fn next_acked(&mut self, type_url: &str) -> DeltaDiscoveryResponse {
        let response = self.next().await;
        assert_eq!(response.type_url, type_url);
        self.ack(&response).await;
        response
    }
}

fn subscribe(type_url: &str, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.into(),
        resource_names_subscribe: strings(names),
        ..Default::default()
    }
}

fn names(response: &DeltaDiscoveryResponse) -> Vec<String> {
    response.resources.iter().map(|r| r.name.clone()).collect()
}

fn versions(response: &DeltaDiscoveryResponse) -> HashMap<String, String> {
    response
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect()
}

#[tokio::test]
async fn a_wildcard_subscription_gets_the_teams_clusters_with_per_resource_versions() {
    let mut h = harness().await;
    let mut s = Stream::wildcard(&mut h, CLUSTER_TYPE).await;
    let cds = s.next_acked(CLUSTER_TYPE).await;
    assert_eq!(
        names(&cds),
        strings(&["a1"]),
        "team-b's cluster must not leak"
    );
    assert!(!cds.resources[0].version.is_empty());
    assert!(cds.resources[0].resource.is_some());
    assert!(cds.removed_resources.is_empty());
    s.nothing().await;
    let report = h.report(true).await;
    assert_eq!(
        (report.team.as_str(), report.dataplane.as_str()),
        ("team-a", "edge")
    );
    assert_eq!(report.resource_names, strings(&["a1"]));
    assert_eq!(report.version, cds.system_version_info);

    // An explicit `*` is a wildcard too, and a fresh wildcard is answered even when empty.
    let mut lds = Stream::open(
        &mut h,
        node("team-a", "edge"),
        subscribe(LISTENER_TYPE, &["*"]),
    )
    .await;
    let empty = lds.next().await;
    assert_eq!(
        (empty.type_url.as_str(), empty.resources.len()),
        (LISTENER_TYPE, 0)
    );
}

#[tokio::test]
async fn a_change_sends_only_what_changed_and_removals_arrive_as_removed_resources() {
    let mut h = harness().await;
    let mut s = Stream::wildcard(&mut h, CLUSTER_TYPE).await;
    let initial = s.next_acked(CLUSTER_TYPE).await;

    h.upsert(cluster("a2", 8003));
    let added = s.next_acked(CLUSTER_TYPE).await;
    assert_eq!(names(&added), strings(&["a2"]), "only the new cluster");
    assert!(added.removed_resources.is_empty());
    assert_ne!(added.system_version_info, initial.system_version_info);

    h.upsert(cluster("a1", 9001));
    let changed = s.next_acked(CLUSTER_TYPE).await;
    assert_eq!(names(&changed), strings(&["a1"]));
    assert_ne!(versions(&changed)["a1"], versions(&initial)["a1"]);

    h.delete(ResourceKind::Cluster, "a2");
    let removed = s.next_acked(CLUSTER_TYPE).await;
    assert!(removed.resources.is_empty());
    assert_eq!(removed.removed_resources, strings(&["a2"]));

    // Another team's change wakes nobody here.
    h.revision += 1;
    let other = ChangeEvent {
        revision: h.revision,
        op: ChangeOp::Upsert as i32,
        kind: ResourceKind::Cluster as i32,
        team: "team-b".into(),
        name: "b2".into(),
        resource: Some(resource(
            ResourceKind::Cluster,
            "team-b",
            "b2",
            json!({"endpoints": [{"host": "127.0.0.1", "port": 8004}]}),
        )),
        changes: Vec::new(),
    };
    assert_eq!(h.store.apply(&other).ok(), Some(true));
    s.nothing().await;
}

#[tokio::test]
async fn updates_go_clusters_then_listeners_then_routes_and_clusters_are_removed_last() {
    let mut h = harness().await;
    let mut s = Stream::wildcard(&mut h, CLUSTER_TYPE).await;
    s.next_acked(CLUSTER_TYPE).await;
    s.send(subscribe(LISTENER_TYPE, &[])).await;
    s.next_acked(LISTENER_TYPE).await;
    s.send(subscribe(ROUTE_TYPE, &["r1"])).await;
    let rds = s.next_acked(ROUTE_TYPE).await;
    assert_eq!(names(&rds), strings(&["r1"]));

    // A full re-sync that moves the route to a new cluster and drops the old one.
    let mut state = initial_state();
    state.revision = 10;
    state.resources.retain(|r| r.name != "a1" && r.name != "r1");
    state.resources.push(cluster("a2", 8003));
    state.resources.push(route_config("r1", "a2"));
    state.resources.push(listener("l1", 10000, "r1"));
    h.store.replace_all(state);

    let order: Vec<(String, Vec<String>, Vec<String>)> = {
        let mut order = Vec::new();
        for _ in 0..4 {
            let r = s.next().await;
            s.ack(&r).await;
            order.push((r.type_url.clone(), names(&r), r.removed_resources.clone()));
        }
        order
    };
    assert_eq!(
        order,
        vec![
            (CLUSTER_TYPE.to_string(), strings(&["a2"]), vec![]),
            (LISTENER_TYPE.to_string(), strings(&["l1"]), vec![]),
            (ROUTE_TYPE.to_string(), strings(&["r1"]), vec![]),
            (CLUSTER_TYPE.to_string(), vec![], strings(&["a1"])),
        ]
    );
}

#[tokio::test]
async fn a_route_config_subscribed_before_it_exists_is_sent_once_created_until_unsubscribed() {
    let mut h = harness().await;
    let mut s = Stream::open(
        &mut h,
        node("team-a", "edge"),
        subscribe(ROUTE_TYPE, &["r2"]),
    )
    .await;
    // Named, not wildcard: r1 exists but was not asked for, r2 does not exist yet.
    s.nothing().await;

    h.upsert(route_config("r2", "a1"));
    let created = s.next_acked(ROUTE_TYPE).await;
    assert_eq!(names(&created), strings(&["r2"]));

    // A change to a route config nobody subscribed to sends nothing.
    h.upsert(route_config("r1", "a1"));
    s.nothing().await;

    s.send(DeltaDiscoveryRequest {
        type_url: ROUTE_TYPE.into(),
        resource_names_unsubscribe: strings(&["r2"]),
        ..Default::default()
    })
    .await;
    s.nothing().await;
    h.upsert(resource(
        ResourceKind::RouteConfig,
        "team-a",
        "r2",
        json!({"virtualHosts": [{"name": "vh2", "domains": ["*"],
            "routes": [{"match": {"path": {"type": "prefix", "value": "/"}},
                "action": {"type": "forward", "cluster": "a1"}}]}]}),
    ));
    s.nothing().await;
    h.delete(ResourceKind::RouteConfig, "r2");
    s.nothing().await;

    // Subscribing again to one that exists sends it right away.
    s.send(subscribe(ROUTE_TYPE, &["r1"])).await;
    let again = s.next_acked(ROUTE_TYPE).await;
    assert_eq!(names(&again), strings(&["r1"]));
}

#[tokio::test]
async fn a_reconnect_declaring_what_it_holds_gets_only_the_difference() {
    let mut h = harness().await;
    h.upsert(cluster("a2", 8003));
    let mut first = Stream::wildcard(&mut h, CLUSTER_TYPE).await;
    let cds = first.next_acked(CLUSTER_TYPE).await;
    let held = versions(&cds);
    assert_eq!(held.len(), 2);

    // Holding exactly the current versions: nothing to send.
    let mut same = Stream::open(
        &mut h,
        node("team-a", "edge"),
        DeltaDiscoveryRequest {
            type_url: CLUSTER_TYPE.into(),
            initial_resource_versions: held.clone(),
            ..Default::default()
        },
    )
    .await;
    same.nothing().await;

    // One stale version, and one cluster that no longer exists.
    let mut stale = held.clone();
    stale.insert("a2".into(), "0000000000000000".into());
    stale.insert("gone".into(), "1111111111111111".into());
    let mut behind = Stream::open(
        &mut h,
        node("team-a", "edge"),
        DeltaDiscoveryRequest {
            type_url: CLUSTER_TYPE.into(),
            initial_resource_versions: stale,
            ..Default::default()
        },
    )
    .await;
    let diff = behind.next_acked(CLUSTER_TYPE).await;
    assert_eq!(names(&diff), strings(&["a2"]));
    assert_eq!(versions(&diff)["a2"], held["a2"]);
    assert_eq!(diff.removed_resources, strings(&["gone"]));
    assert_eq!(diff.system_version_info, cds.system_version_info);
    behind.nothing().await;
}

#[tokio::test]
async fn a_nack_is_reported_like_sotw_and_not_resent() {
    let mut h = harness().await;
    let mut s = Stream::wildcard(&mut h, LISTENER_TYPE).await;
    s.next_acked(LISTENER_TYPE).await;

    h.upsert(listener("l1", 10000, "r1"));
    let pushed = s.next().await;
    assert_eq!(names(&pushed), strings(&["l1"]));
    s.send(DeltaDiscoveryRequest {
        type_url: LISTENER_TYPE.into(),
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
    let nack = h.report(false).await;
    assert_eq!(
        (nack.type_url.as_str(), nack.error_message.as_str()),
        (LISTENER_TYPE, "l1: cannot bind")
    );
    assert_eq!(nack.version, pushed.system_version_info);
    assert_eq!(nack.resource_names, strings(&["l1"]));
    assert_eq!(
        (nack.team.as_str(), nack.dataplane.as_str()),
        ("team-a", "edge")
    );

    // The next change sends only what changed; the rejected listener is not pushed again
    // until it changes itself.
    h.upsert(listener("l2", 10001, "r1"));
    let next = s.next_acked(LISTENER_TYPE).await;
    assert_eq!(names(&next), strings(&["l2"]));
    h.upsert(listener("l1", 10002, "r1"));
    let fixed = s.next_acked(LISTENER_TYPE).await;
    assert_eq!(names(&fixed), strings(&["l1"]));
}

#[tokio::test]
async fn an_unknown_dataplane_is_refused() {
    let mut h = harness().await;
    for node in [node("team-a", "no-such-dataplane"), node("team-b", "edge")] {
        let mut stranger = Stream::open(&mut h, node, subscribe(CLUSTER_TYPE, &[])).await;
        let refused = tokio::time::timeout(Duration::from_secs(3), stranger.rx.message()).await;
        match refused {
            Ok(Err(status)) => assert_eq!(status.code(), tonic::Code::Unauthenticated),
            other => panic!(
                "expected Unauthenticated, got {:?}",
                other.map(|r| r.map(|m| m.is_some()))
            ),
        }
    }
}

#[tokio::test]
async fn dropping_the_wildcard_stops_updates_but_explicit_names_stay() {
    let mut h = harness().await;
    let mut s = Stream::wildcard(&mut h, CLUSTER_TYPE).await;
    s.next_acked(CLUSTER_TYPE).await;
    s.send(DeltaDiscoveryRequest {
        type_url: CLUSTER_TYPE.into(),
        resource_names_subscribe: strings(&["a2"]),
        resource_names_unsubscribe: strings(&["*"]),
        ..Default::default()
    })
    .await;
    // a1 was held only through the wildcard: the client drops it itself, nothing to say.
    s.nothing().await;
    h.upsert(cluster("a3", 8005));
    h.delete(ResourceKind::Cluster, "a1");
    s.nothing().await;
    h.upsert(cluster("a2", 8003));
    let named = s.next_acked(CLUSTER_TYPE).await;
    assert_eq!(names(&named), strings(&["a2"]));
    assert!(named.removed_resources.is_empty());
}

#[tokio::test]
async fn endpoints_of_ip_clusters_arrive_over_eds_and_change_without_the_cluster() {
    let mut h = harness().await;
    h.upsert(eds_cluster("e1", 8101));
    let mut s = Stream::wildcard(&mut h, CLUSTER_TYPE).await;
    let cds = s.next_acked(CLUSTER_TYPE).await;
    assert_eq!(names(&cds), strings(&["a1", "e1"]));
    // Envoy asks for the endpoints of its EDS clusters by name.
    s.send(subscribe(ENDPOINT_TYPE, &["e1", "a1", "missing"]))
        .await;
    let eds = s.next_acked(ENDPOINT_TYPE).await;
    assert_eq!(
        names(&eds),
        strings(&["e1"]),
        "only clusters of IP endpoints have an EDS resource"
    );
    let first = versions(&eds)["e1"].clone();

    // An endpoint change re-sends the endpoints, not the cluster.
    h.upsert(eds_cluster("e1", 8102));
    let changed = s.next_acked(ENDPOINT_TYPE).await;
    assert_eq!(names(&changed), strings(&["e1"]));
    assert_ne!(versions(&changed)["e1"], first);
    s.nothing().await;

    // Deleting the cluster removes both; the cluster's removal comes last (make before break).
    h.delete(ResourceKind::Cluster, "e1");
    let removed_endpoints = s.next_acked(ENDPOINT_TYPE).await;
    assert_eq!(removed_endpoints.removed_resources, strings(&["e1"]));
    let removed_cluster = s.next_acked(CLUSTER_TYPE).await;
    assert_eq!(removed_cluster.removed_resources, strings(&["e1"]));
}
