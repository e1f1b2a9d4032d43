//! NATS with credentials and mutual TLS, as production runs it: every service reaches it over
//! TLS (checking NATS's certificate against `FLOWPLANE_NATS_CA_FILE`, presenting its own
//! client certificate) with the user and password in `FLOWPLANE_NATS_URL`; a change travels
//! through it to a real Envoy; a client without the password, without TLS or without a client
//! certificate is refused; and the password appears in no service's log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flowplane_e2e::pki::Pki;
use flowplane_e2e::{
    Dependencies, Envoy, Stack, Tenant, Upstream, eventually, free_port, metric, scratch_dir,
};
use rcgen::ExtendedKeyUsagePurpose;
use reqwest::Method;
use serde_json::Value;
use tokio::process::Command;

const PASSWORD: &str = "nats-e2e-password-7f3a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_use_nats_with_credentials_and_mutual_tls_and_never_log_its_password() {
    let dir = scratch_dir("nats-auth");
    let files = NatsPki::write(&dir).expect("certificates");
    let port = free_port();
    let mut nats = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.join("jetstream"))
        .args(["--user", "flowplane", "--pass", PASSWORD])
        .arg("--tlsverify")
        .arg("--tlscert")
        .arg(&files.server_cert)
        .arg("--tlskey")
        .arg(&files.server_key)
        .arg("--tlscacert")
        .arg(&files.ca)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server must be installed for this test");
    eventually("nats-server to listen", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .expect("nats-server");
    let url = format!("tls://flowplane:{PASSWORD}@localhost:{port}");
    let path = |p: &Path| p.display().to_string();
    let stack = Stack::start_with(
        "nats-auth",
        Dependencies {
            nats_url: Some(url),
            env: vec![
                ("FLOWPLANE_NATS_CA_FILE".into(), path(&files.ca)),
                (
                    "FLOWPLANE_NATS_TLS_CERT_FILE".into(),
                    path(&files.client_cert),
                ),
                (
                    "FLOWPLANE_NATS_TLS_KEY_FILE".into(),
                    path(&files.client_key),
                ),
            ],
            ..Dependencies::default()
        },
    )
    .await
    .expect("stack");
    let result = scenario(&stack, port, &files).await;
    let leaked: Vec<String> = stack
        .full_logs()
        .into_iter()
        .filter(|(_, log)| log.contains(PASSWORD))
        .map(|(name, _)| name)
        .collect();
    if result.is_err() || !leaked.is_empty() {
        eprintln!("{}", stack.logs());
    }
    stack.stop().await;
    let _ = nats.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e:#}");
    }
    assert!(
        leaked.is_empty(),
        "the NATS password is in the log of {leaked:?}"
    );
}

async fn scenario(stack: &Stack, port: u16, files: &NatsPki) -> anyhow::Result<()> {
    let authenticated =
        || async_nats::ConnectOptions::with_user_and_password("flowplane".into(), PASSWORD.into());
    let url = format!("tls://localhost:{port}");
    // Refused: no password; the password but no TLS; TLS and the password but no client
    // certificate. NATS takes only the services' way in.
    let attempts = [
        (
            "without the password",
            async_nats::ConnectOptions::new()
                .add_root_certificates(files.ca.clone())
                .add_client_certificate(files.client_cert.clone(), files.client_key.clone()),
            url.clone(),
        ),
        (
            "without TLS",
            authenticated(),
            format!("nats://127.0.0.1:{port}"),
        ),
        (
            "without a client certificate",
            authenticated().add_root_certificates(files.ca.clone()),
            url.clone(),
        ),
    ];
    for (what, options, url) in attempts {
        let attempt = tokio::time::timeout(Duration::from_secs(5), options.connect(url)).await;
        anyhow::ensure!(matches!(attempt, Ok(Err(_))), "a client {what} was let in");
    }

    let tenant = Tenant::create(stack, "acme").await?;
    let (dataplane, bootstrap) = tenant.dataplane("edge").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let (first, second) = (
        Upstream::start("first").await?,
        Upstream::start("second").await?,
    );
    let listener = tenant.route_all("app", first.port, &dataplane).await?;
    let target = format!("http://127.0.0.1:{listener}/");
    serves(&target, "first").await?;
    tenant
        .api
        .expect(
            Method::PUT,
            &format!("/api/v1/teams/{}/clusters/app", tenant.team),
            Some(&tenant.cluster("app", second.port)),
            200,
        )
        .await?;
    serves(&target, "second").await?;

    // The changes went through NATS (the stream holds them), not the replica's polling.
    let client = authenticated()
        .add_root_certificates(files.ca.clone())
        .add_client_certificate(files.client_cert.clone(), files.client_key.clone())
        .connect(url)
        .await?;
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(flowplane_runtime::bus::stream_name(stack.nats_prefix()))
        .await?;
    let held = stream.info().await?.state.messages;
    anyhow::ensure!(held >= 4, "the stream holds {held} events");
    let polled = metric(&stack.xds_http, "xds_polled_loads_total")
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(polled == 0.0, "the replica polled config {polled} times");
    envoy.stop().await;
    Ok(())
}

async fn serves(url: &str, upstream: &str) -> anyhow::Result<()> {
    eventually(
        &format!("Envoy to route to {upstream}"),
        Duration::from_secs(15),
        || async {
            let body: Value = reqwest::get(url)
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if body["upstream"] == upstream {
                Ok(())
            } else {
                Err(format!("served by {}", body["upstream"]))
            }
        },
    )
    .await?;
    Ok(())
}

/// A CA, NATS's server certificate and the services' client certificate, as PEM files.
struct NatsPki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl NatsPki {
    fn write(dir: &Path) -> anyhow::Result<Self> {
        let pki = Pki::new("NATS CA")?;
        let server = pki.issue(1, "nats", ExtendedKeyUsagePurpose::ServerAuth)?;
        let client = pki.issue(2, "flowplane-services", ExtendedKeyUsagePurpose::ClientAuth)?;
        let write = |name: &str, pem: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, pem)?;
            Ok(path)
        };
        Ok(Self {
            ca: write("ca.pem", &pki.ca_pem())?,
            server_cert: write("nats.pem", &server.pem)?,
            server_key: write("nats-key.pem", &server.key_pem)?,
            client_cert: write("client.pem", &client.pem)?,
            client_key: write("client-key.pem", &client.key_pem)?,
        })
    }
}
