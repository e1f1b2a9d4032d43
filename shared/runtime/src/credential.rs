//! Who a service is, on internal gRPC. config holds the one service secret
//! (`FLOWPLANE_SERVICE_SECRET`) and derives from it everything else: each service's own
//! credential ([`ServiceSecret::credential`], `fpsvc_{service}_{mac}`), the key it signs
//! principals with, the dataplane-token key and the change-event key. Every other service
//! holds only its own credential (`FLOWPLANE_SERVICE_CREDENTIAL`), so owning one of them gives
//! nothing but what config allows that service: the credential names the service, config
//! checks its MAC and then which methods that service may call.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

const HEADER: &str = "authorization";
const CREDENTIAL_PREFIX: &str = "fpsvc_";

/// The services that call config, each with a credential of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    ApiGateway,
    XdsServer,
    Learning,
    Ratelimit,
}

impl Service {
    pub const ALL: [Self; 4] = [
        Self::ApiGateway,
        Self::XdsServer,
        Self::Learning,
        Self::Ratelimit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ApiGateway => "api-gateway",
            Self::XdsServer => "xds-server",
            Self::Learning => "learning",
            Self::Ratelimit => "ratelimit",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// config's service secret: the root every internal key derives from. Only config (and
/// `flowplane service-credential`, which prints a service's credential) holds it.
#[derive(Clone)]
pub struct ServiceSecret {
    root: Vec<u8>,
}

impl std::fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceSecret(<redacted>)")
    }
}

impl ServiceSecret {
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        if secret.len() < 16 {
            anyhow::bail!("the service secret must be at least 16 characters");
        }
        Ok(Self {
            root: secret.as_bytes().to_vec(),
        })
    }

    /// A key of its own for `purpose`: no two purposes ever share key material.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.root, &[purpose.as_bytes()])
    }

    /// The credential `service` presents to config: `fpsvc_{service}_{hex}`, the hex being
    /// SHA-256 of `{secret}:flowplane-service-credential-v1:{service}`. A plain digest rather
    /// than an HMAC so deployment tools derive it without this binary (Helm's `sha256sum`,
    /// the shell's); with the secret first and only four fixed messages ever accepted, a
    /// length extension yields nothing config would take.
    pub fn credential(&self, service: Service) -> String {
        let mut digest = Sha256::new();
        digest.update(&self.root);
        digest.update(b":flowplane-service-credential-v1:");
        digest.update(service.name().as_bytes());
        format!(
            "{CREDENTIAL_PREFIX}{}_{}",
            service.name(),
            hex::encode(digest.finalize())
        )
    }

    /// The service `presented` (an `authorization` value or a bare credential) is the
    /// credential of, if it is one.
    pub fn authenticate(&self, presented: &str) -> Option<Service> {
        let credential = presented.strip_prefix("Bearer ").unwrap_or(presented);
        let (name, _) = credential
            .strip_prefix(CREDENTIAL_PREFIX)?
            .rsplit_once('_')?;
        let service = Service::parse(name)?;
        constant_time_eq(self.credential(service).as_bytes(), credential.as_bytes())
            .then_some(service)
    }

    /// The key of the tokens Envoys present (derived as it always was, so bootstraps already
    /// handed out stay valid).
    pub fn dataplane_tokens(&self) -> DataplaneTokens {
        DataplaneTokens::from_key(hmac_sha256(&self.root, &[b"flowplane dataplane tokens v1"]))
    }
}

/// A service's own credential, added to every call it makes to config.
#[derive(Clone)]
pub struct ServiceCredential {
    header: MetadataValue<tonic::metadata::Ascii>,
}

impl std::fmt::Debug for ServiceCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceCredential(<redacted>)")
    }
}

impl ServiceCredential {
    /// `credential` as `flowplane service-credential` printed it, for `service`.
    pub fn new(service: Service, credential: &str) -> anyhow::Result<Self> {
        let expected = format!("{CREDENTIAL_PREFIX}{}_", service.name());
        if !credential.starts_with(&expected) {
            anyhow::bail!(
                "FLOWPLANE_SERVICE_CREDENTIAL is not a {service} credential: print one with \
                 `FLOWPLANE_SERVICE_SECRET=… flowplane service-credential {service}` \
                 (`flowplane up` makes its own)"
            );
        }
        let header = format!("Bearer {credential}").parse()?;
        Ok(Self { header })
    }

    /// Adds the credential to outgoing calls.
    pub fn client(&self) -> ClientCredential {
        ClientCredential(self.header.clone())
    }
}

#[derive(Clone)]
pub struct ClientCredential(MetadataValue<tonic::metadata::Ascii>);

/// Every call to config carries the service's credential and the caller's trace context.
impl Interceptor for ClientCredential {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert(HEADER, self.0.clone());
        crate::telemetry::inject(request.metadata_mut());
        Ok(request)
    }
}

/// The credential an Envoy presents on its xDS streams, one per dataplane: an HMAC-SHA256 of
/// the team and the dataplane's id, under a key derived from the service secret. config issues
/// it (into the bootstrap api-gateway renders) and checks it for ratelimit and learning;
/// xds-server replicas get the key from config and check it themselves, against the
/// dataplanes their state holds. A deleted dataplane's token dies with it (a dataplane created
/// again gets a new id); rotating the service secret re-keys every token, so Envoys then need
/// their bootstrap again.
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
    /// Tokens under `key` (config's [`ServiceSecret::dataplane_tokens`], or the key a replica
    /// was given by config).
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The key, for config to hand to xds-server replicas.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
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

/// HMAC-SHA256 of `parts`, concatenated, under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `a` and `b` are equal, without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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

    fn secret(s: &str) -> ServiceSecret {
        ServiceSecret::new(s).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn dataplane_tokens_bind_team_dataplane_and_secret() {
        let tokens = secret("0123456789abcdef-secret").dataplane_tokens();
        let token = tokens.issue("payments", "id-1");
        assert!(token.starts_with("fpdp_") && token.len() == 5 + 64);
        assert!(tokens.verify("payments", "id-1", &token));
        assert!(!tokens.verify("payments", "id-2", &token));
        assert!(!tokens.verify("billing", "id-1", &token));
        assert!(!tokens.verify("payments", "id-1", ""));
        assert!(!tokens.verify("payments", "id-1", &token[..token.len() - 1]));
        // The boundary between team and id cannot be shifted.
        assert_ne!(tokens.issue("ab", "c"), tokens.issue("a", "bc"));
        let other = secret("another-secret-0123456789").dataplane_tokens();
        assert!(!other.verify("payments", "id-1", &token));
        // A replica given the key checks the same tokens.
        assert!(DataplaneTokens::from_key(*tokens.key()).verify("payments", "id-1", &token));
    }

    #[test]
    fn each_service_has_its_own_credential() {
        let root = secret("0123456789abcdef-secret");
        for service in Service::ALL {
            let credential = root.credential(service);
            assert_eq!(root.authenticate(&credential), Some(service));
            assert_eq!(
                root.authenticate(&format!("Bearer {credential}")),
                Some(service)
            );
            // Another service's name on this MAC, or this name under another secret: refused.
            for other in Service::ALL.into_iter().filter(|o| *o != service) {
                let renamed = credential.replacen(service.name(), other.name(), 1);
                assert_eq!(root.authenticate(&renamed), None);
            }
            let stranger = secret("another-secret-value-here").credential(service);
            assert_eq!(root.authenticate(&stranger), None);
        }
        assert_eq!(root.authenticate(""), None);
        assert_eq!(root.authenticate("fpsvc_learning_"), None);
        assert_eq!(root.authenticate("0123456789abcdef-secret"), None);
    }

    #[test]
    fn credentials_are_what_a_shell_derives() {
        // printf '%s' 'example-service-secret:flowplane-service-credential-v1:learning' | sha256sum
        assert_eq!(
            secret("example-service-secret").credential(Service::Learning),
            "fpsvc_learning_6c535b3a9c2e3e48421bfe3f276f36fbe843258e3f74a11ea88590bb9ea1361a"
        );
    }

    #[test]
    fn a_credential_must_be_the_services_own() {
        let root = secret("0123456789abcdef-secret");
        let learning = root.credential(Service::Learning);
        assert!(ServiceCredential::new(Service::Learning, &learning).is_ok());
        assert!(ServiceCredential::new(Service::XdsServer, &learning).is_err());
        assert!(ServiceCredential::new(Service::Learning, "0123456789abcdef-secret").is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(ServiceSecret::new("short").is_err());
    }
}
