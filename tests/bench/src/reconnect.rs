//! A delta reconnect: an Envoy that reconnects declaring what it holds
//! (`initial_resource_versions`) should get only what changed, not the whole set again.
//! Measures the response bytes of a fresh wildcard CDS subscription to N clusters against a
//! reconnect holding all of them while one changed.

use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use flowplane_e2e::Stack;
use flowplane_xds::resource::CLUSTER_TYPE;
use prost::Message;
use reqwest::Method;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::setup::{TEAM, World, changed_cluster, cluster};

pub async fn run(stack: &Stack, world: &World, clusters: usize) -> anyhow::Result<()> {
    let mut revision = 0.0;
    for i in 0..clusters {
        let created = world
            .api
            .expect(
                Method::POST,
                "/api/v1/clusters",
                Some(&cluster(&name(i), 2000)),
                201,
            )
            .await?;
        revision = created["revision"].as_f64().unwrap_or_default();
    }
    crate::streams::wait_for_revision(stack, revision).await?;

    let endpoint = format!("http://127.0.0.1:{}", stack.xds_port);
    let (fresh, held) = subscribe(&endpoint, world, Vec::new(), clusters).await?;

    // One cluster changes while the Envoy is away; it comes back holding every version.
    let changed = world
        .api
        .expect(
            Method::PUT,
            &format!("/api/v1/teams/{TEAM}/clusters/{}", name(0)),
            Some(&changed_cluster(&name(0), 1)),
            200,
        )
        .await?;
    crate::streams::wait_for_revision(stack, changed["revision"].as_f64().unwrap_or_default())
        .await?;
    let (reconnect, _) = subscribe(&endpoint, world, held, 1).await?;

    println!("\n## Delta reconnect, {clusters} clusters");
    println!(
        "- fresh wildcard subscription: {} bytes; reconnect declaring what it holds (1 changed): {} bytes → {:.1}% of the bytes skipped",
        fresh,
        reconnect,
        100.0 * (1.0 - reconnect as f64 / fresh.max(1) as f64)
    );
    Ok(())
}

fn name(i: usize) -> String {
    format!("reconnect-{i:05}")
}

/// Opens a delta CDS stream declaring `held`, reads responses until `expect` resources
/// arrived, and returns the response bytes received and the (name, version) pairs held.
async fn subscribe(
    endpoint: &str,
    world: &World,
    held: Vec<(String, String)>,
    expect: usize,
) -> anyhow::Result<(usize, Vec<(String, String)>)> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())?
        .connect()
        .await?;
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let (tx, rx) = mpsc::channel(4);
    tx.send(DeltaDiscoveryRequest {
        node: Some(crate::streams::node(0, &world.dataplane_id)),
        type_url: CLUSTER_TYPE.into(),
        initial_resource_versions: held.into_iter().collect(),
        ..Default::default()
    })
    .await?;
    let mut responses = client
        .delta_aggregated_resources(crate::setup::with_dataplane_token(
            world,
            ReceiverStream::new(rx),
        )?)
        .await?
        .into_inner();
    let (mut bytes, mut received) = (0, Vec::new());
    while received.len() < expect {
        let response: DeltaDiscoveryResponse =
            tokio::time::timeout(Duration::from_secs(30), responses.message())
                .await??
                .ok_or_else(|| anyhow::anyhow!("the stream ended"))?;
        bytes += response.encoded_len();
        received.extend(
            response
                .resources
                .iter()
                .map(|r| (r.name.clone(), r.version.clone())),
        );
        tx.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })
        .await?;
    }
    Ok((bytes, received))
}
