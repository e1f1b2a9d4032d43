//! A cold replica against a large database: N clusters are written straight into PostgreSQL
//! (one `generate_series` insert, as no REST client could write a million rows in a
//! benchmark's time), then a new xds-server replica starts. Measures the time until it is
//! ready (state loaded over gRPC from config, translated, encoded) and until one Envoy stream
//! has received every cluster, and the replica's resident memory.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use flowplane_e2e::Stack;
use flowplane_xds::resource::CLUSTER_TYPE;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::setup::{TEAM, World};

pub async fn run(stack: &mut Stack, world: &World, count: usize) -> anyhow::Result<()> {
    println!("\n## Cold replica, {count} clusters in PostgreSQL");
    let insert = format!(
        "INSERT INTO resources (id, kind, team_id, name, spec, revision) \
         SELECT gen_random_uuid(), 'clusters', t.id, 'cold-' || lpad(i::text, 7, '0'), \
                '{{\"endpoints\":[{{\"host\":\"127.0.0.1\",\"port\":8080}}]}}'::jsonb, \
                (SELECT value FROM revision_counter) \
         FROM teams t, generate_series(1, {count}) AS i WHERE t.name = '{TEAM}'"
    );
    let start = Instant::now();
    let status = tokio::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-q", "-d"])
        .arg(stack.database())
        .args(["-c", &insert])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "psql could not insert the rows");
    println!(
        "- inserted in {:.1} s (one INSERT … SELECT generate_series)",
        start.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let (port, _) = stack.add_xds_server("xds-cold").await?;
    let ready = start.elapsed();
    let pid = stack
        .pid("xds-cold")
        .ok_or_else(|| anyhow::anyhow!("no pid for the cold replica"))?;
    let rss = crate::streams::rss_kib(pid)?;
    let (clusters, bytes) = first_cds(port, world).await?;
    anyhow::ensure!(clusters >= count, "the stream got {clusters} clusters");
    println!(
        "- replica start → ready (state loaded from config, translated, encoded): {:.1} s; resident memory {} MiB",
        ready.as_secs_f64(),
        rss / 1024
    );
    println!(
        "- replica start → one SotW stream received all {clusters} clusters ({} MiB): {:.1} s",
        bytes / (1024 * 1024),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Opens one SotW CDS stream to the replica on `port`; returns how many clusters the first
/// response carried and its encoded size.
async fn first_cds(port: u16, world: &World) -> anyhow::Result<(usize, usize)> {
    use prost::Message;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect()
        .await?;
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::channel(1);
    tx.send(DiscoveryRequest {
        node: Some(crate::streams::node(0, &world.dataplane_id)),
        type_url: CLUSTER_TYPE.into(),
        ..Default::default()
    })
    .await?;
    let mut responses = client
        .stream_aggregated_resources(crate::setup::with_dataplane_token(
            world,
            ReceiverStream::new(rx),
        )?)
        .await?
        .into_inner();
    let response = tokio::time::timeout(Duration::from_secs(120), responses.message())
        .await??
        .ok_or_else(|| anyhow::anyhow!("the stream ended"))?;
    Ok((response.resources.len(), response.encoded_len()))
}
