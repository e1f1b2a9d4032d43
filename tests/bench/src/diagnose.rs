//! The diagnosis reports at size: GitHub's published OpenAPI description (about 1,100
//! operations, 13 MB) is imported into the team, then each report is asked over REST again
//! and again, one call at a time: validate, topology, route flows, a trace of a request to
//! one of the last operations, and a preflight of deleting the imported definition's cluster.
//! Each answer is computed from the whole team, so these are the costs an operator (or an
//! agent) pays on a large real stack.

use std::time::{Duration, Instant};

use flowplane_e2e::Stack;
use reqwest::Method;
use serde_json::{Value, json};

use crate::setup::{TEAM, World};

const DOMAIN: &str = "api.github.example";

pub async fn run(
    stack: &Stack,
    world: &World,
    document: &std::path::Path,
    rounds: usize,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(document).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (the e2e suite's corpus holds GitHub's description; see tests/e2e/tests/hostile_import.rs)",
            document.display()
        )
    })?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let response = http
        .post(format!(
            "{}/api/v1/api-definitions/from-openapi?team={TEAM}&name=github&domain={DOMAIN}",
            stack.api_url
        ))
        .bearer_auth(&world.token)
        .header("content-type", "application/json")
        .body(text.clone())
        .timeout(Duration::from_secs(300))
        .send()
        .await?;
    let status = response.status();
    let imported: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "import: {status} {imported}");
    let imported_in = started.elapsed();
    let routes = imported["definition"]["routes"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    let definition = world
        .api
        .get(&format!("/api/v1/teams/{TEAM}/api-definitions/github"))
        .await?;
    let cluster = definition.body["generatedResources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == "clusters" || r["kind"] == "cluster")
        .and_then(|r| r["name"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no generated cluster: {}", definition.text))?
        .to_string();
    println!(
        "\n## Diagnosis reports on GitHub's API ({} MB document, {routes} routes, imported in {:.1} s)",
        text.len() / 1_000_000,
        imported_in.as_secs_f64()
    );

    let team = format!("team={TEAM}");
    let trace = json!({"dataplane": "edge", "port": stack.shared_gateway_port, "method": "GET",
        "host": DOMAIN, "path": "/repos/octo/hello/issues/42/comments"});
    let preflight = json!({"kind": "clusters", "name": cluster});
    let calls: [(&str, Method, String, Option<Value>); 5] = [
        (
            "validate",
            Method::GET,
            format!("/api/v1/reports/validate?{team}"),
            None,
        ),
        (
            "topology",
            Method::GET,
            format!("/api/v1/reports/topology?{team}"),
            None,
        ),
        (
            "route flows",
            Method::GET,
            format!("/api/v1/reports/route-flows?{team}"),
            None,
        ),
        (
            "trace",
            Method::POST,
            format!("/api/v1/reports/trace?{team}"),
            Some(trace),
        ),
        (
            "preflight (delete the cluster)",
            Method::POST,
            format!("/api/v1/reports/preflight?{team}"),
            Some(preflight),
        ),
    ];
    for (label, method, path, body) in calls {
        let mut latency = crate::histogram()?;
        let mut bytes = 0;
        let mut status = 0;
        for _ in 0..rounds {
            let start = Instant::now();
            let mut request = http
                .request(method.clone(), format!("{}{path}", stack.api_url))
                .bearer_auth(&world.token);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await?;
            status = response.status().as_u16();
            bytes = response.bytes().await?.len();
            latency.record(start.elapsed().as_micros().max(1) as u64)?;
        }
        anyhow::ensure!(status == 200, "{label}: status {status}");
        println!(
            "- {label}: {} ({} KiB answer)",
            crate::summary(&latency),
            bytes / 1024
        );
    }
    Ok(())
}
