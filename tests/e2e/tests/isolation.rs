//! Tenant isolation, table-driven from the OpenAPI document: every operation the gateway serves
//! is classified by its path shape, and every team-owned one is checked. A token holding every
//! write scope of team A can neither read, list nor change anything of team B (404, lists
//! exclude B), and a token holding every read scope of team A cannot write there (403).
//!
//! New endpoints are covered without touching this file as long as they follow the resource
//! shapes (`/api/v1/{kind}[/{name}]`, `/api/v1/teams/{team}/{kind}[/{name}[/{sub}]]`); an
//! operation of any other shape, or a kind without a seed body below, fails the test until it is
//! classified here.

use std::collections::BTreeMap;

use flowplane_e2e::api::Reply;
use flowplane_e2e::{Api, Stack};
use reqwest::Method;
use serde_json::{Value, json};

const A: &str = "acme-default";
const B: &str = "beta-default";
const RESOURCES: [&str; 11] = [
    "tokens",
    "clusters",
    "routes",
    "listeners",
    "filters",
    "secrets",
    "dataplanes",
    "api-definitions",
    "learning-sessions",
    "reports",
    "mcp",
];

/// Operations that hold no team's data, each with the reason.
const NOT_TENANT: [(&str, &str); 8] = [
    ("/api/v1/bootstrap/", "first run, before any tenant exists"),
    ("/api/v1/admin/", "platform administration"),
    (
        "/api/v1/orgs/",
        "organization administration, tested in sessions.rs",
    ),
    ("/api/v1/auth/", "the caller's own session"),
    (
        "/api/v1/tokens",
        "the caller's own tokens, tested in identity.rs",
    ),
    (
        "/api/v1/audit-logs",
        "filtered per caller, tested in identity.rs",
    ),
    ("/api/v1/filter-types", "the static catalog of filter types"),
    ("/api-docs/", "this document"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_token_reaches_no_other_team_through_any_operation() {
    flowplane_e2e::run_scenario("isolation", |stack| Box::pin(scenario(stack))).await;
}

/// Where an operation sits, by path shape.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// `/api/v1/teams/{team}/{kind}`
    TeamCollection(String),
    /// `/api/v1/teams/{team}/{kind}/{name}`
    TeamItem(String),
    /// `/api/v1/teams/{team}/{kind}/{name}/{sub}`: a read, or an action on the item
    TeamSub(String, String),
    /// `/api/v1/{kind}`
    Collection(String),
    /// `/api/v1/{kind}/{name}`
    Item(String),
    /// `/api/v1/{kind}/{action}` with the team in `?team=` (POST only)
    CollectionAction(String, String),
    /// `/api/v1/reports/{report}` with the team in `?team=` (GET only)
    Report(String),
    /// `/api/v1/{kind}/{name}/{action}`, the team in `?team=` when needed (POST only)
    ItemAction(String, String),
}

fn classify(method: &str, path: &str) -> Result<Option<Shape>, String> {
    if !path.starts_with("/api/") || NOT_TENANT.iter().any(|(p, _)| path.starts_with(p)) {
        return Ok(None);
    }
    let rest = path.trim_start_matches("/api/v1/");
    let segments: Vec<&str> = rest.split('/').collect();
    let param = |s: &str| s.starts_with('{') && s.ends_with('}');
    let shape = match segments.as_slice() {
        ["teams", "{team}", kind] if !param(kind) => Shape::TeamCollection(kind.to_string()),
        ["teams", "{team}", kind, name] if !param(kind) && param(name) => {
            Shape::TeamItem(kind.to_string())
        }
        ["teams", "{team}", kind, name, sub] if !param(kind) && param(name) && !param(sub) => {
            Shape::TeamSub(kind.to_string(), sub.to_string())
        }
        [kind] if !param(kind) => Shape::Collection(kind.to_string()),
        [kind, name] if param(name) => Shape::Item(kind.to_string()),
        ["reports", report] if !param(report) => Shape::Report(report.to_string()),
        [kind, name, action] if !param(kind) && param(name) && !param(action) => {
            Shape::ItemAction(kind.to_string(), action.to_string())
        }
        [kind, action] if !param(kind) && !param(action) => {
            Shape::CollectionAction(kind.to_string(), action.to_string())
        }
        _ => return Err(format!("{method} {path}: unknown path shape")),
    };
    let allowed = match &shape {
        Shape::TeamCollection(_) | Shape::Collection(_) => ["get", "post"].as_slice(),
        Shape::TeamItem(_) | Shape::Item(_) => ["get", "put", "patch", "delete"].as_slice(),
        Shape::TeamSub(..) => ["get", "post"].as_slice(),
        Shape::CollectionAction(..) => ["post"].as_slice(),
        // A trace takes the request to trace as its body, a preflight the change to try.
        Shape::Report(report) if report == "trace" || report == "preflight" => ["post"].as_slice(),
        Shape::Report(_) => ["get"].as_slice(),
        Shape::ItemAction(..) => ["post"].as_slice(),
    };
    if allowed.contains(&method) {
        Ok(Some(shape))
    } else {
        Err(format!(
            "{method} {path}: a {shape:?} does not take {method}"
        ))
    }
}

/// The name of the seeded item of `kind` in `team` (distinct per team, so a canonical path
/// without `?team=` cannot resolve to the caller's own item by accident).
fn item(team: &str, kind: &str) -> String {
    format!("{team}-{kind}")
}

/// A valid body creating `name` of `kind` in `team`; `None` for a kind this test does not
/// know yet (which fails the test: add a seed).
fn seed(kind: &str, team: &str, name: &str, dataplane_id: &str) -> Option<Value> {
    let port = if team == A { 10301 } else { 10302 };
    Some(match kind {
        "clusters" => json!({"team": team, "name": name,
            "endpoints": [{"host": "127.0.0.1", "port": 9}]}),
        "route-configs" => json!({"team": team, "name": name,
            "virtualHosts": [{"name": "all", "domains": ["*"],
                "routes": [{"match": {"path": {"type": "prefix", "value": "/"}},
                    "action": {"type": "forward", "cluster": item(team, "clusters")}}]}]}),
        "dataplanes" => json!({"team": team, "name": name}),
        "listeners" => json!({"team": team, "name": name, "address": "127.0.0.1", "port": port,
            "dataplaneId": dataplane_id, "protocol": "HTTP",
            "filterChains": [{"name": "default", "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "type": "httpConnectionManager", "routeConfigName": item(team, "route-configs"),
                "httpFilters": [{"filter": {"type": "router"}}]}]}]}),
        "api-definitions" => json!({"team": team, "name": name,
            "domain": format!("{name}.isolation.example"),
            "routes": [{"path": "/", "upstream": "http://127.0.0.1:9"}]}),
        "expose" => json!({"name": name, "upstream": "http://127.0.0.1:9", "path": "/exposed"}),
        "secrets" => json!({"team": team, "name": name, "type": "genericSecret",
            "secret": format!("isolation-{team}-material")}),
        "learning-sessions" => json!({"team": team, "name": name,
            "listener": item(team, "listeners")}),
        _ => return None,
    })
}

/// The body an action on a kind's collection takes, with its content type.
fn action_body(kind: &str, action: &str) -> Option<String> {
    match (kind, action) {
        ("api-definitions", "from-openapi") => Some(
            json!({"openapi": "3.0.3", "info": {"title": "iso import", "version": "1"},
                "servers": [{"url": "http://127.0.0.1:9"}],
                "paths": {"/imported": {"get": {"responses": {"200": {"description": "ok"}}}}}})
            .to_string(),
        ),
        _ => None,
    }
}

/// Seeds happen in dependency order; kinds not listed here come last.
const SEED_ORDER: [&str; 7] = [
    "clusters",
    "route-configs",
    "dataplanes",
    "listeners",
    "learning-sessions",
    "api-definitions",
    "expose",
];

struct World {
    admin: Api,
    /// Every write scope of team A.
    writer: Api,
    /// Every read scope of team A.
    reader: Api,
    dataplanes: BTreeMap<String, String>,
}

impl World {
    fn body(&self, kind: &str, team: &str, name: &str) -> anyhow::Result<Value> {
        seed(kind, team, name, &self.dataplanes[team]).ok_or_else(|| {
            anyhow::anyhow!("kind '{kind}' has no seed body in isolation.rs: add one")
        })
    }
}

fn expect(reply: &Reply, expected: u16, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        reply.status.as_u16() == expected,
        "{what}: expected {expected}, got {reply:?}"
    );
    Ok(())
}

async fn token(admin: &Api, base: &Api, name: &str, action: &str) -> anyhow::Result<Api> {
    let scopes: Vec<String> = RESOURCES
        .iter()
        .map(|r| format!("team:{A}:{r}:{action}"))
        .collect();
    let created = admin
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": name, "scopes": scopes})),
            201,
        )
        .await?;
    Ok(base.with_token(created["token"].as_str().unwrap_or_default()))
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let base = Api::new(&stack.api_url);
    let setup = stack.setup_token().await?;
    let init = base
        .with_token(&setup)
        .expect(
            Method::POST,
            "/api/v1/bootstrap/initialize",
            Some(&json!({"email": "admin@example.com", "password": "isolation-password", "name": "Admin"})),
            201,
        )
        .await?;
    let admin = base.with_token(init["token"].as_str().unwrap_or_default());
    for org in ["acme", "beta"] {
        admin
            .expect(
                Method::POST,
                "/api/v1/admin/organizations",
                Some(&json!({"name": org})),
                201,
            )
            .await?;
    }
    let writer = token(&admin, &base, "team-a-writer", "write").await?;
    let reader = token(&admin, &base, "team-a-reader", "read").await?;

    // Classify every operation of the document; anything unclassified fails here.
    let document = base.get("/api-docs/openapi.json").await?.body;
    let mut operations = Vec::new();
    let mut unclassified = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in item
            .as_object()
            .into_iter()
            .flatten()
            .map(|(m, _)| m.as_str())
        {
            if !["get", "post", "put", "patch", "delete"].contains(&method) {
                continue;
            }
            match classify(method, path) {
                Ok(Some(shape)) => operations.push((method.to_string(), path.clone(), shape)),
                Ok(None) => {}
                Err(e) => unclassified.push(e),
            }
        }
    }
    anyhow::ensure!(
        unclassified.is_empty(),
        "unclassified operations: {unclassified:#?}"
    );
    let team_ops = operations
        .iter()
        .filter(|(_, _, s)| matches!(s, Shape::TeamCollection(_)))
        .count();
    anyhow::ensure!(
        team_ops >= 4,
        "too few team operations found: {operations:#?}"
    );

    // Seed one item of every kind in both teams.
    let mut kinds: Vec<String> = operations
        .iter()
        .filter_map(|(_, _, s)| match s {
            Shape::TeamCollection(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    kinds.sort_by_key(|k| SEED_ORDER.iter().position(|s| s == k).unwrap_or(usize::MAX));
    kinds.dedup();
    let mut world = World {
        admin: admin.clone(),
        writer,
        reader,
        dataplanes: BTreeMap::new(),
    };
    for team in [A, B] {
        world.dataplanes.insert(team.to_string(), String::new());
        for kind in &kinds {
            let name = item(team, kind);
            let body = world.body(kind, team, &name)?;
            let created = admin
                .post(&format!("/api/v1/teams/{team}/{kind}"), &body)
                .await?;
            anyhow::ensure!(
                created.status.is_success(),
                "seeding {kind} in {team}: {created:?}"
            );
            if kind == "dataplanes" {
                let id = created.body["id"].as_str().unwrap_or_default().to_string();
                world.dataplanes.insert(team.to_string(), id);
            }
        }
    }

    let mut checked = 0;
    for (method, path, shape) in &operations {
        check(&world, method, path, shape)
            .await
            .map_err(|e| e.context(format!("{} {path}", method.to_uppercase())))?;
        checked += 1;
    }
    eprintln!("checked {checked} team-owned operations");

    // Nothing of team B changed: every seeded item is still there.
    for kind in kinds.iter().filter(|k| *k != "expose") {
        let path = format!("/api/v1/teams/{B}/{kind}/{}", item(B, kind));
        expect(&admin.get(&path).await?, 200, &format!("{path} survives"))?;
    }
    Ok(())
}

async fn call(api: &Api, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Reply> {
    let method = Method::from_bytes(method.to_uppercase().as_bytes())?;
    api.call(method, path, body, &[]).await
}

/// The checks for one operation.
async fn check(world: &World, method: &str, path: &str, shape: &Shape) -> anyhow::Result<()> {
    let in_team = |team: &str| path.replace("{team}", team);
    match shape {
        Shape::TeamCollection(kind) => {
            let (b_path, a_path) = (in_team(B), in_team(A));
            let body = |team: &str| world.body(kind, team, &format!("{}-new", item(team, kind)));
            if method == "get" {
                expect(
                    &call(&world.writer, method, &b_path, None).await?,
                    404,
                    "list of B",
                )?;
                expect(
                    &call(&world.reader, method, &a_path, None).await?,
                    200,
                    "list of A",
                )?;
            } else {
                let b = body(B)?;
                expect(
                    &call(&world.writer, method, &b_path, Some(&b)).await?,
                    404,
                    "create in B",
                )?;
                let a = body(A)?;
                expect(
                    &call(&world.reader, method, &a_path, Some(&a)).await?,
                    403,
                    "read-only create in A",
                )?;
            }
        }
        Shape::TeamItem(kind) | Shape::TeamSub(kind, _) => {
            let b_path = in_team(B).replace(&between_braces(path, 1), &item(B, kind));
            let a_path = in_team(A).replace(&between_braces(path, 1), &item(A, kind));
            if method == "get" {
                expect(
                    &call(&world.writer, method, &b_path, None).await?,
                    404,
                    "read of B's item",
                )?;
                let seen = call(&world.admin, method, &b_path, None).await?;
                anyhow::ensure!(seen.status.is_success(), "admin reads B's item: {seen:?}");
            } else {
                let b = world.body(kind, B, &item(B, kind))?;
                let a = world.body(kind, A, &item(A, kind))?;
                let with = |v| (method != "delete").then_some(v);
                expect(
                    &call(&world.writer, method, &b_path, with(&b)).await?,
                    404,
                    "change of B's item",
                )?;
                expect(
                    &call(&world.reader, method, &a_path, with(&a)).await?,
                    403,
                    "read-only change in A",
                )?;
            }
        }
        Shape::Collection(kind) => {
            if method == "get" {
                let listed = call(&world.writer, method, path, None).await?;
                expect(&listed, 200, "canonical list")?;
                let items = listed.body["items"].as_array().cloned().unwrap_or_default();
                anyhow::ensure!(
                    !items.is_empty() && items.iter().all(|i| i["team"] == A),
                    "the list holds exactly team A's items: {listed:?}"
                );
                let of_b = call(&world.writer, method, &format!("{path}?team={B}"), None).await?;
                expect(&of_b, 404, "canonical list of B")?;
            } else {
                let b = world.body(kind, B, &format!("{}-new", item(B, kind)))?;
                expect(
                    &call(&world.writer, method, path, Some(&b)).await?,
                    404,
                    "create in B",
                )?;
                let a = world.body(kind, A, &format!("{}-new", item(A, kind)))?;
                expect(
                    &call(&world.reader, method, path, Some(&a)).await?,
                    403,
                    "read-only create in A",
                )?;
            }
        }
        Shape::Item(kind) => {
            let param = between_braces(path, 0);
            let b_item = path.replace(&param, &item(B, kind));
            let a_item = path.replace(&param, &item(A, kind));
            let b = world.body(kind, B, &item(B, kind))?;
            let a = world.body(kind, A, &item(A, kind))?;
            let body = |v| (method == "put" || method == "patch").then_some(v);
            for b_path in [b_item.clone(), format!("{b_item}?team={B}")] {
                expect(
                    &call(&world.writer, method, &b_path, body(&b)).await?,
                    404,
                    "B's item",
                )?;
            }
            if method != "get" {
                expect(
                    &call(&world.reader, method, &a_item, body(&a)).await?,
                    403,
                    "read-only change in A",
                )?;
            }
        }
        Shape::ItemAction(kind, _) => {
            let param = between_braces(path, 0);
            let b_item = path.replace(&param, &item(B, kind));
            let a_item = path.replace(&param, &item(A, kind));
            for b_path in [b_item.clone(), format!("{b_item}?team={B}")] {
                expect(
                    &call(&world.writer, method, &b_path, None).await?,
                    404,
                    "an action on B's item",
                )?;
            }
            expect(
                &call(&world.reader, method, &a_item, None).await?,
                403,
                "a read-only action in A",
            )?;
        }
        Shape::Report(report) => {
            let of = |team: &str| match report.as_str() {
                "delivery" => format!("{path}?team={team}&dataplane={}", item(team, "dataplanes")),
                _ => format!("{path}?team={team}"),
            };
            let body = |team: &str| match report.as_str() {
                "trace" => Some(
                    json!({"dataplane": item(team, "dataplanes"), "port": 1, "host": "x", "path": "/"}),
                ),
                "preflight" => Some(json!({"kind": "clusters", "name": item(team, "clusters")})),
                _ => None,
            };
            expect(
                &call(&world.writer, method, &of(B), body(B).as_ref()).await?,
                404,
                &format!("{report} of B"),
            )?;
            let own = call(&world.reader, method, &of(A), body(A).as_ref()).await?;
            expect(&own, 200, &format!("{report} of A"))?;
            anyhow::ensure!(
                !own.text.contains(B),
                "{report} of A mentions team B: {own:?}"
            );
        }
        Shape::CollectionAction(kind, action) => {
            let body = action_body(kind, action).ok_or_else(|| {
                anyhow::anyhow!("{kind}/{action} has no body in isolation.rs: add one")
            })?;
            for (api, team, expected) in [(&world.writer, B, 404), (&world.reader, A, 403)] {
                let reply = api
                    .call(
                        Method::POST,
                        &format!("{path}?team={team}"),
                        Some(&serde_json::from_str(&body)?),
                        &[],
                    )
                    .await?;
                expect(&reply, expected, &format!("{action} into {team}"))?;
            }
        }
    }
    Ok(())
}

/// The `n`th `{param}` of a path, braces included.
fn between_braces(path: &str, n: usize) -> String {
    path.split('/')
        .filter(|s| s.starts_with('{'))
        .nth(n)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn shapes_are_classified_strictly() {
    assert_eq!(
        classify("get", "/api/v1/teams/{team}/clusters/{name}"),
        Ok(Some(Shape::TeamItem("clusters".into())))
    );
    assert_eq!(
        classify("post", "/api/v1/api-definitions/from-openapi"),
        Ok(Some(Shape::CollectionAction(
            "api-definitions".into(),
            "from-openapi".into()
        )))
    );
    assert_eq!(classify("get", "/api/v1/tokens/{id}"), Ok(None));
    assert_eq!(
        classify("post", "/api/v1/teams/{team}/learning-sessions/{name}/stop"),
        Ok(Some(Shape::TeamSub(
            "learning-sessions".into(),
            "stop".into()
        )))
    );
    assert!(classify("put", "/api/v1/teams/{team}/clusters/{name}/restart").is_err());
    assert!(classify("get", "/api/v1/reports/{a}/{b}").is_err());
    assert_eq!(
        classify("get", "/api/v1/reports/route-flows"),
        Ok(Some(Shape::Report("route-flows".into())))
    );
    assert!(classify("post", "/api/v1/reports/route-flows").is_err());
    assert_eq!(
        classify("post", "/api/v1/learning-sessions/{name}/stop"),
        Ok(Some(Shape::ItemAction(
            "learning-sessions".into(),
            "stop".into()
        )))
    );
    assert!(classify("get", "/api/v1/learning-sessions/{name}/stop").is_err());
    assert!(classify("post", "/api/v1/clusters/{name}").is_err());
}
