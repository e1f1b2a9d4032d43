//! The shared service credential on internal gRPC. Every call between services carries
//! `authorization: Bearer <FLOWPLANE_SERVICE_TOKEN>`; servers refuse calls without it, so a
//! process that can reach the port still cannot speak for a user.
//!
//! The same secret keys the dataplane tokens ([`DataplaneTokens`]) that Envoys present on
//! their xDS streams.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

const HEADER: &str = "authorization";

#[derive(Clone)]
pub struct ServiceCredential {
    header: MetadataValue<tonic::metadata::Ascii>,
}

impl ServiceCredential {
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        if secret.len() < 16 {
            anyhow::bail!("the service credential must be at least 16 characters");
        }
        let header = format!("Bearer {secret}").parse()?;
        Ok(Self { header })
    }

    /// Adds the credential to outgoing calls.
    pub fn client(&self) -> ClientCredential {
        ClientCredential(self.header.clone())
    }

    /// Checks the credential on incoming calls.
    pub fn server(&self) -> ServerCredential {
        ServerCredential(self.header.clone())
    }
}

#[derive(Clone)]
pub struct ClientCredential(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for ClientCredential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert(HEADER, self.0.clone());
        Ok(request)
    }
}

#[derive(Clone)]
pub struct ServerCredential(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for ServerCredential {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match request.metadata().get(HEADER) {
            Some(presented) if constant_time_eq(presented.as_bytes(), self.0.as_bytes()) => {
                Ok(request)
            }
            _ => Err(Status::unauthenticated(
                "missing or invalid service credential",
            )),
        }
    }
}

/// The credential an Envoy presents on its xDS streams, one per dataplane: an HMAC-SHA256 of
/// the team and the dataplane's id, under a key derived from the service secret. api-gateway
/// writes it into the dataplane's bootstrap and every xds-server replica checks it, and they
/// agree without storing or sending anything. A deleted dataplane's token dies with it (a
/// dataplane created again gets a new id); rotating the service secret re-keys every token,
/// so Envoys then need their bootstrap again.
#[derive(Clone)]
pub struct DataplaneTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for DataplaneTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataplaneTokens(<redacted>)")
    }
}

impl DataplaneTokens {
    pub fn new(service_secret: &str) -> Self {
        // A key of its own, so a dataplane token never equals anything else keyed by the
        // service secret.
        let key = hmac_sha256(
            service_secret.as_bytes(),
            &[b"flowplane dataplane tokens v1"],
        );
        Self { key }
    }

    /// The token of dataplane `dataplane_id` of `team`.
    pub fn issue(&self, team: &str, dataplane_id: &str) -> String {
        // Length-prefixed, so no two (team, id) pairs hash the same bytes.
        let team_len = (team.len() as u64).to_be_bytes();
        let mac = hmac_sha256(
            &self.key,
            &[&team_len, team.as_bytes(), dataplane_id.as_bytes()],
        );
        format!("fpdp_{}", hex::encode(mac))
    }

    /// Whether `presented` is the token of dataplane `dataplane_id` of `team`.
    pub fn verify(&self, team: &str, dataplane_id: &str, presented: &str) -> bool {
        constant_time_eq(
            self.issue(team, dataplane_id).as_bytes(),
            presented.as_bytes(),
        )
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A text value of a call's gRPC metadata (a dataplane's token or id, say); empty when it is
/// absent or not text.
pub fn metadata_text<'a>(metadata: &'a tonic::metadata::MetadataMap, name: &str) -> &'a str {
    metadata
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataplane_tokens_bind_team_dataplane_and_secret() {
        let tokens = DataplaneTokens::new("0123456789abcdef-secret");
        let token = tokens.issue("payments", "id-1");
        assert!(token.starts_with("fpdp_") && token.len() == 5 + 64);
        assert!(tokens.verify("payments", "id-1", &token));
        assert!(!tokens.verify("payments", "id-2", &token));
        assert!(!tokens.verify("billing", "id-1", &token));
        assert!(!tokens.verify("payments", "id-1", ""));
        assert!(!tokens.verify("payments", "id-1", &token[..token.len() - 1]));
        // The boundary between team and id cannot be shifted.
        assert_ne!(tokens.issue("ab", "c"), tokens.issue("a", "bc"));
        let other = DataplaneTokens::new("another-secret-0123456789");
        assert!(!other.verify("payments", "id-1", &token));
    }

    #[test]
    fn server_accepts_only_the_shared_secret() {
        let cred = ServiceCredential::new("0123456789abcdef-secret")
            .unwrap_or_else(|e| unreachable!("{e}"));
        let mut client = cred.client();
        let mut server = cred.server();
        let request = client
            .call(Request::new(()))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(server.call(request).is_ok());
        assert!(server.call(Request::new(())).is_err());
        let other = ServiceCredential::new("another-secret-value-here")
            .unwrap_or_else(|e| unreachable!("{e}"));
        let forged = other
            .client()
            .call(Request::new(()))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            server.call(forged).map_err(|s| s.code()).err(),
            Some(tonic::Code::Unauthenticated)
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(ServiceCredential::new("short").is_err());
    }
}
