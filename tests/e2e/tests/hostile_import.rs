//! OpenAPI import against what strangers and attackers send: GitHub's full public REST
//! description (13 MB, 1,200+ operations, operationIds that agree far past the 63-character
//! name limit) imports as a dry run and for real, and again unchanged; a hostile corpus (a
//! YAML alias bomb, 10,000-deep nesting, a body over the 48 MiB limit, `$ref` cycles, names
//! colliding after truncation) is answered quickly with a 4xx or a clean import, and Flowplane
//! keeps serving every other request throughout. A caller without access to the team is
//! refused before its document is read.
//!
//! GitHub's description comes from the `@octokit/openapi` npm package (`.ci/run` unpacks it to
//! `tests/e2e/corpus/api.github.com.json`; `FLOWPLANE_GITHUB_OPENAPI` names another copy). A
//! missing file fails the test.

use std::time::{Duration, Instant};

use flowplane_e2e::envoy::Envoy;
use flowplane_e2e::{Stack, Tenant, eventually};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_and_hostile_documents_never_stall_config() {
    flowplane_e2e::run_scenario("hostile-import", |stack| Box::pin(scenario(stack))).await;
}

fn github_description() -> anyhow::Result<String> {
    let path = std::env::var("FLOWPLANE_GITHUB_OPENAPI").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/api.github.com.json").into()
    });
    std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "GitHub's OpenAPI description at {path}: {e} (bash .ci/run fetches it from the @octokit/openapi npm package)"
        )
    })
}

struct Answer {
    status: u16,
    body: Value,
    took: Duration,
}

impl std::fmt::Display for Answer {
    /// The status and the start of the body: enough to see what went wrong.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.body.to_string();
        let end = (0..=body.len().min(600))
            .rev()
            .find(|i| body.is_char_boundary(*i))
            .unwrap_or(0);
        write!(f, "{} {}", self.status, &body[..end])
    }
}

/// Posts `document` to the import endpoint; an answer that takes longer than `patience` is a
/// failure (the service stalled), not a slow success.
async fn import(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    document: impl Into<reqwest::Body>,
    patience: Duration,
) -> anyhow::Result<Answer> {
    let started = Instant::now();
    let response = client
        .request(Method::POST, url)
        .bearer_auth(token)
        .header("content-type", "application/yaml")
        .body(document)
        .timeout(patience)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: no answer within {patience:?}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok(Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        took: started.elapsed(),
    })
}

/// Sends only the head of an import announcing 48 MiB + 1 byte, as a client streaming a large
/// file does, and reads the answer (a client sending the whole body races the server's early
/// answer and close).
async fn announce_oversized(
    api_url: &str,
    team: &str,
    token: &str,
) -> anyhow::Result<(u16, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = api_url.trim_start_matches("http://");
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(authority).await?;
    let head = format!(
        "POST /api/v1/api-definitions/from-openapi?team={team}&dryRun=true HTTP/1.1\r\n\
         Host: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/yaml\r\nContent-Length: {}\r\n\r\n",
        48 * 1024 * 1024 + 1
    );
    stream.write_all(head.as_bytes()).await?;
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await??;
    let line = String::from_utf8_lossy(&answer[..read]);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP answer: {line}"))?;
    Ok((status, started.elapsed()))
}

fn alias_bomb() -> String {
    let mut doc = String::from(
        "openapi: 3.0.0\ninfo: {title: bomb}\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let prev = i - 1;
        doc.push_str(&format!(
            "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    doc.push_str("paths: {/x: {get: {responses: {'200': {description: *a9}}}}}\n");
    doc
}

fn colliding_names(count: usize) -> String {
    let long = "listRepositoryDeploymentEnvironmentProtectionRulesForTheAuthenticatedUser";
    let mut paths = serde_json::Map::new();
    for i in 0..count {
        paths.insert(
            format!("/things/{i}"),
            json!({"get": {"operationId": format!("{long}{long}{i}")}}),
        );
    }
    json!({"openapi": "3.1.0", "info": {"title": "colliding names"},
        "servers": [{"url": "http://127.0.0.1:9"}], "paths": paths})
    .to_string()
}

fn ref_cycle() -> String {
    json!({"openapi": "3.0.3", "info": {"title": "ref cycle"},
        "servers": [{"url": "http://127.0.0.1:9"}],
        "paths": {"/a": {"$ref": "#/paths/~1b"}, "/b": {"$ref": "#/paths/~1a"},
            "/c": {"get": {"responses": {"200": {"description": "ok",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}}},
        "components": {"schemas": {"A": {"$ref": "#/components/schemas/B"},
            "B": {"$ref": "#/components/schemas/A"}}}})
    .to_string()
}

async fn scenario(stack: &mut Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "acme").await?;
    let other = tenant.another("beta").await?;
    let token = tenant
        .admin
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": "importer", "scopes": [
                format!("team:{}:api-definitions:write", tenant.team),
                format!("team:{}:clusters:read", tenant.team)]})),
            201,
        )
        .await?;
    let token = token["token"].as_str().unwrap_or_default().to_string();
    let client = reqwest::Client::new();
    let url = |team: &str, extra: &str| {
        format!(
            "{}/api/v1/api-definitions/from-openapi?team={team}{extra}",
            stack.api_url
        )
    };
    let quick = Duration::from_secs(5);

    // The hostile corpus: each answered at once, none a 5xx.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_yaml = format!(
        "openapi: 3.0.0\nx: {}{}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let hostile: Vec<(&str, reqwest::Body, &[u16])> = vec![
        ("a YAML alias bomb", alias_bomb().into(), &[400]),
        ("10,000-deep JSON", deep.into(), &[400]),
        ("10,000-deep YAML", deep_yaml.into(), &[400]),
        ("$ref cycles", ref_cycle().into(), &[200, 201, 400]),
        (
            "1,000 names colliding after truncation",
            colliding_names(1_000).into(),
            &[200],
        ),
    ];
    for (what, body, expected) in hostile {
        let answer = import(
            &client,
            &url(&tenant.team, "&dryRun=true&domain=h.example"),
            &token,
            body,
            quick,
        )
        .await?;
        eprintln!("{what}: {} in {:?}", answer.status, answer.took);
        anyhow::ensure!(
            expected.contains(&answer.status),
            "{what}: expected one of {expected:?}, got {answer}"
        );
        // Still serving.
        tenant
            .api
            .expect(Method::GET, "/api/v1/clusters", None, 200)
            .await?;
    }

    // A body announced over 48 MiB is refused before a byte of it is read.
    let (status, took) = announce_oversized(&stack.api_url, &tenant.team, &token).await?;
    eprintln!("a body announced over 48 MiB: {status} in {took:?}");
    anyhow::ensure!(status == 413, "a body over 48 MiB: {status}");

    // Another organization's importer is refused before its document is read: a 13 MB
    // document costs it a 404 as fast as an empty one.
    let github = github_description()?;
    let refused = import(
        &client,
        &url(&other.team, ""),
        &token,
        github.clone(),
        quick,
    )
    .await?;
    anyhow::ensure!(
        refused.status == 404,
        "another team: {} {}",
        refused.status,
        refused.body
    );
    eprintln!("another team's 13 MB import refused in {:?}", refused.took);

    // GitHub's full description: a dry run, the import, and the same again (unchanged); a
    // real Envoy of the team accepts everything it generated.
    let (_, bootstrap) = tenant.dataplane("edge").await?;
    let _envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let patience = Duration::from_secs(120);
    let extra = "&domain=api.github.example&name=github";
    let dry = import(
        &client,
        &url(&tenant.team, &format!("{extra}&dryRun=true")),
        &token,
        github.clone(),
        patience,
    )
    .await?;
    anyhow::ensure!(dry.status == 200, "dry run: {dry}");
    let routes = dry.body["definition"]["routes"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    eprintln!("GitHub dry run: {routes} routes in {:?}", dry.took);
    anyhow::ensure!(
        routes > 1_000,
        "dry run routed {routes} operations: {}",
        dry.body
    );
    let listed = tenant
        .api
        .expect(Method::GET, "/api/v1/clusters", None, 200)
        .await?;
    anyhow::ensure!(
        !listed.to_string().contains("github"),
        "a dry run left resources behind: {listed}"
    );
    let real = import(
        &client,
        &url(&tenant.team, extra),
        &token,
        github.clone(),
        patience,
    )
    .await?;
    anyhow::ensure!(real.status == 201, "import: {real}");
    eprintln!("GitHub import: {:?}", real.took);
    let again = import(&client, &url(&tenant.team, extra), &token, github, patience).await?;
    anyhow::ensure!(
        again.status == 200 && again.body["changed"] == false,
        "re-import: {again}"
    );
    eprintln!("GitHub re-import (unchanged): {:?}", again.took);
    let (_, took) = eventually(
        "Envoy to program every resource GitHub's import generated",
        Duration::from_secs(30),
        || async {
            let reply = tenant
                .admin
                .get(&format!(
                    "/api/v1/teams/{}/api-definitions/github",
                    tenant.team
                ))
                .await
                .map_err(|e| e.to_string())?;
            let generated = reply.body["generatedResources"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let programmed = !generated.is_empty()
                && generated.iter().all(|g| {
                    g["status"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|d| d["state"] == "programmed"))
                });
            if programmed {
                Ok(())
            } else {
                Err(reply.text.chars().take(2000).collect::<String>())
            }
        },
    )
    .await?;
    eprintln!("Envoy programmed GitHub's {routes} routes {took:?} after the import answered");
    Ok(())
}
