//! The mcp service as an agent sees it, over MCP's Streamable HTTP transport: by hand in
//! protocol 2025-06-18 (a token with the mcp scope is required; the tools are the REST
//! operations with their schemas and hints; a cluster made by a tool is there through the REST
//! API, a bad one comes back as a tool error with its field path, the cluster reads back as an
//! MCP resource, and another organization's team stays out of reach), then through the
//! official MCP Python SDK in 2025-11-25 (`tests/e2e/agent/agent.py`: structured results
//! checked against output schemas, paging, If-Match, import dry run, the seven prompts, and
//! `mcp:read` listing but not calling).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use flowplane_e2e::{Stack, Tenant};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_manages_its_teams_clusters_through_mcp_tools() {
    flowplane_e2e::run_scenario("mcp", |stack| Box::pin(scenario(stack))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_calls_the_teams_apis_through_envoy() {
    flowplane_e2e::run_scenario("mcp-api", |stack| Box::pin(api_tools(stack))).await;
}

/// An MCP client session: the token, and the session id the server gave at `initialize`.
struct Agent {
    http: reqwest::Client,
    endpoint: String,
    token: String,
    session: Option<String>,
    next_id: u64,
}

impl Agent {
    /// A session with the MCP server at `endpoint`, initialized.
    async fn connect(endpoint: String, token: &str) -> anyhow::Result<(Self, Value)> {
        let mut agent = Agent {
            http: reqwest::Client::new(),
            endpoint,
            token: token.to_string(),
            session: None,
            next_id: 0,
        };
        let (status, answer) = agent
            .send(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "e2e", "version": "1"}}),
                false,
            )
            .await?;
        anyhow::ensure!(status == 200, "initialize: HTTP {status} {answer}");
        let (status, _) = agent
            .send("notifications/initialized", json!({}), true)
            .await?;
        anyhow::ensure!(status == 202, "initialized: HTTP {status}");
        Ok((agent, answer))
    }

    /// Sends one JSON-RPC message; returns the HTTP status and the JSON-RPC answer, if any.
    async fn send(
        &mut self,
        method: &str,
        params: Value,
        notify: bool,
    ) -> anyhow::Result<(u16, Value)> {
        let mut message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        if !notify {
            self.next_id += 1;
            message["id"] = json!(self.next_id);
        }
        let mut request = self
            .http
            .post(&self.endpoint)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&message);
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        if let Some(session) = response.headers().get("mcp-session-id") {
            self.session = Some(session.to_str()?.to_string());
        }
        let sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text = response.text().await?;
        // The server may answer with JSON or with an event stream carrying the JSON.
        let body = if sse {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find(|v| v.get("id").is_some())
                .unwrap_or(Value::Null)
        } else if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, body))
    }

    /// Calls a tool; returns whether it reported an error, and its text.
    async fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<(bool, String)> {
        let (status, answer) = self
            .send(
                "tools/call",
                json!({"name": tool, "arguments": arguments}),
                false,
            )
            .await?;
        anyhow::ensure!(status == 200, "tools/call {tool}: HTTP {status} {answer}");
        let result = &answer["result"];
        anyhow::ensure!(result.is_object(), "tools/call {tool}: {answer}");
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((result["isError"] == json!(true), text))
    }
}

async fn scenario(stack: &mut Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "agents").await?;
    let team = tenant.team.clone();
    let others = tenant.another("others").await?;
    let token = |name: &str, scopes: Vec<String>| {
        let admin = tenant.admin.clone();
        let name = name.to_string();
        async move {
            anyhow::Ok(
                admin
                    .expect(
                        Method::POST,
                        "/api/v1/tokens",
                        Some(&json!({"name": name, "scopes": scopes})),
                        201,
                    )
                    .await?["token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };
    let team_scopes = |actions: &[&str]| -> Vec<String> {
        actions.iter().map(|a| format!("team:{team}:{a}")).collect()
    };
    let agent_token = token(
        "agent",
        team_scopes(&[
            "clusters:write",
            "api-definitions:write",
            "reports:read",
            "mcp:write",
        ]),
    )
    .await?;
    let read_only = token("agent-read", team_scopes(&["clusters:write", "mcp:read"])).await?;
    let no_mcp = token("no-mcp", team_scopes(&["clusters:write"])).await?;
    let base = stack.add_mcp().await?;
    let endpoint = format!("{base}/api/v1/mcp/cp");
    let http = reqwest::Client::new();

    // No token, a wrong one, or one without the mcp scope: refused before any MCP handling.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"}}});
    for (bearer, wanted) in [
        (None, 401),
        (Some("fp_pat_nope.nope"), 401),
        (Some(no_mcp.as_str()), 403),
    ] {
        let mut request = http
            .post(&endpoint)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let answer = request.send().await?;
        let status = answer.status();
        let text = answer.text().await?;
        anyhow::ensure!(status == wanted, "token {bearer:?}: HTTP {status} {text}");
        if wanted == 403 {
            anyhow::ensure!(text.contains("mcp:read"), "why: {text}");
        }
    }

    // Protocol 2025-06-18, spoken by hand: the tools are the REST operations, with hints and
    // schemas from the API's own OpenAPI document.
    let (mut agent, answer) = Agent::connect(endpoint.clone(), &agent_token).await?;
    anyhow::ensure!(
        answer["result"]["protocolVersion"] == "2025-06-18"
            && answer["result"]["serverInfo"]["name"] == "flowplane",
        "initialize: {answer}"
    );
    let (_, listed) = agent.send("tools/list", json!({}), false).await?;
    let tools = listed["result"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    anyhow::ensure!(tools.len() >= 60, "{} tools", tools.len());
    let create = tool("create_cluster");
    anyhow::ensure!(
        create["inputSchema"]["required"] == json!(["team", "body"])
            && create["annotations"]["readOnlyHint"] == false
            && create["outputSchema"]["type"] == "object",
        "create_cluster: {create}"
    );
    // The cluster's schema travels with the tool: an agent sees the fields it may send.
    let schema = create["inputSchema"].to_string();
    anyhow::ensure!(
        schema.contains("\"endpoints\"") && !schema.contains("#/components/"),
        "create_cluster's input schema: {schema}"
    );
    anyhow::ensure!(
        tool("get_cluster")["annotations"]["readOnlyHint"] == true
            && tool("delete_cluster")["annotations"]["destructiveHint"] == true
            && tool("login").is_null()
            && tool("list_clusters_canonical").is_null(),
        "hints and the tools left out: {listed}"
    );

    let (failed, text) = agent
        .call(
            "create_cluster",
            json!({"team": team, "body": {"name": "from-agent",
                "endpoints": [{"host": "127.0.0.1", "port": 8080}]}}),
        )
        .await?;
    anyhow::ensure!(!failed, "create: {text}");
    let stored = tenant
        .api
        .expect(
            Method::GET,
            &format!("/api/v1/teams/{team}/clusters/from-agent"),
            None,
            200,
        )
        .await?;
    anyhow::ensure!(stored["endpoints"][0]["port"] == 8080, "stored: {stored}");

    // A bad port: a tool error carrying the field path, and nothing written.
    let (failed, text) = agent
        .call(
            "create_cluster",
            json!({"team": team, "body": {"name": "bad",
                "endpoints": [{"host": "127.0.0.1", "port": 70000}]}}),
        )
        .await?;
    anyhow::ensure!(
        failed && text.contains("/endpoints/0/port"),
        "bad port: {text}"
    );
    let absent = tenant
        .api
        .get(&format!("/api/v1/teams/{team}/clusters/bad"))
        .await?;
    anyhow::ensure!(absent.status == 404, "bad cluster written: {absent:?}");

    // Another organization's team: out of reach, as on the REST API (404, no oracle); and the
    // mcp scope is only the agent's own team's.
    let (failed, text) = agent
        .call("list_clusters", json!({"team": others.team}))
        .await?;
    anyhow::ensure!(failed && text.contains("mcp:write"), "other team: {text}");
    let (mut admin_agent, _) = Agent::connect(
        endpoint.clone(),
        &token("wide", vec!["mcp:write".into(), "clusters:read".into()]).await?,
    )
    .await?;
    let (failed, text) = admin_agent
        .call("list_clusters", json!({"team": others.team}))
        .await?;
    anyhow::ensure!(failed && text.contains("404"), "other organization: {text}");

    // Arguments the operation does not take, or a path-changing name: invalid params, unsent.
    for arguments in [
        json!({"team": team, "name": "../tokens"}),
        json!({"team": team, "name": "from-agent", "surprise": 1}),
    ] {
        let (_, refused) = agent
            .send(
                "tools/call",
                json!({"name": "get_cluster", "arguments": arguments}),
                false,
            )
            .await?;
        anyhow::ensure!(refused["error"]["code"] == -32602, "{arguments}: {refused}");
    }

    // Resources: the cluster by URI, through the same API (another team's is not found).
    let uri = format!("flowplane://teams/{team}/clusters/from-agent");
    let (_, read) = agent
        .send("resources/read", json!({"uri": uri}), false)
        .await?;
    let contents = &read["result"]["contents"][0];
    anyhow::ensure!(
        contents["uri"] == uri.as_str()
            && contents["text"]
                .as_str()
                .is_some_and(|t| t.contains("8080")),
        "the cluster as a resource: {read}"
    );
    let (_, foreign) = agent
        .send(
            "resources/read",
            json!({"uri": format!("flowplane://teams/{}/clusters/from-agent", others.team)}),
            false,
        )
        .await?;
    anyhow::ensure!(
        foreign["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("404")),
        "another team's resource: {foreign}"
    );
    let (failed, text) = agent
        .call(
            "delete_cluster",
            json!({"team": team, "name": "from-agent"}),
        )
        .await?;
    anyhow::ensure!(!failed, "delete: {text}");

    // Protocol 2025-11-25 through the official MCP Python SDK, as an agent host runs it.
    let python = flowplane_e2e::workspace_root().join(".venv/bin/python");
    let script = flowplane_e2e::workspace_root().join("tests/e2e/agent/agent.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .env("MCP_URL", &endpoint)
        .env("TOKEN", &agent_token)
        .env("READ_ONLY_TOKEN", &read_only)
        .env("TEAM", &team)
        .env("OTHER_TEAM", &others.team)
        .output()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (bash .ci/run installs the mcp SDK into .venv)",
                python.display()
            )
        })?;
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    anyhow::ensure!(
        run.status.success() && out.contains("agent done"),
        "the Python SDK agent: {}\n{out}\n{err}",
        run.status
    );
    anyhow::ensure!(!out.contains(&agent_token) && !err.contains(&agent_token));
    Ok(())
}

/// The team's routes as tools at `/api/v1/mcp/api?team=`: a route forwarding to an upstream is
/// a tool, calling it goes through the real Envoy to the upstream, and a path outside the
/// route is refused before anything is sent.
async fn api_tools(stack: &mut Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "apitools").await?;
    let team = tenant.team.clone();
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let envoy =
        flowplane_e2e::Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port)
            .await?;
    let users = flowplane_e2e::Upstream::start("users").await?;
    tenant.route_all("users", users.port, &dataplane).await?;
    let token = tenant
        .admin
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": "api-agent", "scopes":
                [format!("team:{team}:reports:read"), format!("team:{team}:dataplanes:read"),
                 format!("team:{team}:mcp:write")]})),
            201,
        )
        .await?["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let base = stack.add_mcp().await?;

    let (mut agent, _) =
        Agent::connect(format!("{base}/api/v1/mcp/api?team={team}"), &token).await?;
    let (_, listed) = agent.send("tools/list", json!({}), false).await?;
    let tool = &listed["result"]["tools"][0];
    anyhow::ensure!(
        tool["name"] == "users-listener__all_0"
            && tool["inputSchema"]["required"] == json!(["path"]),
        "the route's tool: {listed}"
    );
    // Envoy takes a moment to serve the new listener; until then the call fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let (failed, text) = loop {
        let (failed, text) = agent
            .call("users-listener__all_0", json!({"path": "/users/7"}))
            .await?;
        if !failed || std::time::Instant::now() > deadline {
            break (failed, text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    anyhow::ensure!(
        !failed
            && text.starts_with("HTTP 200")
            && text.contains("\"upstream\":\"users\"")
            && text.contains("/users/7"),
        "the call through Envoy: {text}"
    );
    // The trace tool (control-plane endpoint, `reports:read`) says where that request goes.
    let (mut operator, _) = Agent::connect(format!("{base}/api/v1/mcp/cp"), &token).await?;
    let (failed, traced) = operator
        .call(
            "trace_request",
            json!({"team": team, "body": {"dataplane": "gw",
            "listener": "users-listener", "host": "anything", "path": "/users/7"}}),
        )
        .await?;
    anyhow::ensure!(
        !failed
            && traced.contains("\"route\"")
            && traced.contains("\"users\"")
            && traced.contains("\"kind\":\"forward\""),
        "the trace tool: {traced}"
    );
    let agents_token_leaked = text.contains(&token);
    anyhow::ensure!(
        !agents_token_leaked,
        "the agent's token reached the upstream"
    );

    let (_, refused) = agent
        .send(
            "tools/call",
            json!({"name": "users-listener__all_0", "arguments": {"path": "http://elsewhere/"}}),
            false,
        )
        .await?;
    anyhow::ensure!(
        refused["error"]["code"] == -32602,
        "a URL instead of a path: {refused}"
    );

    // A dataplane whose gateway host is the cloud metadata address: its route is a tool, but
    // calling it is refused before anything is sent (the mcp service never fetches there).
    let metadata = tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/dataplanes",
            Some(&json!({"team": team, "name": "meta", "gatewayHost": "169.254.169.254"})),
            201,
        )
        .await?;
    let meta_port = flowplane_e2e::free_port();
    tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/listeners",
            Some(&tenant.listener(
                "meta-listener",
                meta_port,
                metadata["id"].as_str().unwrap_or_default(),
                "users-routes",
            )),
            201,
        )
        .await?;
    let (_, listed) = agent.send("tools/list", json!({}), false).await?;
    let meta_tool = listed["result"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .find(|n| n.starts_with("meta-listener"))
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no tool for the metadata listener: {listed}"))?;
    let (_, refused) = agent
        .send(
            "tools/call",
            json!({"name": meta_tool, "arguments": {"path": "/latest/meta-data/"}}),
            false,
        )
        .await?;
    anyhow::ensure!(
        refused["error"]["code"] == -32602
            && refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("link-local")),
        "a call to the metadata address: {refused}"
    );

    // Without ?team=, or for another team, there are no tools.
    let (mut nowhere, _) = Agent::connect(format!("{base}/api/v1/mcp/api"), &token).await?;
    let (_, listed) = nowhere.send("tools/list", json!({}), false).await?;
    anyhow::ensure!(listed["error"].is_object(), "no team: {listed}");
    envoy.stop().await;
    Ok(())
}
