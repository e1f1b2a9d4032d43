//! The xds-server's snapshot store, in process: how long one change takes to rebuild what a
//! stream is served when a team has many routes, and how long a cold replica takes to load
//! and serve a very large state. No network, so these isolate the store's own cost.

use std::time::{Duration, Instant};

use flowplane_proto::resources::v1::{Resource, ResourceKind};
use flowplane_proto::state::v1::{ChangeEvent, ChangeOp, State};
use flowplane_xds::resource::{CLUSTER_TYPE, ROUTE_TYPE};
use flowplane_xds_server::snapshot::{Dataplane, Store};

const TEAM: &str = "bench";
/// Routes per route config: a large team spreads its routes over many route configs, and a
/// change touches one of them.
const ROUTES_PER_CONFIG: usize = 100;
const CHANGES: usize = 50;

pub fn run(route_counts: &[usize], cold_resources: usize) -> anyhow::Result<()> {
    for &routes in route_counts {
        rebuild_after_one_change(routes)?;
    }
    if cold_resources > 0 {
        cold_load(cold_resources)?;
    }
    Ok(())
}

fn rebuild_after_one_change(routes: usize) -> anyhow::Result<()> {
    let configs = routes.div_ceil(ROUTES_PER_CONFIG);
    let mut resources = vec![resource(
        ResourceKind::Cluster,
        "backend",
        1,
        &cluster_spec(),
    )];
    resources.extend((0..configs).map(|i| {
        resource(
            ResourceKind::RouteConfig,
            &config_name(i),
            1,
            &route_config_spec(i, 0),
        )
    }));
    let store = Store::new();
    store.replace_all(State {
        revision: 1,
        resources,
        ..Default::default()
    });
    let dataplane = Dataplane {
        id: "dp".into(),
        name: "edge".into(),
    };
    let names: Vec<String> = (0..configs).map(config_name).collect();
    let mut took = Vec::with_capacity(CHANGES);
    for change in 1..=CHANGES {
        let revision = 1 + change as i64;
        let target = change % configs;
        let event = ChangeEvent {
            revision,
            op: ChangeOp::Upsert as i32,
            kind: ResourceKind::RouteConfig as i32,
            team: TEAM.into(),
            name: config_name(target),
            resource: Some(resource(
                ResourceKind::RouteConfig,
                &config_name(target),
                revision,
                &route_config_spec(target, change),
            )),
            ..Default::default()
        };
        let start = Instant::now();
        store.apply(&event)?;
        let served = store.view(TEAM, &dataplane, ROUTE_TYPE, &names);
        took.push(start.elapsed());
        anyhow::ensure!(served.resources.len() == configs, "lost route configs");
    }
    took.sort();
    println!(
        "\n## Snapshot rebuild after one change, {routes} routes ({configs} route configs × {ROUTES_PER_CONFIG})"
    );
    println!(
        "- apply the change and build a stream's full RDS view: p50 {}, max {} over {CHANGES} changes",
        ms(took[took.len() / 2]),
        ms(took[took.len() - 1])
    );
    Ok(())
}

fn cold_load(count: usize) -> anyhow::Result<()> {
    let rss_before = rss_kib();
    let spec = cluster_spec();
    let resources: Vec<Resource> = (0..count)
        .map(|i| resource(ResourceKind::Cluster, &format!("c{i:07}"), 1, &spec))
        .collect();
    let store = Store::new();
    let dataplane = Dataplane {
        id: "dp".into(),
        name: "edge".into(),
    };
    let start = Instant::now();
    store.replace_all(State {
        revision: 1,
        resources,
        ..Default::default()
    });
    let loaded = start.elapsed();
    let served = store.view(TEAM, &dataplane, CLUSTER_TYPE, &[]);
    let serving = start.elapsed();
    anyhow::ensure!(served.resources.len() == count, "lost clusters");
    println!("\n## Cold replica: {count} resources");
    println!(
        "- translated, encoded and indexed in {}; first full CDS view ready at {}",
        ms(loaded),
        ms(serving)
    );
    println!(
        "- resident memory of the benchmark process grew {} MiB",
        rss_kib().saturating_sub(rss_before) / 1024
    );
    Ok(())
}

fn resource(kind: ResourceKind, name: &str, revision: i64, spec_json: &str) -> Resource {
    Resource {
        kind: kind as i32,
        id: format!("id-{name}"),
        team: TEAM.into(),
        name: name.into(),
        revision,
        spec_json: spec_json.into(),
        ..Default::default()
    }
}

fn config_name(i: usize) -> String {
    format!("routes-{i:05}")
}

fn cluster_spec() -> String {
    r#"{"endpoints":[{"host":"127.0.0.1","port":8080}]}"#.into()
}

/// Route config `i`; `generation` changes one route's prefix so every change is real.
fn route_config_spec(i: usize, generation: usize) -> String {
    let routes: Vec<serde_json::Value> = (0..ROUTES_PER_CONFIG)
        .map(|r| {
            let prefix = if r == 0 {
                format!("/svc{i}/gen{generation}")
            } else {
                format!("/svc{i}/r{r}")
            };
            serde_json::json!({"match": {"path": {"type": "prefix", "value": prefix}},
                "action": {"type": "forward", "cluster": "backend"}})
        })
        .collect();
    serde_json::json!({"virtualHosts": [{"name": format!("vh{i}"), "domains": [format!("svc{i}.example")],
        "routes": routes}]})
    .to_string()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
