//! The trace report against a real Envoy: for a table of requests (exact, prefix, regex and
//! template paths, a header, methods, a weighted split, a direct response, hosts that pick
//! different virtual hosts, and requests nothing matches), where the trace says the request
//! goes is where Envoy sends it; likewise for TLS connections whose SNI picks a filter chain
//! (exact and wildcard server names, and names no chain takes). Tracing takes `reports:read`
//! on the team.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use flowplane_e2e::pki::Pki;
use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port};
use rcgen::ExtendedKeyUsagePurpose;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_agrees_with_where_envoy_sends_each_request() {
    flowplane_e2e::run_scenario("request-trace", |stack| Box::pin(scenario(stack))).await;
}

/// One request of the table, and what both Envoy and the trace must say about it.
struct Case {
    method: &'static str,
    host: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// The upstreams that may answer (one, or the weighted pair), or none.
    upstreams: &'static [&'static str],
    /// The status Envoy answers itself with, when no upstream does.
    status: Option<u16>,
    /// The route the trace must name (`None`: no route matches).
    route: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        method: "GET",
        host: "api.example.com",
        path: "/exact",
        headers: &[],
        upstreams: &["a"],
        status: None,
        route: Some("exact"),
    },
    Case {
        method: "GET",
        host: "api.example.com",
        path: "/exact/more",
        headers: &[],
        upstreams: &["c"],
        status: None,
        route: Some("fallback"),
    },
    Case {
        method: "GET",
        host: "api.example.com",
        path: "/items/42",
        headers: &[],
        upstreams: &["b"],
        status: None,
        route: Some("regex"),
    },
    Case {
        method: "GET",
        host: "api.example.com",
        path: "/items/abc",
        headers: &[],
        upstreams: &["c"],
        status: None,
        route: Some("fallback-items"),
    },
    Case {
        method: "GET",
        host: "api.example.com",
        path: "/users/7/posts",
        headers: &[],
        upstreams: &["c"],
        status: None,
        route: Some("template"),
    },
    Case {
        method: "GET",
        host: "api.example.com",
        path: "/canary?x=1",
        headers: &[("x-canary", "yes")],
        upstreams: &["b"],
        status: None,
        route: Some("canary"),
    },
    Case {
        method: "POST",
        host: "api.example.com",
        path: "/write",
        headers: &[],
        upstreams: &["a"],
        status: None,
        route: Some("posts-only"),
    },
    Case {
        method: "GET",
        host: "api.example.com",
        path: "/split",
        headers: &[],
        upstreams: &["a", "b"],
        status: None,
        route: Some("split"),
    },
    Case {
        method: "GET",
        host: "API.example.com:80",
        path: "/exact",
        headers: &[],
        upstreams: &["a"],
        status: None,
        route: Some("exact"),
    },
    Case {
        method: "GET",
        host: "teapot.example.com",
        path: "/anything",
        headers: &[],
        upstreams: &[],
        status: Some(418),
        route: Some("teapot"),
    },
    Case {
        method: "GET",
        host: "api.example.com",
        path: "/nowhere",
        headers: &[],
        upstreams: &[],
        status: Some(404),
        route: None,
    },
    Case {
        method: "GET",
        host: "unknown.test",
        path: "/exact",
        headers: &[],
        upstreams: &[],
        status: Some(404),
        route: None,
    },
];

async fn scenario(stack: &mut Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "tracing").await?;
    let api = &tenant.api;
    let (dataplane, bootstrap) = tenant.dataplane("edge").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let mut upstreams = Vec::new();
    for name in ["a", "b", "c"] {
        let upstream = Upstream::start(name).await?;
        api.expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster(name, upstream.port)),
            201,
        )
        .await?;
        upstreams.push(upstream);
    }
    let route = |name: &str, path: Value, extra: Value, action: Value| {
        let mut m = json!({"path": path});
        if let Value::Object(extra) = extra {
            m.as_object_mut().unwrap().extend(extra);
        }
        json!({"name": name, "match": m, "action": action})
    };
    let forward = |cluster: &str| json!({"type": "forward", "cluster": cluster});
    let routes = json!({"team": tenant.team, "name": "traced", "virtualHosts": [
        {"name": "api", "domains": ["api.example.com", "api.example.com:80"], "routes": [
            route("exact", json!({"type": "exact", "value": "/exact"}), json!({}), forward("a")),
            route("regex", json!({"type": "regex", "value": "/items/[0-9]+"}), json!({}), forward("b")),
            route("template", json!({"type": "template", "value": "/users/{id}/posts"}), json!({}), forward("c")),
            route("canary", json!({"type": "prefix", "value": "/"}),
                json!({"headers": [{"name": "x-canary", "exact": "yes"}]}), forward("b")),
            route("posts-only", json!({"type": "prefix", "value": "/write"}),
                json!({"methods": ["POST"]}), forward("a")),
            route("split", json!({"type": "prefix", "value": "/split"}), json!({}),
                json!({"type": "weighted", "clusters": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}]})),
            route("fallback", json!({"type": "prefix", "value": "/e"}), json!({}), forward("c")),
            route("fallback-items", json!({"type": "prefix", "value": "/items"}), json!({}), forward("c")),
        ]},
        {"name": "teapot", "domains": ["*.example.com"], "routes": [
            route("teapot", json!({"type": "prefix", "value": "/"}), json!({}),
                json!({"type": "directResponse", "status": 418})),
        ]},
    ]});
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;
    let port = free_port();
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&tenant.listener("traced-listener", port, &dataplane, "traced")),
        201,
    )
    .await?;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually("the listener serving", Duration::from_secs(20), || async {
        let r = client
            .get(format!("{base}/exact"))
            .header("host", "api.example.com")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        (r.status() == 200)
            .then_some(())
            .ok_or(format!("status {}", r.status()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", envoy.log_tail()))?;

    let trace_url = format!("/api/v1/reports/trace?team={}", tenant.team);
    for case in CASES {
        let label = format!("{} {}{}", case.method, case.host, case.path);
        // Where Envoy sends it.
        let mut request = client
            .request(case.method.parse()?, format!("{base}{}", case.path))
            .header("host", case.host);
        for (name, value) in case.headers {
            request = request.header(*name, *value);
        }
        let answer = request.send().await?;
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        let served_by = body["upstream"].as_str().map(str::to_string);
        match (&served_by, case.status) {
            (Some(upstream), None) => anyhow::ensure!(
                case.upstreams.contains(&upstream.as_str()),
                "{label}: Envoy sent it to {upstream}, expected one of {:?}",
                case.upstreams
            ),
            (None, Some(expected)) => {
                anyhow::ensure!(status == expected, "{label}: Envoy answered {status}")
            }
            other => anyhow::bail!("{label}: Envoy answered {status} {other:?}"),
        }

        // What the trace says.
        let headers: serde_json::Map<String, Value> = case
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let trace = tenant
            .admin
            .expect(
                Method::POST,
                &trace_url,
                Some(
                    &json!({"dataplane": "edge", "port": port, "method": case.method,
                    "host": case.host, "path": case.path, "headers": headers}),
                ),
                200,
            )
            .await?;
        anyhow::ensure!(
            trace["listener"] == "traced-listener" && trace["routeConfig"] == "traced",
            "{label}: {trace}"
        );
        anyhow::ensure!(
            trace["route"].as_str() == case.route,
            "{label}: the trace names route {} where Envoy's is {:?}: {trace}",
            trace["route"],
            case.route
        );
        let traced: Vec<&str> = trace["outcome"]["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        anyhow::ensure!(
            traced == case.upstreams,
            "{label}: the trace sends it to {traced:?}, Envoy to {served_by:?}: {trace}"
        );
        if let Some(expected) = case.status {
            anyhow::ensure!(
                trace["outcome"]["status"] == expected,
                "{label}: Envoy answers {expected}: {trace}"
            );
        }
        // Every route before the matching one says why it did not match.
        let steps = trace["steps"].as_array().cloned().unwrap_or_default();
        let skipped = steps
            .iter()
            .filter(|s| s["stage"] == "route" && s["matched"] == false)
            .all(|s| !s["reason"].as_str().unwrap_or_default().is_empty());
        anyhow::ensure!(skipped, "{label}: a route without a reason: {trace}");
    }

    // Endpoints come with the clusters.
    let trace = tenant
        .admin
        .expect(
            Method::POST,
            &trace_url,
            Some(&json!({"dataplane": "edge", "listener": "traced-listener",
                "host": "api.example.com", "path": "/exact"})),
            200,
        )
        .await?;
    anyhow::ensure!(
        trace["outcome"]["clusters"][0]["endpoints"][0]["port"] == upstreams[0].port,
        "endpoints: {trace}"
    );
    sni_chains(&tenant, &dataplane).await?;

    // The CLI prints the same trace.
    let port_arg = port.to_string();
    let printed = tenant
        .admin
        .cli(&[
            "report",
            "trace",
            "--team",
            &tenant.team,
            "--dataplane",
            "edge",
            "--port",
            &port_arg,
            "--host",
            "api.example.com",
            "-H",
            "x-canary: yes",
            "/anything",
        ])
        .await?;
    anyhow::ensure!(
        printed.contains("→ route") && printed.contains("canary") && printed.contains("cluster b"),
        "CLI trace: {printed}"
    );
    // Validate: a planted shadowed route and an orphan cluster are found; the route config
    // in use, its clusters and the listener are not flagged.
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&tenant.cluster("orphan", 9)),
        201,
    )
    .await?;
    let planted = json!({"team": tenant.team, "name": "planted", "virtualHosts": [
    {"name": "vh", "domains": ["planted.test"], "routes": [
        route("everything", json!({"type": "prefix", "value": "/"}), json!({}), forward("a")),
        route("never", json!({"type": "exact", "value": "/never"}), json!({}), forward("b")),
    ]}]});
    api.expect(Method::POST, "/api/v1/route-configs", Some(&planted), 201)
        .await?;
    let report = tenant
        .admin
        .expect(
            Method::GET,
            &format!("/api/v1/reports/validate?team={}", tenant.team),
            None,
            200,
        )
        .await?;
    let found: Vec<(String, String, String)> = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("code"), s("name"), s("field"))
        })
        .collect();
    let expected = [
        ("shadowedRoute", "planted", "/virtualHosts/0/routes/1"),
        ("unreferencedCluster", "orphan", ""),
        ("unreferencedRouteConfig", "planted", ""),
    ];
    let mut found_sorted = found.clone();
    found_sorted.sort();
    let mut expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    expected.sort();
    anyhow::ensure!(found_sorted == expected, "findings: {report}");
    let printed = tenant
        .admin
        .cli(&["report", "validate", "--team", &tenant.team])
        .await?;
    anyhow::ensure!(
        printed.contains("shadowedRoute") && printed.contains("clusters/orphan"),
        "CLI validate: {printed}"
    );
    // Preflight: a change tried without writing it.
    let preflight_url = format!("/api/v1/reports/preflight?team={}", tenant.team);
    let preflight = |body: Value| {
        let admin = tenant.admin.clone();
        let url = preflight_url.clone();
        async move { admin.expect(Method::POST, &url, Some(&body), 200).await }
    };
    let codes = |answer: &Value, key: &str| -> Vec<(String, String)> {
        answer[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                (s("code"), s("name"))
            })
            .collect()
    };
    // Deleting a cluster routes use: refused, naming each referrer; nothing deleted.
    let used = preflight(json!({"kind": "clusters", "name": "a"})).await?;
    let affected: Vec<&str> = used["affected"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str())
        .collect();
    anyhow::ensure!(
        used["accepted"] == false
            && used["operation"] == "delete"
            && used["problems"]
                .to_string()
                .contains("/route-configs/traced/virtualHosts/0/routes/0")
            && affected.contains(&"traced")
            && affected.contains(&"planted"),
        "preflight delete a: {used}"
    );
    api.expect(Method::GET, "/api/v1/clusters/a", None, 200)
        .await?;
    // Deleting the orphan: accepted, and it clears the orphan's finding.
    let orphan = preflight(json!({"kind": "clusters", "name": "orphan"})).await?;
    anyhow::ensure!(
        orphan["accepted"] == true
            && codes(&orphan, "resolved") == [("unreferencedCluster".into(), "orphan".into())]
            && codes(&orphan, "introduced").is_empty(),
        "preflight delete orphan: {orphan}"
    );
    // Dropping the shadowed route clears its finding; dropping traced's only route to c
    // would leave c unused.
    let fixed = preflight(json!({"kind": "route-configs", "name": "planted", "resource":
        {"virtualHosts": [{"name": "vh", "domains": ["planted.test"], "routes": [
            route("everything", json!({"type": "prefix", "value": "/"}), json!({}), forward("a"))]}]}}))
    .await?;
    anyhow::ensure!(
        fixed["accepted"] == true
            && fixed["operation"] == "update"
            && codes(&fixed, "resolved") == [("shadowedRoute".into(), "planted".into())],
        "preflight fix planted: {fixed}"
    );
    let mut narrowed = routes.clone();
    narrowed["virtualHosts"][0]["routes"] = json!([
        route(
            "exact",
            json!({"type": "exact", "value": "/exact"}),
            json!({}),
            forward("a")
        ),
        route(
            "regex",
            json!({"type": "regex", "value": "/items/[0-9]+"}),
            json!({}),
            forward("b")
        ),
    ]);
    let narrowed =
        preflight(json!({"kind": "route-configs", "name": "traced", "resource": narrowed})).await?;
    anyhow::ensure!(
        narrowed["accepted"] == true
            && codes(&narrowed, "introduced") == [("unreferencedCluster".into(), "c".into())]
            && narrowed["affected"].to_string().contains("traced-listener"),
        "preflight narrowing traced: {narrowed}"
    );
    // Refusals a write would answer, as problems with their field paths.
    let bad = preflight(json!({"kind": "clusters", "name": "bad", "resource":
        {"endpoints": [{"host": "127.0.0.1", "port": 70000}]}}))
    .await?;
    anyhow::ensure!(
        bad["accepted"] == false
            && bad["operation"] == "create"
            && bad["problems"][0]["field"] == "/endpoints/0/port",
        "preflight bad port: {bad}"
    );
    let ghost = preflight(
        json!({"kind": "route-configs", "name": "ghostly", "resource":
        {"virtualHosts": [{"name": "vh", "domains": ["*"], "routes": [
            route("r", json!({"type": "prefix", "value": "/"}), json!({}), forward("ghost"))]}]}}),
    )
    .await?;
    anyhow::ensure!(
        ghost["accepted"] == false
            && ghost["problems"]
                .to_string()
                .contains("'ghost' does not exist"),
        "preflight missing cluster: {ghost}"
    );
    let unchanged = preflight(json!({"kind": "clusters", "name": "orphan", "resource":
        tenant.cluster("orphan", 9)}))
    .await?;
    let moved = preflight(json!({"kind": "clusters", "name": "orphan", "resource":
        tenant.cluster("orphan", 10)}))
    .await?;
    anyhow::ensure!(
        unchanged["operation"] == "unchanged" && moved["operation"] == "update",
        "preflight unchanged: {unchanged} / {moved}"
    );
    for (body, status) in [
        (json!({"kind": "clusters", "name": "nope"}), 404),
        (json!({"kind": "learning-sessions", "name": "x"}), 400),
        (json!({"kind": "clusters", "name": "../x"}), 400),
    ] {
        let answer = tenant
            .admin
            .call(Method::POST, &preflight_url, Some(&body), &[])
            .await?;
        anyhow::ensure!(answer.status == status, "preflight {body}: {answer:?}");
    }
    let still = api.get("/api/v1/clusters/bad").await?;
    anyhow::ensure!(still.status == 404, "a preflight wrote: {still:?}");
    let printed = tenant
        .admin
        .cli(&[
            "report",
            "preflight",
            "--team",
            &tenant.team,
            "--delete",
            "cluster/a",
        ])
        .await?;
    anyhow::ensure!(
        printed.contains("delete: would be refused")
            && printed.contains("used by route-configs/traced"),
        "CLI preflight: {printed}"
    );
    // Topology: the references as edges, the listener programmed on the dataplane.
    let graph = tenant
        .admin
        .expect(
            Method::GET,
            &format!("/api/v1/reports/topology?team={}", tenant.team),
            None,
            200,
        )
        .await?;
    let edges: Vec<(String, String)> = graph["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("from"), s("to"))
        })
        .collect();
    for (from, to) in [
        ("listeners/traced-listener", "route-configs/traced"),
        ("listeners/traced-listener", "dataplanes/edge"),
        ("route-configs/traced", "clusters/a"),
        ("route-configs/traced", "clusters/c"),
        ("route-configs/planted", "clusters/b"),
    ] {
        anyhow::ensure!(
            edges.contains(&(from.to_string(), to.to_string())),
            "edge {from} → {to} missing: {graph}"
        );
    }
    anyhow::ensure!(
        !edges.iter().any(|(_, to)| to == "clusters/orphan"),
        "nothing points at the orphan: {graph}"
    );
    let node = |id: &str| {
        graph["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let listener = node("listeners/traced-listener");
    anyhow::ensure!(
        listener["detail"]
            .as_str()
            .is_some_and(|d| d.ends_with(&format!(":{port}")))
            && listener["status"][0]["dataplane"] == "edge"
            && listener["status"][0]["state"] == "programmed",
        "the listener node: {listener}"
    );
    anyhow::ensure!(
        node("clusters/orphan")["detail"] == "127.0.0.1:9",
        "the orphan's endpoints: {graph}"
    );
    let printed = tenant
        .admin
        .cli(&["report", "topology", "--team", &tenant.team])
        .await?;
    anyhow::ensure!(
        printed.contains("listeners/traced-listener") && printed.contains("→ route-configs/traced"),
        "CLI topology: {printed}"
    );
    // Nothing listens on another port.
    let nothing = tenant
        .admin
        .expect(
            Method::POST,
            &trace_url,
            Some(&json!({"dataplane": "edge", "port": free_port(), "host": "x", "path": "/"})),
            200,
        )
        .await?;
    anyhow::ensure!(nothing["outcome"]["kind"] == "noListener", "{nothing}");
    // Bad input: a field error; an unknown dataplane: 404; without reports:read: 404.
    let bad = tenant
        .admin
        .call(
            Method::POST,
            &trace_url,
            Some(&json!({"dataplane": "edge", "port": port, "host": "x", "path": "no-slash"})),
            &[],
        )
        .await?;
    anyhow::ensure!(
        bad.status == 400 && bad.text.contains("/path"),
        "bad path: {bad:?}"
    );
    let unknown = tenant
        .admin
        .call(
            Method::POST,
            &trace_url,
            Some(&json!({"dataplane": "ghost", "port": port, "host": "x", "path": "/"})),
            &[],
        )
        .await?;
    anyhow::ensure!(unknown.status == 404, "unknown dataplane: {unknown:?}");
    let unscoped = api
        .call(
            Method::POST,
            &trace_url,
            Some(&json!({"dataplane": "edge", "port": port, "host": "x", "path": "/"})),
            &[],
        )
        .await?;
    anyhow::ensure!(unscoped.status == 404, "without reports:read: {unscoped:?}");
    envoy.stop().await;
    Ok(())
}

/// A TLS listener whose filter chains are picked by SNI: `alpha.example.com` to cluster a,
/// `*.beta.example.com` to b, and no chain for anything else. For each SNI, the chain the
/// trace names is the one whose cluster answers through Envoy, and where the trace says no
/// chain matches, Envoy closes the connection.
async fn sni_chains(tenant: &Tenant, dataplane: &str) -> anyhow::Result<()> {
    let api = &tenant.api;
    let pki = Pki::new("Flowplane trace CA")?;
    let cert = pki.issue_for(
        7,
        "sni",
        &["alpha.example.com", "*.beta.example.com"],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    api.expect(
        Method::POST,
        "/api/v1/secrets",
        Some(
            &json!({"team": tenant.team, "name": "sni-cert", "type": "tlsCertificate",
            "certificateChain": cert.pem, "privateKey": cert.key_pem}),
        ),
        201,
    )
    .await?;
    for (routes, cluster) in [("to-a", "a"), ("to-b", "b")] {
        api.expect(
            Method::POST,
            "/api/v1/route-configs",
            Some(&tenant.route_config(routes, cluster)),
            201,
        )
        .await?;
    }
    let chain = |name: &str, server_name: &str, routes: &str| {
        json!({"name": name, "serverNames": [server_name],
            "tls": {"certificateSecret": "sni-cert"},
            "filters": [{"name": "envoy.filters.network.http_connection_manager",
                "type": "httpConnectionManager", "routeConfigName": routes,
                "httpFilters": [{"filter": {"type": "router"}}]}]})
    };
    let port = free_port();
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(
            &json!({"team": tenant.team, "name": "sni-listener", "address": "127.0.0.1",
            "port": port, "dataplaneId": dataplane, "protocol": "HTTP",
            "filterChains": [chain("alpha", "alpha.example.com", "to-a"),
                             chain("beta", "*.beta.example.com", "to-b")]}),
        ),
        201,
    )
    .await?;
    let roots = pki.roots()?;
    eventually("the TLS listener serving", Duration::from_secs(20), || {
        let roots = roots.clone();
        async move { fetch(port, "alpha.example.com", roots).await }
    })
    .await?;

    let trace_url = format!("/api/v1/reports/trace?team={}", tenant.team);
    // (SNI, the chain, the cluster that answers); no chain: the connection is closed.
    let cases: [(&str, Option<&str>, Option<&str>); 4] = [
        ("alpha.example.com", Some("alpha"), Some("a")),
        ("one.beta.example.com", Some("beta"), Some("b")),
        ("gamma.example.com", None, None),
        ("beta.example.com", None, None),
    ];
    for (sni, chain, cluster) in cases {
        let answered = fetch(port, sni, roots.clone()).await;
        match (cluster, &answered) {
            (Some(cluster), Ok(upstream)) => anyhow::ensure!(
                upstream == cluster,
                "SNI {sni}: Envoy sent it to {upstream}, expected {cluster}"
            ),
            (None, Err(_)) => {}
            _ => anyhow::bail!("SNI {sni}: Envoy answered {answered:?}, expected {cluster:?}"),
        }
        let trace = tenant
            .admin
            .expect(
                Method::POST,
                &trace_url,
                Some(&json!({"dataplane": "edge", "port": port, "sni": sni,
                    "host": sni, "path": "/"})),
                200,
            )
            .await?;
        anyhow::ensure!(
            trace["filterChain"].as_str() == chain,
            "SNI {sni}: the trace names chain {}, expected {chain:?}: {trace}",
            trace["filterChain"]
        );
        let traced = trace["outcome"]["clusters"][0]["name"].as_str();
        anyhow::ensure!(
            traced == cluster,
            "SNI {sni}: the trace sends it to {traced:?}, Envoy to {answered:?}: {trace}"
        );
        if chain.is_none() {
            anyhow::ensure!(
                trace["outcome"]["kind"] == "noFilterChain",
                "SNI {sni}: no chain takes it: {trace}"
            );
        }
    }
    Ok(())
}

/// `GET /` over TLS with SNI `sni`, trusting `roots`: the upstream that answered.
async fn fetch(port: u16, sni: &str, roots: RootCertStore) -> Result<String, String> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let request = format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        // Envoy may close without close_notify; what arrived before that is the answer.
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).to_string();
        // The body is the upstream's JSON, whole or chunked: its `upstream` field names it.
        text.split("\"upstream\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_string)
            .ok_or_else(|| format!("no upstream answered: {text:?}"))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}
