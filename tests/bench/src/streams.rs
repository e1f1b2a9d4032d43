//! Simulated Envoys: N ADS streams (state-of-the-world or delta) that ACK what they get.
//! Measures the time from a REST write's start until every stream has received the change,
//! the xds-server's resident memory per connected stream, and how many encodes a change costs.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use flowplane_e2e::Stack;
use flowplane_xds::bootstrap::{NODE_DATAPLANE_ID_KEY, NODE_TEAM_KEY};
use flowplane_xds::resource::CLUSTER_TYPE;
use reqwest::Method;
use tokio::sync::mpsc;

use crate::lean_envoy::{Connection, Threads};
use crate::setup::{TEAM, World, changed_cluster, cluster};

/// Streams per HTTP/2 connection, as a fleet behind a load balancer would spread them.
const STREAMS_PER_CONNECTION: usize = 100;

/// A response as a simulated Envoy saw it: its version (SotW `version_info`, or the changed
/// cluster's resource version for delta) and when it arrived.
pub struct Received {
    pub version: String,
    pub at: Instant,
}

/// Which ADS variant the simulated Envoys speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Sotw,
    Delta,
}

pub async fn run(
    stack: &Stack,
    world: &World,
    streams: usize,
    changes: usize,
    protocol: Protocol,
) -> anyhow::Result<()> {
    let created = world
        .api
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&cluster("bench-cluster", 1000)),
            201,
        )
        .await?;
    // Streams are refused until the replica knows the dataplane: wait until it has caught up.
    wait_for_revision(stack, created["revision"].as_f64().unwrap_or_default()).await?;
    let metrics = format!("{}/metrics", stack.xds_http);
    let pid = stack
        .pid("flowplane-xds-server")
        .ok_or_else(|| anyhow::anyhow!("no xds-server pid"))?;
    let rss_before = rss_kib(pid)?;

    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    let address = format!("127.0.0.1:{}", stack.xds_port);
    let threads = Threads::start(std::thread::available_parallelism().map_or(1, |n| n.get()))?;
    let started = Instant::now();
    for (n, first) in (0..streams).step_by(STREAMS_PER_CONNECTION).enumerate() {
        let nodes: Vec<Node> = (first..streams.min(first + STREAMS_PER_CONNECTION))
            .map(|i| node(i, &world.dataplane_id))
            .collect();
        let (address, tx) = (address.clone(), tx.clone());
        let token = world.dataplane_token.clone();
        threads.for_connection(n).spawn(async move {
            let connection = match Connection::open(&address).await {
                Ok(connection) => connection,
                Err(e) => return eprintln!("could not connect: {e}"),
            };
            for node in nodes {
                let envoy = connection.clone().simulate_envoy(
                    protocol,
                    node,
                    token.clone(),
                    CLUSTER_TYPE,
                    tx.clone(),
                );
                let tx = tx.clone();
                tokio::spawn(async move {
                    // Streams end with the benchmark; only an earlier end is news.
                    if let Err(e) = envoy.await
                        && !tx.is_closed()
                    {
                        eprintln!("a simulated Envoy stopped: {e}");
                    }
                });
            }
        });
    }
    let mut initial = String::new();
    for _ in 0..streams {
        let first = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("streams ended"))?;
        initial = first.version;
    }
    let connect = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_kib(pid)?;
    println!("\n## xDS propagation, {streams} {protocol:?} streams on one replica");
    println!("- connected and served in {:.2} s", connect.as_secs_f64());
    println!(
        "- xds-server resident memory: {} KiB before, {} KiB after → {:.1} KiB per stream",
        rss_before,
        rss_after,
        rss_after.saturating_sub(rss_before) as f64 / streams as f64
    );

    let encodes_before = metric(&metrics, "xds_encodes_total").await?;
    let (server_cpu_before, own_cpu_before) = (cpu_seconds(pid)?, cpu_seconds(std::process::id())?);
    let mut latency = crate::histogram()?;
    let mut previous = initial;
    for change in 0..changes {
        let start = Instant::now();
        world
            .api
            .expect(
                Method::PUT,
                &format!("/api/v1/teams/{TEAM}/clusters/bench-cluster"),
                Some(&changed_cluster("bench-cluster", change + 1)),
                200,
            )
            .await?;
        let mut seen = 0;
        let mut version = String::new();
        while seen < streams {
            let got = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("streams ended"))?;
            if got.version == previous {
                continue;
            }
            version.clone_from(&got.version);
            latency.record(got.at.duration_since(start).as_micros() as u64)?;
            seen += 1;
        }
        previous = version;
    }
    println!(
        "- REST write start → stream received, over {changes} changes × {streams} streams: {}",
        crate::summary(&latency)
    );
    println!(
        "- CPU during the changes: xds-server {:.2} s, simulated Envoys {:.2} s",
        cpu_seconds(pid)? - server_cpu_before,
        cpu_seconds(std::process::id())? - own_cpu_before
    );
    let encodes = metric(&metrics, "xds_encodes_total").await? - encodes_before;
    println!(
        "- encodes on the replica: {encodes} for {changes} changes ({:.2} per change, shared by all {streams} streams)",
        encodes / changes.max(1) as f64
    );
    Ok(())
}

/// Waits until the xds-server replica has applied `revision`.
pub async fn wait_for_revision(stack: &Stack, revision: f64) -> anyhow::Result<()> {
    let metrics = format!("{}/metrics", stack.xds_http);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&metrics, "xds_revision").await? < revision {
        anyhow::ensure!(Instant::now() < deadline, "the xds-server did not catch up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The sum of a Prometheus metric's samples on a `/metrics` page.
async fn metric(url: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(url).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

pub fn node(i: usize, dataplane_id: &str) -> Node {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.into())),
    };
    let mut metadata = Struct::default();
    metadata.fields.insert(NODE_TEAM_KEY.into(), string(TEAM));
    metadata
        .fields
        .insert(NODE_DATAPLANE_ID_KEY.into(), string(dataplane_id));
    Node {
        id: format!("bench-{i}"),
        cluster: TEAM.into(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))
}

/// User plus system CPU time a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at state (field 3).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("odd /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    // The kernel's USER_HZ is 100 on Linux.
    Ok(ticks / 100.0)
}
