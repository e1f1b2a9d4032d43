//! TLS on every gRPC port: with certificates for the xds-server, the ratelimit service, the
//! learning service and config, and their CA in the bootstraps and the services' settings, a
//! real Envoy gets its configuration over TLS (traffic flows as configured), asks the
//! ratelimit service over TLS (a limit is enforced) and streams its access log to the learning
//! service over TLS (usage is counted), while every service reaches config only over TLS; a
//! plaintext client on any of those ports gets nothing.

use std::time::Duration;

use flowplane_e2e::pki::Pki;
use flowplane_e2e::{
    Dependencies, Envoy, ServiceTls, Stack, Tenant, Upstream, away_from_a_day_boundary, eventually,
    free_port,
};
use rcgen::ExtendedKeyUsagePurpose;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_reaches_every_flowplane_service_over_tls() {
    let pki = Pki::new("Flowplane services CA").expect("a CA");
    let server = pki
        .issue(1, "flowplane", ExtendedKeyUsagePurpose::ServerAuth)
        .expect("a server certificate");
    let dir = flowplane_e2e::scratch_dir("service-tls-pki");
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("scratch files are writable");
        path
    };
    let tls = ServiceTls {
        cert_file: write("server.pem", &server.pem),
        key_file: write("server-key.pem", &server.key_pem),
        ca_file: write("ca.pem", &pki.ca_pem()),
    };
    let dependencies = Dependencies {
        tls: Some(tls),
        ..Dependencies::default()
    };
    let stack = Stack::start_with("service-tls", dependencies)
        .await
        .unwrap_or_else(|e| panic!("stack: {e:#}"));
    let result = scenario(&stack, &pki).await;
    if let Err(e) = &result {
        eprintln!("{}", stack.logs());
        stack.stop().await;
        panic!("{e:#}");
    }
    stack.stop().await;
}

async fn scenario(stack: &Stack, pki: &Pki) -> anyhow::Result<()> {
    // The limit below is per day: stay clear of the window's reset.
    away_from_a_day_boundary().await;
    let tenant = Tenant::create(stack, "tlseverywhere").await?;
    let team = &tenant.team;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    for (i, cluster) in bootstrap["static_resources"]["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let tls = &cluster["transport_socket"]["typed_config"];
        anyhow::ensure!(
            tls["common_tls_context"]["validation_context"]["trusted_ca"]["inline_string"]
                == pki.ca_pem().as_str()
                && tls["sni"] == "localhost",
            "bootstrap cluster {i} speaks TLS trusting the CA: {cluster}"
        );
    }
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstream = Upstream::start("over-tls").await?;
    for (path, body) in [
        ("/api/v1/clusters", tenant.cluster("web", upstream.port)),
        (
            "/api/v1/route-configs",
            tenant.route_config("web-routes", "web"),
        ),
    ] {
        tenant
            .api
            .expect(Method::POST, path, Some(&body), 201)
            .await?;
    }
    let port = free_port();
    let mut listener = tenant.listener("web-listener", port, &dataplane, "web-routes");
    listener["filterChains"][0]["filters"][0]["httpFilters"] = json!([
        {"filter": {"type": "globalRateLimit", "limits": [{"name": "per-client",
            "requestsPerUnit": 2, "unit": "day",
            "per": [{"type": "requestHeader", "header": "x-client"}]}]}},
        {"filter": {"type": "router"}}]);
    tenant
        .api
        .expect(Method::POST, "/api/v1/listeners", Some(&listener), 201)
        .await?;

    // xDS over TLS: the listener arrives and traffic flows.
    let http = reqwest::Client::new();
    let get = |client: &str| {
        http.get(format!("http://127.0.0.1:{port}/hello"))
            .header("x-client", client.to_string())
            .send()
    };
    eventually(
        "traffic configured over TLS to flow",
        Duration::from_secs(20),
        || async {
            let response = get("probe").await.map_err(|e| e.to_string())?;
            let body = response.text().await.map_err(|e| e.to_string())?;
            if body.contains("over-tls") {
                Ok(())
            } else {
                Err(body)
            }
        },
    )
    .await?;

    // The ratelimit service over TLS: the third request of one client is refused. (Were it
    // unreachable, Envoy would let every request through.)
    let client = format!("client-{}", std::process::id());
    let statuses = [
        get(&client).await?.status().as_u16(),
        get(&client).await?.status().as_u16(),
        get(&client).await?.status().as_u16(),
    ];
    anyhow::ensure!(
        statuses == [200, 200, 429],
        "a limit of two per client, counted over TLS: {statuses:?}"
    );

    // The learning service over TLS: Envoy's access log is counted.
    eventually(
        "usage counted from the access log sent over TLS",
        Duration::from_secs(20),
        || async {
            let usage = tenant
                .admin
                .get(&format!("/api/v1/reports/usage?team={team}"))
                .await
                .map_err(|e| e.to_string())?;
            let counted: u64 = usage.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["requests"].as_u64())
                .sum();
            if counted >= 3 {
                Ok(())
            } else {
                Err(usage.text)
            }
        },
    )
    .await?;

    // A plaintext gRPC client gets nothing on any of the TLS ports.
    for (service, port) in [
        ("xds-server", stack.xds_port),
        ("ratelimit", stack.ratelimit_port),
        ("learning", stack.learning_port),
        ("config", stack.config_grpc_port),
    ] {
        let plain = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2));
        let mut client = envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient::new(
            plain.connect_lazy(),
        );
        let request = envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest::default();
        let answer = client
            .stream_aggregated_resources(futures::stream::once(async move { request }))
            .await;
        // A gRPC server answering at all (even "unimplemented" or "unauthenticated") would
        // mean plaintext got through; only a connection that never carried gRPC passes.
        let answered = match &answer {
            Ok(_) => true,
            Err(status) => matches!(
                status.code(),
                tonic::Code::Unimplemented
                    | tonic::Code::Unauthenticated
                    | tonic::Code::InvalidArgument
                    | tonic::Code::PermissionDenied
                    | tonic::Code::NotFound
            ),
        };
        anyhow::ensure!(!answered, "{service} answered plaintext gRPC: {answer:?}");
    }
    envoy.stop().await;
    Ok(())
}
