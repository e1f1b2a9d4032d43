//! NACK quarantine with real Envoys, over both ADS variants. A listener Envoy accepted is
//! changed to a port Envoy cannot bind, and a new listener is created on it: the first Envoy
//! rejects both. Both versions are then held back: a second replica started afterwards, and a
//! second Envoy of the same dataplane connected to it, serve the listener's last accepted
//! version and nothing of the new one (that Envoy rejects nothing). The API shows the
//! quarantine, the audit log records it, and a corrected write clears it: both Envoys follow.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use flowplane_e2e::{Api, Envoy, Stack, Tenant, Upstream, eventually, free_port};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_version_is_held_back_from_later_envoys_state_of_the_world() {
    run("quarantine-sotw", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_version_is_held_back_from_later_envoys_delta() {
    run("quarantine-delta", true).await;
}

async fn run(name: &str, delta: bool) {
    flowplane_e2e::run_scenario(name, move |stack| Box::pin(scenario(stack, delta))).await;
}

async fn scenario(stack: &mut Stack, delta: bool) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "quarantine").await?;
    let api = &tenant.api;
    let (dataplane, mut bootstrap) = tenant.dataplane("gw").await?;
    if delta {
        bootstrap["dynamic_resources"]["ads_config"]["api_type"] = "DELTA_GRPC".into();
    }
    let dir_a = stack.dir.join("envoy-a");
    std::fs::create_dir_all(&dir_a)?;
    let envoy_a = Envoy::start(&dir_a, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstream = Upstream::start("app").await?;
    let good_port = tenant.route_all("app", upstream.port, &dataplane).await?;
    let good_url = format!("http://127.0.0.1:{good_port}/");
    eventually("traffic through Envoy A", Duration::from_secs(20), || {
        ok(&good_url)
    })
    .await?;
    let accepted = eventually(
        "Envoy A's ACK of the listener",
        Duration::from_secs(10),
        || state_of(api, "app-listener", "programmed"),
    )
    .await?
    .0;
    let accepted_revision = accepted["revision"].as_i64().unwrap_or_default();

    // A port Envoy cannot bind: something else holds it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let taken_port = taken.local_addr()?.port();
    let moved = tenant.listener("app-listener", taken_port, &dataplane, "app-routes");
    let moved_reply = api
        .expect(
            Method::PUT,
            "/api/v1/listeners/app-listener",
            Some(&moved),
            200,
        )
        .await?;
    let rejected_revision = moved_reply["revision"].as_i64().unwrap_or_default();
    let clash = tenant.listener("new-listener", taken_port, &dataplane, "app-routes");
    api.expect(Method::POST, "/api/v1/listeners", Some(&clash), 201)
        .await?;

    // Both rejected by Envoy A, both quarantined; the changed one is served at its last
    // accepted version, the new one (never accepted) withheld.
    let (quarantined, _) = eventually(
        "the changed listener quarantined",
        Duration::from_secs(15),
        || quarantine_of(api, "app-listener"),
    )
    .await?;
    anyhow::ensure!(
        quarantined["rejectedRevision"] == rejected_revision
            && quarantined["servingRevision"] == accepted_revision
            && quarantined["dataplane"] == "gw"
            && !quarantined["error"].as_str().unwrap_or_default().is_empty(),
        "quarantine of the changed listener: {quarantined}"
    );
    let (withheld, _) = eventually(
        "the new listener quarantined",
        Duration::from_secs(15),
        || quarantine_of(api, "new-listener"),
    )
    .await?;
    anyhow::ensure!(
        withheld["servingRevision"].is_null(),
        "a listener no Envoy accepted has nothing to serve: {withheld}"
    );
    // Envoy A kept the working version and takes the fallback without complaint.
    ok(&good_url)
        .await
        .map_err(|e| anyhow::anyhow!("Envoy A stopped serving: {e}"))?;
    eventually(
        "Envoy A running the last accepted version, reported as quarantined",
        Duration::from_secs(10),
        || state_of(api, "app-listener", "quarantined"),
    )
    .await?;
    let audit = api
        .expect(
            Method::GET,
            &format!("/api/v1/audit-logs?team={}&limit=200", tenant.team),
            None,
            200,
        )
        .await?;
    let quarantine_rows = audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["action"] == "listener.quarantined")
        .count();
    anyhow::ensure!(
        quarantine_rows == 2,
        "two quarantines in the audit log: {audit}"
    );

    // A replica started now loads the quarantine with the state; Envoy B of the same
    // dataplane, connected to it, gets the last accepted version and nothing it would reject.
    let (replica_port, _) = stack.add_xds_server("xds-replica-2").await?;
    let admin_b = free_port();
    let mut bootstrap_b = bootstrap.clone();
    bootstrap_b["admin"]["address"]["socket_address"]["port_value"] = json!(admin_b);
    bootstrap_b["node"]["id"] = json!("gw-envoy-b");
    bootstrap_b["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        [0]["endpoint"]["address"]["socket_address"]["port_value"] = json!(replica_port);
    let dir_b = stack.dir.join("envoy-b");
    std::fs::create_dir_all(&dir_b)?;
    let envoy_b = Envoy::start(&dir_b, &bootstrap_b.to_string(), admin_b).await?;
    eventually(
        "Envoy B serving the last accepted listener",
        Duration::from_secs(20),
        || async {
            match listener_ports(&envoy_b).await.map_err(|e| e.to_string())? {
                ports if ports == [("app-listener".to_string(), good_port)] => Ok(()),
                ports => Err(format!("Envoy B's listeners: {ports:?}")),
            }
        },
    )
    .await?;
    let rejected_by_b = envoy_b.stat("listener_manager.lds.update_rejected").await?;
    anyhow::ensure!(
        rejected_by_b == 0,
        "Envoy B was sent a version it rejected ({rejected_by_b} LDS rejections)\n{}",
        envoy_b.log_tail()
    );

    // A corrected write clears the quarantine, and both Envoys follow.
    let fixed_port = free_port();
    let fixed = tenant.listener("app-listener", fixed_port, &dataplane, "app-routes");
    api.expect(
        Method::PUT,
        "/api/v1/listeners/app-listener",
        Some(&fixed),
        200,
    )
    .await?;
    for envoy in [&envoy_a, &envoy_b] {
        eventually(
            "the corrected listener on both Envoys",
            Duration::from_secs(20),
            || async {
                let ports = listener_ports(envoy).await.map_err(|e| e.to_string())?;
                ports
                    .contains(&("app-listener".to_string(), fixed_port))
                    .then_some(())
                    .ok_or(format!(
                        "listeners of Envoy at {}: {ports:?}",
                        envoy.admin_port
                    ))
            },
        )
        .await?;
    }
    let fixed_url = format!("http://127.0.0.1:{fixed_port}/");
    eventually(
        "traffic on the corrected port",
        Duration::from_secs(10),
        || ok(&fixed_url),
    )
    .await?;
    let (cleared, _) = eventually(
        "the quarantine cleared and the fix programmed",
        Duration::from_secs(10),
        || state_of(api, "app-listener", "programmed"),
    )
    .await?;
    anyhow::ensure!(
        cleared.get("quarantine").is_none(),
        "still quarantined: {cleared}"
    );

    // Delivery: both Envoys, each on its replica, at the same LDS version and answered; the
    // NACKs Envoy A sent, with Envoy's message, and none from Envoy B.
    let node_a = bootstrap["node"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let delivery_url = format!("/api/v1/reports/delivery?team={}&dataplane=gw", tenant.team);
    let (delivery, _) = eventually(
        "both Envoys' delivery, answered",
        Duration::from_secs(10),
        || async {
            let delivery = tenant
                .admin
                .expect(Method::GET, &delivery_url, None, 200)
                .await
                .map_err(|e| e.to_string())?;
            let lds: Vec<&Value> = delivery["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|n| n["types"].as_array().into_iter().flatten())
                .filter(|t| t["type"] == "lds")
                .collect();
            let settled = lds.len() == 2
                && lds
                    .iter()
                    .all(|t| t["pending"] == false && t["sentVersion"] == t["ackedVersion"])
                && lds[0]["ackedVersion"] == lds[1]["ackedVersion"];
            settled
                .then_some(delivery.clone())
                .ok_or(format!("delivery: {delivery}"))
        },
    )
    .await?;
    let nodes: Vec<(&str, &str)> = delivery["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["nodeId"].as_str().unwrap_or_default(),
                n["replica"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    anyhow::ensure!(
        nodes.len() == 2
            && nodes.iter().any(|(n, _)| *n == node_a)
            && nodes.iter().any(|(n, _)| *n == "gw-envoy-b")
            && nodes[0].1 != nodes[1].1
            && delivery["replicas"].as_array().map(Vec::len) == Some(2),
        "two Envoys on two replicas: {delivery}"
    );
    let nacks: Vec<&Value> = delivery["nacks"].as_array().into_iter().flatten().collect();
    anyhow::ensure!(
        !nacks.is_empty()
            && nacks
                .iter()
                .all(|n| n["nodeId"] == node_a.as_str() && n["type"] == "lds")
            && nacks.iter().any(|n| {
                !n["error"].as_str().unwrap_or_default().is_empty()
                    && n["resources"].to_string().contains("app-listener")
            }),
        "Envoy A's NACKs: {delivery}"
    );
    let printed = tenant
        .admin
        .cli(&[
            "report",
            "delivery",
            "--team",
            &tenant.team,
            "--dataplane",
            "gw",
        ])
        .await?;
    anyhow::ensure!(
        printed.contains("gw-envoy-b") && printed.contains("NACK"),
        "CLI delivery: {printed}"
    );
    let none = tenant
        .admin
        .get(&format!(
            "/api/v1/reports/delivery?team={}&dataplane=nope",
            tenant.team
        ))
        .await?;
    anyhow::ensure!(none.status == 404, "unknown dataplane: {none:?}");
    drop(taken);
    envoy_b.stop().await;
    envoy_a.stop().await;
    Ok(())
}

async fn ok(url: &str) -> Result<(), String> {
    let status = reqwest::get(url).await.map_err(|e| e.to_string())?.status();
    (status == 200)
        .then_some(())
        .ok_or(format!("status {status}"))
}

/// The listener once dataplane `gw`'s status for it is `state`.
async fn state_of(api: &Api, name: &str, state: &str) -> Result<Value, String> {
    let reply = api
        .get(&format!("/api/v1/listeners/{name}"))
        .await
        .map_err(|e| e.to_string())?;
    let reached = reply.body["status"].as_array().is_some_and(|s| {
        s.iter()
            .any(|d| d["dataplane"] == "gw" && d["state"] == state)
    });
    if reached {
        Ok(reply.body)
    } else {
        Err(reply.text)
    }
}

async fn quarantine_of(api: &Api, name: &str) -> Result<Value, String> {
    let reply = api
        .get(&format!("/api/v1/listeners/{name}"))
        .await
        .map_err(|e| e.to_string())?;
    match reply.body.get("quarantine") {
        Some(q) => Ok(q.clone()),
        None => Err(reply.text),
    }
}

/// The (name, port) of each listener Envoy is actively serving.
async fn listener_ports(envoy: &Envoy) -> anyhow::Result<Vec<(String, u16)>> {
    let mut ports: Vec<(String, u16)> = envoy
        .active_dynamic_listeners()
        .await?
        .iter()
        .filter_map(|l| {
            let active = &l["active_state"]["listener"];
            let port = active["address"]["socket_address"]["port_value"].as_u64()?;
            Some((l["name"].as_str()?.to_string(), u16::try_from(port).ok()?))
        })
        .collect();
    ports.sort();
    Ok(ports)
}
