//! OpenAPI import at size: a generated document with N operations is imported through the
//! REST API (dry run, then for real, then unchanged again), and a real Envoy is timed until it
//! serves the last operation through the team's shared gateway listener.

use std::time::{Duration, Instant};

use flowplane_e2e::{Envoy, Stack, Upstream};
use serde_json::{Value, json};

use crate::setup::{TEAM, World};

const DOMAIN: &str = "bench-import.example";

pub async fn run(stack: &Stack, world: &World, operations: usize) -> anyhow::Result<()> {
    let upstream = Upstream::start("imported").await?;
    let paths = operations.div_ceil(2);
    let document = document(paths, upstream.port).to_string();
    let url = |extra: &str| {
        format!(
            "{}/api/v1/api-definitions/from-openapi?team={TEAM}&name=bench-import&domain={DOMAIN}{extra}",
            stack.api_url
        )
    };
    let http = reqwest::Client::new();
    let import = |url: String| {
        let (http, document, token) = (http.clone(), document.clone(), world.token.clone());
        async move {
            let start = Instant::now();
            let response = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(document)
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await?;
            anyhow::ensure!(status.is_success(), "import: {status} {body}");
            anyhow::Ok((start, start.elapsed(), body))
        }
    };

    let bootstrap = world
        .api
        .get(&format!(
            "/api/v1/teams/{TEAM}/dataplanes/edge/envoy-config"
        ))
        .await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.text, stack.envoy_admin_port).await?;

    let (_, dry_run, _) = import(url("&dryRun=true")).await?;
    let (started, applied, _) = import(url("")).await?;
    let last = format!(
        "http://127.0.0.1:{}/svc{}/items/42",
        stack.shared_gateway_port,
        paths - 1
    );
    let served = wait_until_served(&last, started).await?;
    let (_, unchanged, answer) = import(url("")).await?;
    println!(
        "\n## OpenAPI import, {} operations ({} KiB document)",
        paths * 2,
        document.len() / 1024
    );
    println!(
        "- dry run (parse, plan, validate, translate): {}",
        ms(dry_run)
    );
    println!("- import applied (one revision): {}", ms(applied));
    println!(
        "- a real Envoy serves the last operation {} after the import started",
        ms(served)
    );
    let outcome = if answer["changed"] == false {
        "nothing changed, no revision"
    } else {
        "CHANGED"
    };
    println!(
        "- re-import of the same document: {} ({outcome})",
        ms(unchanged)
    );
    envoy.stop().await;
    Ok(())
}

/// `paths` paths, each with a GET and a DELETE on a templated item.
fn document(paths: usize, port: u16) -> Value {
    let mut items = serde_json::Map::new();
    for i in 0..paths {
        let operation = |verb: &str| {
            json!({"operationId": format!("{verb}Svc{i}"),
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok"}}})
        };
        items.insert(
            format!("/svc{i}/items/{{id}}"),
            json!({"get": operation("get"), "delete": operation("delete")}),
        );
    }
    json!({"openapi": "3.0.3", "info": {"title": "Bench", "version": "1"},
        "servers": [{"url": format!("http://127.0.0.1:{port}")}], "paths": items})
}

async fn wait_until_served(url: &str, started: Instant) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(response) = client.get(url).header("host", DOMAIN).send().await
            && let Ok(body) = response.json::<Value>().await
            && body["upstream"] == "imported"
        {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    anyhow::bail!("Envoy never served {url}")
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
