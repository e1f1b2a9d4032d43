//! TLS from secrets, end to end with a real Envoy: a team uploads a certificate signed by its
//! own CA, a listener terminates TLS with it (served over SDS), a client that trusts the CA
//! gets through and one that does not is refused; rotating the secret changes the certificate
//! Envoy presents, live, without touching the listener; a second listener demands client
//! certificates (mTLS). Upstream TLS: Envoy verifies an upstream against a team CA and presents
//! a client certificate from a secret.

use std::sync::Arc;
use std::time::Duration;

use flowplane_e2e::pki::{Issued, Pki};
use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port};
use rcgen::ExtendedKeyUsagePurpose;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_termination_from_a_secret_rotates_live_and_enforces_mtls() {
    flowplane_e2e::run_scenario("tls", |stack| Box::pin(scenario(stack))).await;
}

/// One HTTPS request over a fresh connection: the status line and the leaf certificate Envoy
/// presented. Any TLS failure (untrusted server, refused client) is an error.
async fn fetch(
    port: u16,
    roots: RootCertStore,
    client_cert: Option<&Issued>,
) -> Result<(String, CertificateDer<'static>), String> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some(cert) => builder
            .with_client_auth_cert(
                vec![cert.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
            )
            .map_err(|e| e.to_string())?,
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let exchange = async {
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first().cloned())
            .ok_or("no server certificate")?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        // Envoy may close without close_notify; what arrived before that is the answer.
        let read = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).to_string();
        let status = text.lines().next().unwrap_or_default().to_string();
        if status.is_empty() {
            return Err(format!("no response: {read:?}"));
        }
        Ok((status, peer))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

fn secret(team: &str, name: &str, issued: &Issued) -> Value {
    json!({"team": team, "name": name, "type": "tlsCertificate",
           "certificateChain": issued.pem, "privateKey": issued.key_pem})
}

fn tls_listener(tenant: &Tenant, name: &str, port: u16, dataplane: &str, tls: Value) -> Value {
    let mut listener = tenant.listener(name, port, dataplane, "routes");
    listener["filterChains"][0]["tls"] = tls;
    listener
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "tls").await?;
    let (dataplane, bootstrap) = tenant.dataplane("edge").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstream = Upstream::start("backend").await?;
    let pki = Pki::new("Flowplane e2e CA")?;
    let first = pki.issue(1001, "localhost v1", ExtendedKeyUsagePurpose::ServerAuth)?;

    // 1. The secret; its key never comes back.
    let created = tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/secrets",
            Some(&secret(&tenant.team, "edge-cert", &first)),
            201,
        )
        .await?;
    let shown = created.to_string();
    anyhow::ensure!(
        !shown.contains("PRIVATE KEY"),
        "key material in the response: {shown}"
    );
    anyhow::ensure!(
        created["certificates"][0]["serialNumber"] == json!("03E9"),
        "the summary names the certificate: {created}"
    );

    // 2. Cluster, routes and a listener terminating TLS with it.
    let port = free_port();
    for (path, body) in [
        ("clusters", tenant.cluster("backend", upstream.port)),
        ("route-configs", tenant.route_config("routes", "backend")),
        (
            "listeners",
            tls_listener(
                &tenant,
                "https",
                port,
                &dataplane,
                json!({"certificateSecret": "edge-cert"}),
            ),
        ),
    ] {
        tenant
            .api
            .expect(Method::POST, &format!("/api/v1/{path}"), Some(&body), 201)
            .await?;
    }

    // 3. A client trusting the CA gets through and sees the first certificate.
    let (served, _) = eventually("HTTPS through Envoy", Duration::from_secs(15), || async {
        fetch(port, pki.roots().map_err(|e| e.to_string())?, None).await
    })
    .await?;
    anyhow::ensure!(served.0.starts_with("HTTP/1.1 200"), "status: {}", served.0);
    anyhow::ensure!(
        served.1 == first.der,
        "Envoy presents the uploaded certificate"
    );

    // 4. A client that does not trust the CA is refused.
    let stranger = Pki::new("Some other CA")?;
    let refused = fetch(port, stranger.roots()?, None).await;
    anyhow::ensure!(
        refused.is_err(),
        "an untrusting client must fail: {refused:?}"
    );

    // 5. Rotation: a new leaf (new serial and CN) reaches new connections live, and the
    //    listener itself is neither re-sent nor rebuilt.
    let modified_before = envoy.stat("listener_manager.listener_modified").await?;
    let lds_before = envoy.stat("listener_manager.lds.update_success").await?;
    let second = pki.issue(1002, "localhost v2", ExtendedKeyUsagePurpose::ServerAuth)?;
    tenant
        .api
        .expect(
            Method::PUT,
            &format!("/api/v1/teams/{}/secrets/edge-cert", tenant.team),
            Some(&secret(&tenant.team, "edge-cert", &second)),
            200,
        )
        .await?;
    eventually(
        "the rotated certificate",
        Duration::from_secs(15),
        || async {
            let (status, peer) = fetch(port, pki.roots().map_err(|e| e.to_string())?, None).await?;
            if status.starts_with("HTTP/1.1 200") && peer == second.der {
                Ok(())
            } else {
                Err(format!(
                    "{status}, still the old certificate: {}",
                    peer == first.der
                ))
            }
        },
    )
    .await?;
    anyhow::ensure!(
        envoy.stat("listener_manager.listener_modified").await? == modified_before,
        "the rotation must not modify the listener"
    );
    anyhow::ensure!(
        envoy.stat("listener_manager.lds.update_success").await? == lds_before,
        "the rotation must not re-send listeners"
    );

    // 6. mTLS: a listener that requires client certificates from the team's client CA.
    let clients = Pki::new("Flowplane e2e client CA")?;
    tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/secrets",
            Some(
                &json!({"team": tenant.team, "name": "client-ca", "type": "validationContext",
                         "trustedCa": clients.ca_pem()}),
            ),
            201,
        )
        .await?;
    let mtls_port = free_port();
    let mtls = tls_listener(
        &tenant,
        "mtls",
        mtls_port,
        &dataplane,
        json!({"certificateSecret": "edge-cert", "validationSecret": "client-ca",
               "requireClientCertificate": true}),
    );
    tenant
        .api
        .expect(Method::POST, "/api/v1/listeners", Some(&mtls), 201)
        .await?;
    let client = clients.issue(7, "client", ExtendedKeyUsagePurpose::ClientAuth)?;
    eventually("mTLS through Envoy", Duration::from_secs(15), || async {
        let (status, _) = fetch(
            mtls_port,
            pki.roots().map_err(|e| e.to_string())?,
            Some(&client),
        )
        .await?;
        status
            .starts_with("HTTP/1.1 200")
            .then_some(())
            .ok_or(status)
    })
    .await?;
    let anonymous = fetch(mtls_port, pki.roots()?, None).await;
    anyhow::ensure!(
        anonymous.is_err(),
        "a client without a certificate must be refused: {anonymous:?}"
    );
    let foreign = stranger.issue(8, "intruder", ExtendedKeyUsagePurpose::ClientAuth)?;
    let intruder = fetch(mtls_port, pki.roots()?, Some(&foreign)).await;
    anyhow::ensure!(
        intruder.is_err(),
        "a certificate from another CA must be refused: {intruder:?}"
    );

    // 7. A referenced secret cannot be deleted.
    let conflict = tenant
        .api
        .delete(&format!("/api/v1/teams/{}/secrets/edge-cert", tenant.team))
        .await?;
    anyhow::ensure!(
        conflict.status.as_u16() == 409,
        "delete of a used secret: {conflict:?}"
    );
    envoy.stop().await;
    Ok(())
}

/// Upstream TLS from secrets: Envoy verifies the upstream against a team CA (with the SNI it
/// sends) and presents a client certificate the upstream demands. A CA that did not sign the
/// upstream's certificate, or a missing client certificate, means no response from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verifies_the_upstream_and_presents_a_client_certificate() {
    flowplane_e2e::run_scenario("upstream-tls", |stack| Box::pin(upstream_scenario(stack))).await;
}

async fn upstream_scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "mtls-up").await?;
    let api = &tenant.api;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let servers = Pki::new("upstream-ca")?;
    let clients = Pki::new("envoy-client-ca")?;
    let stranger = Pki::new("unrelated-ca")?;
    let server_cert = servers.issue(1, "upstream", ExtendedKeyUsagePurpose::ServerAuth)?;
    let client_cert = clients.issue(2, "envoy", ExtendedKeyUsagePurpose::ClientAuth)?;
    let upstream_port = tls_upstream(&server_cert, clients.roots()?).await?;

    for (name, ca) in [("upstream-ca", &servers), ("unrelated-ca", &stranger)] {
        api.expect(
            Method::POST,
            "/api/v1/secrets",
            Some(
                &json!({"team": tenant.team, "name": name, "type": "validationContext",
                "trustedCa": ca.ca_pem(), "matchSubjectAltNames": ["localhost"]}),
            ),
            201,
        )
        .await?;
    }
    api.expect(
        Method::POST,
        "/api/v1/secrets",
        Some(&secret(&tenant.team, "envoy-client", &client_cert)),
        201,
    )
    .await?;
    let cluster = |name: &str, tls: Value| {
        let mut body = tenant.cluster(name, upstream_port);
        body["useTls"] = json!(true);
        body["tlsServerName"] = json!("localhost");
        body["tls"] = tls;
        body
    };
    for (name, tls) in [
        (
            "verified",
            json!({"validationSecret": "upstream-ca", "clientCertificateSecret": "envoy-client"}),
        ),
        (
            "wrong-ca",
            json!({"validationSecret": "unrelated-ca", "clientCertificateSecret": "envoy-client"}),
        ),
        ("no-client-cert", json!({"validationSecret": "upstream-ca"})),
    ] {
        api.expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&cluster(name, tls)),
            201,
        )
        .await?;
    }
    let forward = |prefix: &str, cluster: &str| {
        json!({"match": {"path": {"type": "prefix", "value": prefix}},
               "action": {"type": "forward", "cluster": cluster}})
    };
    let routes = json!({"team": tenant.team, "name": "routes",
        "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
            forward("/wrong-ca", "wrong-ca"),
            forward("/no-client-cert", "no-client-cert"),
            forward("/", "verified")]}]});
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;
    let port = free_port();
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&tenant.listener("plain", port, &dataplane, "routes")),
        201,
    )
    .await?;

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let (body, _) = eventually(
        "Envoy to reach the upstream over verified mTLS",
        Duration::from_secs(20),
        || async {
            let r = client
                .get(format!("{base}/hello"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let text = r.text().await.map_err(|e| e.to_string())?;
            (status == 200)
                .then_some(text.clone())
                .ok_or(format!("status {status}: {text}"))
        },
    )
    .await?;
    anyhow::ensure!(body == "hello over mTLS", "the upstream answered: {body}");
    for path in ["/wrong-ca", "/no-client-cert"] {
        let r = client.get(format!("{base}{path}")).send().await?;
        anyhow::ensure!(
            r.status() == 503,
            "{path} must not reach the upstream: {}",
            r.status()
        );
    }
    envoy.stop().await;
    Ok(())
}

/// An HTTPS upstream that requires a client certificate from `client_roots` and answers
/// every request with a fixed body.
async fn tls_upstream(server: &Issued, client_roots: RootCertStore) -> anyhow::Result<u16> {
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::server::WebPkiClientVerifier;

    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
            .build()?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key_der.clone())),
        )?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buffer = vec![0u8; 4096];
                let mut request = Vec::new();
                // One request per connection is enough for the scenario.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let body = "hello over mTLS";
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(port)
}
