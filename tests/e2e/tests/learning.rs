//! Learning an API from live traffic, end to end: a learning session on a listener makes the
//! real Envoy copy its traffic to the learning service, which infers endpoints and schemas
//! that the REST API shows and exports as OpenAPI (which imports back). Traffic never waits
//! for learning, not even when the learning service is down; a stopped session learns no
//! more, and another team sees nothing. The CLI reads and stops sessions too.

use std::time::Duration;

use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learning_session_learns_the_api_from_traffic_through_envoy() {
    flowplane_e2e::run_scenario("learning", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &mut Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "learn").await?;
    let api = &tenant.api;
    let team = &tenant.team;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstream = Upstream::start("users").await?;
    let port = tenant.route_all("users", upstream.port, &dataplane).await?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let sessions = format!("/api/v1/teams/{team}/learning-sessions");

    // Traffic flows before any session exists (the listener's learning slot is idle).
    eventually("the listener to serve", Duration::from_secs(15), || {
        let http = http.clone();
        let url = format!("{base}/api/users/1");
        async move {
            match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await?;

    // A session starts pending; bad input is a 400 with the field's path.
    let created = api
        .expect(
            Method::POST,
            "/api/v1/learning-sessions",
            Some(
                &json!({"team": team, "name": "users-api", "listener": "users-listener",
                "pathPrefix": "/api"}),
            ),
            201,
        )
        .await?;
    anyhow::ensure!(created["state"] == "pending", "created: {created}");
    let bad = api
        .post(
            "/api/v1/learning-sessions",
            &json!({"team": team, "name": "nowhere", "listener": "no-such-listener"}),
        )
        .await?;
    anyhow::ensure!(
        bad.status.as_u16() == 400 && bad.body["errors"][0]["field"] == "/listener",
        "a session on a missing listener: {bad:?}"
    );
    let active = api
        .expect(
            Method::POST,
            // The canonical path: the caller's one team holds the name.
            "/api/v1/learning-sessions/users-api/activate",
            None,
            200,
        )
        .await?;
    anyhow::ensure!(active["state"] == "active", "activated: {active}");

    // One active session per listener.
    api.expect(
        Method::POST,
        "/api/v1/learning-sessions",
        Some(&json!({"team": team, "name": "second", "listener": "users-listener"})),
        201,
    )
    .await?;
    let second = api
        .post(&format!("{sessions}/second/activate"), &json!({}))
        .await?;
    anyhow::ensure!(
        second.status.as_u16() == 400 && second.body["errors"][0]["field"] == "/state",
        "a second active session on the listener: {second:?}"
    );

    // Traffic: users by id, a create with a JSON body, and a path outside the prefix.
    let mut sent = 0u32;
    let (endpoints, _) = eventually(
        "the session to learn the users API",
        Duration::from_secs(20),
        || {
            sent += 1;
            let http = http.clone();
            let base = base.clone();
            let api = api.clone();
            let sessions = sessions.clone();
            let i = sent;
            async move {
                send_traffic(&http, &base, i).await?;
                let learned = api
                    .get(&format!("{sessions}/users-api/endpoints"))
                    .await
                    .map_err(|e| e.to_string())?;
                let items = learned.body["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let has = |method: &str, path: &str| {
                    items
                        .iter()
                        .any(|e| e["method"] == method && e["path"] == path)
                };
                if has("GET", "/api/users/{userId}")
                    && has("POST", "/api/users")
                    && has("GET", "/api/articles/{articleId}")
                {
                    Ok(items)
                } else {
                    Err(format!("learned so far: {}", learned.text))
                }
            }
        },
    )
    .await?;
    let concrete: Vec<&Value> = endpoints
        .iter()
        .filter(|e| {
            SLUGS
                .iter()
                .any(|s| e["path"].as_str().unwrap_or_default().contains(s))
        })
        .collect();
    anyhow::ensure!(
        concrete.is_empty(),
        "instances left beside their template: {concrete:?}"
    );
    let by_id = find(&endpoints, "GET", "/api/users/{userId}")?;
    // Parameters typed from their values (kept nowhere): the id and `limit` are integers.
    let parameter = |name: &str| {
        by_id["parameters"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    anyhow::ensure!(
        parameter("userId")["schema"]["type"] == "integer"
            && parameter("limit")["schema"]["type"] == "integer"
            && parameter("limit")["in"] == "query"
            && parameter("fields")["schema"]["type"] == "string"
            && parameter("fields")["required"] == true,
        "parameters of GET /api/users/{{userId}}: {by_id}"
    );
    let ok = by_id["responses"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["status"] == 200))
        .cloned()
        .unwrap_or_default();
    anyhow::ensure!(
        ok["schema"]["type"] == "object"
            && ok["schema"]["properties"]["upstream"]["type"] == "string"
            && ok["schema"]["properties"]["path"]["type"] == "string",
        "the response schema of GET /api/users/{{userId}}: {by_id}"
    );
    let create = find(&endpoints, "POST", "/api/users")?;
    let request = &create["requestSchema"];
    anyhow::ensure!(
        request["properties"]["name"]["type"] == "string"
            && request["properties"]["age"]["type"] == "integer"
            && request["properties"]["email"]["format"] == "email"
            && request["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("name")) && !r.contains(&json!("nickname"))),
        "the request schema of POST /api/users: {create}"
    );
    anyhow::ensure!(
        !endpoints
            .iter()
            .any(|e| e["path"].as_str().is_some_and(|p| !p.starts_with("/api"))),
        "nothing outside the path prefix is learned: {endpoints:?}"
    );
    let leaked = serde_json::to_string(&endpoints)?;
    anyhow::ensure!(
        !leaked.contains("ada@example.com") && !leaked.contains("secret-cookie"),
        "no value seen in traffic is stored, only shapes"
    );

    // Envoy's answer about the session's slot is the session's status.
    eventually(
        "the session's status to say Envoy applied it",
        Duration::from_secs(10),
        || async {
            let session = api
                .get(&format!("{sessions}/users-api"))
                .await
                .map_err(|e| e.to_string())?;
            let status = &session.body["status"][0];
            if status["state"] == "programmed" && status["dataplane"] == "gw" {
                Ok(())
            } else {
                Err(session.text)
            }
        },
    )
    .await?;

    // The CLI shows the same.
    let table = api
        .cli(&["learn", "endpoints", "users-api", "--team", team])
        .await?;
    anyhow::ensure!(
        table.contains("/api/users/{userId}") && table.contains("POST"),
        "flowplane learn endpoints: {table}"
    );

    // OpenAPI 3.1 export, which Flowplane's importer takes back (checked as a dry run).
    let document = api
        .get(&format!(
            "{sessions}/users-api/openapi?serverUrl=http://127.0.0.1:{}",
            upstream.port
        ))
        .await?;
    anyhow::ensure!(
        document.body["openapi"] == "3.1.0"
            && document.body["paths"]["/api/users/{userId}"]["get"].is_object()
            && document.body["paths"]["/api/users"]["post"]["requestBody"].is_object(),
        "the exported document: {}",
        document.text
    );
    let reimport = tenant
        .admin
        .call(
            Method::POST,
            &format!(
                "/api/v1/api-definitions/from-openapi?team={team}&domain=learned.example&dryRun=true"
            ),
            Some(&document.body),
            &[],
        )
        .await?;
    anyhow::ensure!(
        reimport.status.as_u16() == 200 && reimport.body["dryRun"] == true,
        "re-importing the export: {reimport:?}"
    );

    // Another team sees nothing of it.
    let other = tenant.another("other").await?;
    let foreign = other
        .api
        .get(&format!("{sessions}/users-api/endpoints"))
        .await?;
    anyhow::ensure!(
        foreign.status.as_u16() == 404,
        "another team reads the session: {foreign:?}"
    );

    // Without the learning service, traffic still flows: Envoy never waits for it.
    stack.kill("flowplane-learning").await?;
    for i in 0..20 {
        let response = http.get(format!("{base}/api/users/{i}")).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "request {i} with the learning service down: {}",
            response.status()
        );
    }

    // A stopped session learns no more (its slot goes back to idle in Envoy).
    let stopped = api
        .expect(
            Method::POST,
            &format!("{sessions}/users-api/stop"),
            None,
            200,
        )
        .await?;
    anyhow::ensure!(stopped["state"] == "stopped", "stopped: {stopped}");
    eventually(
        "Envoy to drop the session's processor",
        Duration::from_secs(10),
        || async {
            let dump = envoy.config_dump().await.map_err(|e| e.to_string())?;
            let text = dump.to_string();
            if text.contains("x-flowplane-learning-session") {
                Err("the capturing processor is still configured".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await?;
    envoy.stop().await;
    Ok(())
}

/// One round of traffic; `i` varies the ids and the optional field.
const SLUGS: [&str; 4] = ["hello-world", "zero-copy", "envoy-xds", "tenant-boundary"];

async fn send_traffic(http: &reqwest::Client, base: &str, i: u32) -> Result<(), String> {
    let mut user = json!({"name": format!("user {i}"), "age": 30 + i, "email": "ada@example.com"});
    if i.is_multiple_of(2) {
        user["nickname"] = json!("ada");
    }
    let calls = [
        http.get(format!("{base}/api/users/{i}?fields=name&limit={}", i % 7))
            .header("cookie", "session=secret-cookie"),
        http.post(format!("{base}/api/users")).json(&user),
        http.get(format!("{base}/health/{i}")),
        // Slugs no single path says are values; their siblings do.
        http.get(format!(
            "{base}/api/articles/{}",
            SLUGS[i as usize % SLUGS.len()]
        )),
    ];
    for call in calls {
        let response = call.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("traffic failed: {}", response.status()));
        }
    }
    Ok(())
}

fn find<'a>(endpoints: &'a [Value], method: &str, path: &str) -> anyhow::Result<&'a Value> {
    endpoints
        .iter()
        .find(|e| e["method"] == method && e["path"] == path)
        .ok_or_else(|| anyhow::anyhow!("{method} {path} not learned: {endpoints:?}"))
}
