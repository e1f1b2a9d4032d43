//! The Platform API story with a real Envoy: import a petstore OpenAPI document and call its
//! operations through Envoy (a method the document does not declare is not routed); re-import
//! it unchanged (nothing changes); import a changed version (only the difference changes, and
//! Envoy serves the new route); a dry run changes nothing; `expose` gets traffic flowing in one
//! call and its inverse stops it; the CLI does the same.

use std::time::Duration;

use flowplane_e2e::stack::binary;
use flowplane_e2e::{Api, Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::{Value, json};

const DOMAIN: &str = "pets.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_import_and_expose_route_traffic_through_envoy() {
    flowplane_e2e::run_scenario("platform-api", |stack| Box::pin(scenario(stack))).await;
}

fn petstore(upstream_port: u16, version: u8) -> String {
    // v1 has the inventory; v2 drops it and adds deletePet.
    let changing = if version == 1 {
        "  /store/inventory:\n    get: {operationId: getInventory}\n"
    } else {
        ""
    };
    let delete = if version == 1 {
        ""
    } else {
        "    delete: {operationId: deletePet}\n"
    };
    format!(
        "openapi: 3.1.0
info:
  title: Petstore
  version: \"{version}\"
servers:
  - url: http://127.0.0.1:{upstream_port}/v1
paths:
  /pets:
    get:
      operationId: listPets
      responses:
        200: {{description: ok}}
    post:
      operationId: createPet
  /pets/{{petId}}:
    get:
      operationId: getPet
      parameters:
        - {{name: petId, in: path, required: true, schema: {{type: string}}}}
{delete}{changing}"
    )
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "shop").await?;
    let team = tenant.team.clone();
    let scopes: Vec<String> = [
        "api-definitions",
        "clusters",
        "routes",
        "listeners",
        "dataplanes",
    ]
    .iter()
    .map(|r| format!("team:{team}:{r}:write"))
    .collect();
    let token = tenant
        .admin
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": "platform", "scopes": scopes})),
            201,
        )
        .await?;
    let token = token["token"].as_str().unwrap_or_default().to_string();
    let api = Api::new(&stack.api_url).with_token(&token);

    let (_, bootstrap) = tenant.dataplane("edge").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let pets = Upstream::start("pets").await?;
    let echo = Upstream::start("echo").await?;
    let gateway = format!("http://127.0.0.1:{}", stack.shared_gateway_port);
    let import_url = |extra: &str| {
        format!(
            "{}/api/v1/api-definitions/from-openapi?team={team}&domain={DOMAIN}{extra}",
            stack.api_url
        )
    };
    let http = reqwest::Client::new();
    let import = |url: String, document: String| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/yaml")
                .body(document)
                .send()
                .await?;
            let status = response.status().as_u16();
            let body: Value = response.json().await?;
            anyhow::Ok((status, body))
        }
    };

    // 1. A dry run reports the plan and applies nothing.
    let (status, plan) = import(import_url("&dryRun=true"), petstore(pets.port, 1)).await?;
    anyhow::ensure!(
        status == 200 && plan["dryRun"] == true,
        "dry run: {status} {plan}"
    );
    anyhow::ensure!(
        has_change(&plan, "added", "listeners", "default-gateway-listener"),
        "the plan names the shared listener: {plan}"
    );
    let listed = api.get("/api/v1/api-definitions").await?;
    anyhow::ensure!(
        listed.body["items"] == json!([]),
        "a dry run must create nothing: {listed:?}"
    );

    // An invalid document is a 400 pointing into it; a large one (beyond the 1 MiB of other
    // bodies) is accepted.
    let (status, invalid) = import(
        import_url(""),
        format!(
            "openapi: 3.0.3\ninfo: {{title: Bad}}\nservers: [{{url: 'http://127.0.0.1:{}'}}]\npaths:\n  /pets:\n    get: not-an-operation\n",
            pets.port
        ),
    )
    .await?;
    anyhow::ensure!(
        status == 400 && invalid["errors"][0]["field"] == "/paths/~1pets/get",
        "invalid document: {status} {invalid}"
    );
    let large = format!(
        "{}x-padding: \"{}\"\n",
        petstore(pets.port, 1),
        "p".repeat(3 * 1024 * 1024)
    );
    let (status, plan) = import(import_url("&dryRun=true"), large).await?;
    anyhow::ensure!(
        status == 200 && plan["dryRun"] == true,
        "a 3 MiB document: {status} {plan}"
    );

    // 2. The import: clusters, routes and the team's gateway listener in one change.
    let (status, created) = import(import_url(""), petstore(pets.port, 1)).await?;
    anyhow::ensure!(status == 201, "import: {status} {created}");
    let revision = created["definition"]["revision"].clone();
    let call = |method: Method, path: &str| {
        let http = http.clone();
        let url = format!("{gateway}{path}");
        async move {
            let response = http
                .request(method, url)
                .header("host", DOMAIN)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Ok::<_, String>((status, body))
        }
    };
    let (_, took) = eventually(
        "GET /v1/pets through Envoy",
        Duration::from_secs(15),
        || async {
            match call(Method::GET, "/v1/pets").await? {
                (200, body) if body["upstream"] == "pets" && body["path"] == "/v1/pets" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- envoy ---\n{}", envoy.log_tail()))?;
    println!("the imported API answered {took:?} after the import");
    for (method, path) in [
        (Method::POST, "/v1/pets"),
        (Method::GET, "/v1/pets/42"),
        (Method::GET, "/v1/store/inventory"),
    ] {
        let (status, body) = call(method.clone(), path)
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            status == 200 && body["path"] == path,
            "{method} {path}: {status} {body}"
        );
    }
    // The document declares no DELETE on /pets/{petId}: Envoy does not route it.
    let (status, body) = call(Method::DELETE, "/v1/pets/42")
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        status == 404 && body["upstream"].is_null(),
        "DELETE is not in v1: {status} {body}"
    );

    // Envoy acknowledged the generated resources, and the definition shows them.
    eventually(
        "generated resources programmed on dataplane edge",
        Duration::from_secs(10),
        || async {
            let reply = api
                .get(&format!("/api/v1/teams/{team}/api-definitions/petstore"))
                .await
                .map_err(|e| e.to_string())?;
            let generated = reply.body["generatedResources"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let programmed = generated.len() == 3
                && generated.iter().all(|g| {
                    g["status"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|d| d["state"] == "programmed"))
                });
            if programmed { Ok(()) } else { Err(reply.text) }
        },
    )
    .await?;
    // The definition's bootstrap is its team's dataplane's: that Envoy serves it.
    let definition_bootstrap = api
        .get(&format!(
            "/api/v1/teams/{team}/api-definitions/petstore/bootstrap?format=json"
        ))
        .await?;
    anyhow::ensure!(
        definition_bootstrap.body == bootstrap,
        "definition bootstrap: {definition_bootstrap:?}"
    );
    let cluster = format!("api-petstore-127.0.0.1-{}", pets.port);
    let refused = api.delete(&format!("/api/v1/clusters/{cluster}")).await?;
    anyhow::ensure!(
        refused.status.as_u16() == 409,
        "a generated cluster cannot be deleted directly: {refused:?}"
    );

    // 3. Re-importing the same document changes nothing.
    let (status, again) = import(import_url(""), petstore(pets.port, 1)).await?;
    anyhow::ensure!(
        status == 200 && again["changed"] == false && again["definition"]["revision"] == revision,
        "re-import: {status} {again}"
    );

    // 4. A dry run of v2 changes nothing either.
    let (_, plan) = import(import_url("&dryRun=true"), petstore(pets.port, 2)).await?;
    anyhow::ensure!(has_change(&plan, "added", "routes", "deletepet"), "{plan}");
    let current = api.get("/api/v1/api-definitions/petstore").await?;
    anyhow::ensure!(
        current.body["revision"] == revision,
        "dry run kept the revision: {current:?}"
    );

    // 5. v2: only the difference changes, and Envoy follows.
    let (status, updated) = import(import_url(""), petstore(pets.port, 2)).await?;
    anyhow::ensure!(status == 200 && updated["changed"] == true, "v2: {updated}");
    let mut changes: Vec<String> = updated["changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| format!("{} {} {}", c["op"], c["kind"], c["name"]).replace('"', ""))
        .collect();
    changes.sort();
    anyhow::ensure!(
        changes
            == [
                "added routes deletepet",
                "changed route-configs default-gateway-routes",
                "removed routes getinventory",
            ],
        "only the difference: {changes:?}"
    );
    eventually("DELETE routed in v2", Duration::from_secs(10), || async {
        match call(Method::DELETE, "/v1/pets/42").await? {
            (200, body) if body["upstream"] == "pets" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    let (status, _) = call(Method::GET, "/v1/store/inventory")
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(status == 404, "the inventory is gone in v2: {status}");

    // 6. expose: one call from an upstream URL and a path to traffic through Envoy, here on
    //    the shared gateway's catch-all host; and on a dedicated listener. A dry run first
    //    shows the plan and writes nothing.
    let planned = api
        .post(
            &format!("/api/v1/teams/{team}/expose?dryRun=true"),
            &json!({"name": "echo", "upstream": format!("http://127.0.0.1:{}", echo.port), "path": "/echo"}),
        )
        .await?;
    anyhow::ensure!(
        planned.status.as_u16() == 200
            && planned.body["dryRun"] == true
            && planned.body["changes"]
                .as_array()
                .is_some_and(|c| !c.is_empty()),
        "expose dry run: {planned:?}"
    );
    let absent = api
        .get(&format!("/api/v1/teams/{team}/api-definitions/echo"))
        .await?;
    anyhow::ensure!(
        absent.status.as_u16() == 404,
        "a dry run exposed: {absent:?}"
    );
    let exposed = api
        .post(
            &format!("/api/v1/teams/{team}/expose"),
            &json!({"name": "echo", "upstream": format!("http://127.0.0.1:{}", echo.port), "path": "/echo"}),
        )
        .await?;
    anyhow::ensure!(exposed.status.as_u16() == 201, "expose: {exposed:?}");
    let echo_url = format!("{gateway}/echo/hello");
    eventually("exposed upstream answers", Duration::from_secs(10), || {
        served_by(&echo_url, "echo")
    })
    .await?;
    let dedicated_port = free_port();
    let exposed = api
        .post(
            &format!("/api/v1/teams/{team}/expose"),
            &json!({"name": "echo-direct", "upstream": format!("http://127.0.0.1:{}/v2", echo.port),
                "path": "/", "port": dedicated_port}),
        )
        .await?;
    anyhow::ensure!(exposed.status.as_u16() == 201, "expose: {exposed:?}");
    let direct_url = format!("http://127.0.0.1:{dedicated_port}/x");
    eventually(
        "dedicated listener answers with the upstream's path prefix",
        Duration::from_secs(10),
        || async {
            let body: Value = reqwest::get(&direct_url)
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if body["upstream"] == "echo" && body["path"] == "/v2/x" {
                Ok(())
            } else {
                Err(body.to_string())
            }
        },
    )
    .await?;

    // ... and the inverse stops it, leaving the petstore untouched.
    for name in ["echo", "echo-direct"] {
        let gone = api
            .delete(&format!("/api/v1/teams/{team}/expose/{name}"))
            .await?;
        anyhow::ensure!(gone.status.as_u16() == 204, "unexpose {name}: {gone:?}");
    }
    eventually(
        "exposed path no longer routed",
        Duration::from_secs(10),
        || async {
            let status = reqwest::get(&echo_url)
                .await
                .map_err(|e| e.to_string())?
                .status();
            if status == 404 {
                Ok(())
            } else {
                Err(status.to_string())
            }
        },
    )
    .await?;
    eventually(
        "dedicated listener removed",
        Duration::from_secs(10),
        || async {
            match reqwest::get(&direct_url).await {
                Err(_) => Ok(()),
                Ok(response) => Err(response.status().to_string()),
            }
        },
    )
    .await?;
    let (status, body) = call(Method::GET, "/v1/pets/7")
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        status == 200 && body["upstream"] == "pets",
        "the petstore keeps working: {status} {body}"
    );

    // 7. The same through the CLI: re-import (unchanged), list, expose and unexpose.
    let document = stack.dir.join("petstore.yaml");
    std::fs::write(&document, petstore(pets.port, 2))?;
    let document = document.to_string_lossy().to_string();
    let imported = cli(
        stack,
        &token,
        &[
            "import", "openapi", &document, "--team", &team, "--domain", DOMAIN, "-o", "json",
        ],
    )
    .await?;
    anyhow::ensure!(imported["changed"] == false, "CLI re-import: {imported}");
    let listed = cli(
        stack,
        &token,
        &["api", "list", "--team", &team, "-o", "json"],
    )
    .await?;
    anyhow::ensure!(
        listed.as_array().map(Vec::len) == Some(1) && listed[0]["name"] == "petstore",
        "CLI list: {listed}"
    );
    let upstream = format!("http://127.0.0.1:{}", echo.port);
    let exposed = cli(
        stack,
        &token,
        &[
            "expose", &upstream, "--path", "/cli", "--team", &team, "-o", "json",
        ],
    )
    .await?;
    anyhow::ensure!(
        exposed["created"] == true && exposed["definition"]["name"] == "cli",
        "CLI expose: {exposed}"
    );
    let cli_url = format!("{gateway}/cli/x");
    eventually(
        "CLI-exposed upstream answers",
        Duration::from_secs(10),
        || served_by(&cli_url, "echo"),
    )
    .await?;
    let out = flowplane(stack, &token, &["unexpose", "cli", "--team", &team]).await?;
    anyhow::ensure!(out.status.success(), "CLI unexpose: {out:?}");
    envoy.stop().await;
    Ok(())
}

async fn flowplane(
    stack: &Stack,
    token: &str,
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    Ok(tokio::process::Command::new(binary("flowplane")?)
        .args(args)
        .env("FLOWPLANE_API_URL", &stack.api_url)
        .env("FLOWPLANE_TOKEN", token)
        .output()
        .await?)
}

/// Runs the CLI with `-o json` and parses what it printed.
async fn cli(stack: &Stack, token: &str, args: &[&str]) -> anyhow::Result<Value> {
    let out = flowplane(stack, token, args).await?;
    anyhow::ensure!(
        out.status.success(),
        "flowplane {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn has_change(result: &Value, op: &str, kind: &str, name: &str) -> bool {
    result["changes"].as_array().is_some_and(|changes| {
        changes
            .iter()
            .any(|c| c["op"] == op && c["kind"] == kind && c["name"] == name)
    })
}

async fn served_by(url: &str, upstream: &str) -> Result<(), String> {
    let response = reqwest::get(url).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("{status}: {e}"))?;
    if body["upstream"] == upstream {
        Ok(())
    } else {
        Err(format!("{status}: {body}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_with_jwt_requires_a_token_and_its_neighbour_does_not() {
    flowplane_e2e::run_scenario("platform-jwt", |stack| Box::pin(jwt_scenario(stack))).await;
}

async fn jwt_scenario(stack: &Stack) -> anyhow::Result<()> {
    use flowplane_e2e::jwt::{hs256_jwks, hs256_token};
    const SECRET: &[u8] = b"platform-api-e2e-hs256-secret-0123";
    const ISSUER: &str = "https://idp.platform.test";

    let tenant = Tenant::create(stack, "jwt").await?;
    let team = tenant.team.clone();
    let api = definitions_client(stack, &tenant, "platform-jwt").await?;
    let (_, bootstrap) = tenant.dataplane("edge").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstream = Upstream::start("orders").await?;
    let target = format!("http://127.0.0.1:{}", upstream.port);
    let provider = json!({"name": "idp", "issuer": ISSUER, "audiences": ["orders"],
        "jwks": {"type": "local", "inline": hs256_jwks(SECRET).to_string()}});
    for (name, domain, filters) in [
        (
            "orders",
            "orders.example",
            json!({"jwt": {"providers": [provider]}}),
        ),
        ("public", "public.example", json!({})),
    ] {
        api.expect(
            Method::POST,
            "/api/v1/api-definitions",
            Some(
                &json!({"team": team, "name": name, "domain": domain, "filters": filters,
                "routes": [{"path": "/", "upstream": target}]}),
            ),
            201,
        )
        .await?;
    }
    let gateway = format!("http://127.0.0.1:{}/items", stack.shared_gateway_port);
    let client = reqwest::Client::new();
    let status = |host: &'static str, bearer: Option<String>| {
        let (client, gateway) = (client.clone(), gateway.clone());
        async move {
            let mut request = client.get(&gateway).header("host", host);
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        }
    };
    eventually(
        "the definition without JWT served through Envoy",
        Duration::from_secs(15),
        || async {
            match status("public.example", None).await? {
                200 => Ok(()),
                other => Err(format!("status {other}")),
            }
        },
    )
    .await?;
    let without = status("orders.example", None).await;
    anyhow::ensure!(without == Ok(401), "orders without a token: {without:?}");
    let forged = status(
        "orders.example",
        Some(hs256_token(
            b"another-secret-another-secret-0000",
            ISSUER,
            "orders",
        )),
    )
    .await;
    anyhow::ensure!(forged == Ok(401), "orders with a forged token: {forged:?}");
    let valid = status(
        "orders.example",
        Some(hs256_token(SECRET, ISSUER, "orders")),
    )
    .await;
    anyhow::ensure!(valid == Ok(200), "orders with a valid token: {valid:?}");
    envoy.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_count_their_own_global_limits_on_the_shared_listener() {
    flowplane_e2e::run_scenario("platform-limits", |stack| Box::pin(limits_scenario(stack))).await;
}

/// Two definitions with a limit of the same name, and one without: each definition counts on
/// its own, and the one without a limit is never limited, though all share one listener.
async fn limits_scenario(stack: &Stack) -> anyhow::Result<()> {
    flowplane_e2e::away_from_a_day_boundary().await;
    let tenant = Tenant::create(stack, "quota").await?;
    let team = tenant.team.clone();
    let api = definitions_client(stack, &tenant, "platform-limits").await?;
    let (_, bootstrap) = tenant.dataplane("edge").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstream = Upstream::start("orders").await?;
    let target = format!("http://127.0.0.1:{}", upstream.port);
    let limited = json!({"globalRateLimit": {"limits": [{"name": "per-client",
        "requestsPerUnit": 2, "unit": "day", "per": [{"type": "requestHeader", "header": "x-client"}]}]}});
    for (name, filters) in [
        ("orders", limited.clone()),
        ("billing", limited),
        ("free", json!({})),
    ] {
        api.expect(
            Method::POST,
            "/api/v1/api-definitions",
            Some(
                &json!({"team": team, "name": name, "domain": format!("{name}.example"),
                "filters": filters, "routes": [{"path": "/", "upstream": target}]}),
            ),
            201,
        )
        .await?;
    }
    let gateway = format!("http://127.0.0.1:{}/items", stack.shared_gateway_port);
    let client = reqwest::Client::new();
    let status = |host: String| {
        let (client, gateway) = (client.clone(), gateway.clone());
        async move {
            client
                .get(&gateway)
                .header("host", host)
                .header("x-client", "alice")
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        }
    };
    eventually(
        "the unlimited definition served through Envoy",
        Duration::from_secs(15),
        || async {
            match status("free.example".into()).await? {
                200 => Ok(()),
                other => Err(format!("status {other}")),
            }
        },
    )
    .await?;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(status("orders.example".into()).await);
    }
    anyhow::ensure!(
        orders == [Ok(200), Ok(200), Ok(429)],
        "orders counts to its limit: {orders:?}"
    );
    let billing = status("billing.example".into()).await;
    anyhow::ensure!(
        billing == Ok(200),
        "billing's limit of the same name counts apart: {billing:?}"
    );
    for _ in 0..3 {
        let free = status("free.example".into()).await;
        anyhow::ensure!(free == Ok(200), "the definition without limits: {free:?}");
    }
    envoy.stop().await;
    Ok(())
}

/// A client whose token may write the team's API definitions and what they generate.
async fn definitions_client(stack: &Stack, tenant: &Tenant, name: &str) -> anyhow::Result<Api> {
    let team = &tenant.team;
    let scopes: Vec<String> = ["api-definitions", "clusters", "routes", "listeners"]
        .iter()
        .map(|r| format!("team:{team}:{r}:write"))
        .collect();
    let token = tenant
        .admin
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": name, "scopes": scopes})),
            201,
        )
        .await?;
    Ok(Api::new(&stack.api_url).with_token(token["token"].as_str().unwrap_or_default()))
}
