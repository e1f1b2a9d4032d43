//! ADS over TLS: with a certificate for the xds-server and its CA in the bootstraps, a real
//! Envoy gets its configuration over TLS (traffic flows as configured), and a plaintext client
//! on the same port gets nothing.

use flowplane_e2e::pki::Pki;
use flowplane_e2e::{Dependencies, Envoy, Stack, Tenant, Upstream, XdsTls, eventually};
use rcgen::ExtendedKeyUsagePurpose;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_gets_its_configuration_over_tls() {
    let pki = Pki::new("Flowplane xDS CA").expect("a CA");
    let server = pki
        .issue(1, "flowplane-xds", ExtendedKeyUsagePurpose::ServerAuth)
        .expect("a server certificate");
    let dir = flowplane_e2e::scratch_dir("xds-tls-pki");
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("scratch files are writable");
        path
    };
    let tls = XdsTls {
        cert_file: write("xds.pem", &server.pem),
        key_file: write("xds-key.pem", &server.key_pem),
        ca_file: write("ca.pem", &pki.ca_pem()),
    };
    let dependencies = Dependencies {
        xds_tls: Some(tls),
        ..Dependencies::default()
    };
    let stack = Stack::start_with("xds-tls", dependencies)
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
    let tenant = Tenant::create(stack, "tlsxds").await?;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let xds = &bootstrap["static_resources"]["clusters"][0];
    anyhow::ensure!(
        xds["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]["trusted_ca"]
            ["inline_string"]
            == pki.ca_pem().as_str()
            && xds["transport_socket"]["typed_config"]["sni"] == "localhost",
        "the bootstrap reaches ADS over TLS, trusting the CA: {xds}"
    );
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstream = Upstream::start("over-tls").await?;
    let port = tenant.route_all("web", upstream.port, &dataplane).await?;
    let http = reqwest::Client::new();
    eventually(
        "traffic configured over TLS to flow",
        Duration::from_secs(20),
        || {
            let http = http.clone();
            async move {
                let response = http
                    .get(format!("http://127.0.0.1:{port}/hello"))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let body = response.text().await.map_err(|e| e.to_string())?;
                if body.contains("over-tls") {
                    Ok(())
                } else {
                    Err(body)
                }
            }
        },
    )
    .await?;

    // A plaintext gRPC client on the ADS port gets no answer.
    let plain =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", stack.xds_port))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2));
    let mut client =
        envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient::new(
            plain.connect_lazy(),
        );
    let request = envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest::default();
    let answer = client
        .stream_aggregated_resources(tokio_stream_once(request))
        .await;
    anyhow::ensure!(answer.is_err(), "plaintext ADS was served: {answer:?}");
    envoy.stop().await;
    Ok(())
}

/// A request stream of one message.
fn tokio_stream_once<T: Send + 'static>(item: T) -> impl futures::Stream<Item = T> + Send {
    futures::stream::once(async move { item })
}
