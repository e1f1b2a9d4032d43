//! Optional TLS on every gRPC port. On the ports Envoys call (ADS, the ratelimit service, the
//! learning service) a service given a certificate serves TLS, and the bootstraps the
//! api-gateway hands out then trust the CA that signed it. Who an Envoy is stays the dataplane
//! token's job; TLS keeps the token, the secrets SDS carries and the traffic copied to learning
//! off the wire in the clear. Config's internal port works the same way, and
//! [`config_endpoint`] is how every other service reaches it (`https://` + a CA file).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
pub use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

use crate::env;

/// A handshake that has not finished by then is dropped: a client that opens a connection
/// and says nothing must not hold a handshake slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, per accept loop.
const CONCURRENT_HANDSHAKES: usize = 256;

/// A certificate chain and its key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// `<prefix>_TLS_CERT_FILE` and `<prefix>_TLS_KEY_FILE` (e.g. `FLOWPLANE_XDS`): both, or
    /// neither (plaintext).
    pub fn from_env(prefix: &str) -> anyhow::Result<Option<Self>> {
        let (cert_var, key_var) = (
            format!("{prefix}_TLS_CERT_FILE"),
            format!("{prefix}_TLS_KEY_FILE"),
        );
        match (env::optional(&cert_var), env::optional(&key_var)) {
            (Some(cert), Some(key)) => Ok(Some(Self {
                cert: cert.into(),
                key: key.into(),
            })),
            (None, None) => Ok(None),
            _ => anyhow::bail!("set both {cert_var} and {key_var}, or neither"),
        }
    }

    /// An acceptor for this chain and key, speaking HTTP/2 only (gRPC).
    pub fn acceptor(&self) -> anyhow::Result<TlsAcceptor> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
        };
        let chain = CertificateDer::pem_slice_iter(&read(&self.cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: not a PEM certificate chain: {e:?}",
                    self.cert.display()
                )
            })?;
        if chain.is_empty() {
            anyhow::bail!("{} holds no certificate", self.cert.display());
        }
        let key = PrivateKeyDer::from_pem_slice(&read(&self.key)?)
            .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e:?}", self.key.display()))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The connections of `incoming` once their TLS handshake is done. A failed or slow handshake
/// loses that connection only; several run at once, so one slow client delays no other.
pub fn handshakes(
    incoming: impl Stream<Item = Result<TcpStream, std::io::Error>>,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    incoming
        .map(move |tcp| {
            let acceptor = acceptor.clone();
            async move {
                let tcp = tcp.ok()?;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => Some(Ok(tls)),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "a connection failed its TLS handshake");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("a connection did not finish its TLS handshake in time");
                        None
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENT_HANDSHAKES)
        .filter_map(std::future::ready)
}

/// Serves `router` on `addr` until `shutdown`, over TLS when `tls` is given.
pub async fn serve(
    router: tonic::transport::server::Router,
    addr: std::net::SocketAddr,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    match tls {
        None => router.serve_with_shutdown(addr, shutdown).await?,
        Some(acceptor) => {
            router
                .serve_with_incoming_shutdown(incoming(addr, acceptor).await?, shutdown)
                .await?
        }
    }
    Ok(())
}

/// The TLS connections made to `addr`, once each finished its handshake ([`handshakes`]).
pub async fn incoming(
    addr: std::net::SocketAddr,
    acceptor: TlsAcceptor,
) -> std::io::Result<impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let accepted = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(tcp, _)| tcp);
        Some((accepted, listener))
    });
    Ok(handshakes(accepted, acceptor))
}

/// The channel settings for config's internal gRPC at `url`: `http://` in the clear, or
/// `https://` with the server's certificate checked against the CA in `ca_file`
/// (`FLOWPLANE_CONFIG_CA_FILE`), which `https://` requires.
pub fn config_endpoint(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<tonic::transport::Endpoint> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| anyhow::anyhow!("FLOWPLANE_CONFIG_URL={url:?} is not a valid URL: {e}"))?;
    let https = endpoint.uri().scheme_str() == Some("https");
    match (https, ca_file) {
        (false, None) => Ok(endpoint),
        (false, Some(_)) => anyhow::bail!(
            "FLOWPLANE_CONFIG_CA_FILE is set but FLOWPLANE_CONFIG_URL={url:?} is not https://"
        ),
        (true, None) => anyhow::bail!(
            "FLOWPLANE_CONFIG_URL={url:?} is https://: set FLOWPLANE_CONFIG_CA_FILE to the CA \
             that signed config's certificate"
        ),
        (true, Some(ca)) => {
            let pem = std::fs::read(ca)
                .map_err(|e| anyhow::anyhow!("FLOWPLANE_CONFIG_CA_FILE {}: {e}", ca.display()))?;
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem));
            Ok(endpoint.tls_config(tls)?)
        }
    }
}
