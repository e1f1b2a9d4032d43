//! TLS on the ADS port (optional): Envoys reach the xds-server over TLS when the operator
//! gives it a certificate, and the bootstraps the api-gateway hands out then trust the CA that
//! signed it (`FLOWPLANE_XDS_PUBLIC_CA_FILE`). Who the Envoy is stays the dataplane token's
//! job; TLS keeps the token, and the secrets SDS carries, off the wire in the clear.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::settings::TlsFiles;

/// An acceptor for the certificate chain and key in `files`, speaking HTTP/2 only (gRPC).
pub fn acceptor(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: not a PEM certificate chain: {e:?}",
                files.cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e:?}", files.key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
