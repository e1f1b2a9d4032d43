//! Secrets: TLS certificates with their private keys, trust anchors (validation contexts) and
//! opaque generic secrets, served to Envoy over SDS.
//!
//! Key material is write-only. [`SecretSpec`] is the body a caller sends; what storage keeps in
//! the clear, audit rows record and responses show is its [`SecretSummary`] (type, subject,
//! serial, expiry, fingerprint), never the PEM or the secret itself. `Debug` is redacted too,
//! so a stray log line cannot leak a key.

mod key_pair;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use x509_cert::der::Decode;

use crate::cluster::is_valid_host;
use crate::error::{Path, ValidationErrors};
use crate::resource::Spec;

/// Upper bound of any one PEM or secret field: a long chain fits, a mistaken upload does not.
pub const MAX_MATERIAL_BYTES: usize = 64 * 1024;

/// What a referring field needs the secret to be: its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    /// A certificate and key presented by Envoy (`tlsCertificate`).
    Certificate,
    /// Trust anchors that verify the peer (`validationContext`).
    Validation,
    /// An opaque value a filter reads (`genericSecret`).
    Generic,
}

impl SecretUse {
    /// The secret `type` this use requires.
    pub fn required_type(self) -> &'static str {
        match self {
            Self::Certificate => "tlsCertificate",
            Self::Validation => "validationContext",
            Self::Generic => "genericSecret",
        }
    }
}

/// A secret as sent on create and update, tagged by `type`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SecretSpec {
    /// A certificate chain (leaf first) and its private key, for TLS termination on a
    /// listener or as a client certificate on a cluster.
    TlsCertificate(TlsCertificate),
    /// Trust anchors that verify the peer's certificate (clients on a listener with mTLS,
    /// the upstream on a cluster).
    ValidationContext(ValidationContext),
    /// An opaque value (an HMAC key, a credential) for filters that read generic secrets.
    GenericSecret(GenericSecret),
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsCertificate {
    /// PEM `CERTIFICATE` blocks, leaf first, then intermediates.
    pub certificate_chain: String,
    /// One PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationContext {
    /// PEM `CERTIFICATE` blocks of the trusted certificate authorities.
    pub trusted_ca: String,
    /// When set, the peer certificate must carry one of these DNS subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_subject_alt_names: Vec<String>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenericSecret {
    pub secret: String,
}

impl std::fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretSpec({}, <redacted>)", self.type_name())
    }
}

/// What may be shown of a secret: enough to tell which certificate is deployed and when it
/// expires, nothing that would let anyone use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSummary {
    /// `tlsCertificate`, `validationContext` or `genericSecret`.
    #[serde(rename = "type")]
    pub secret_type: String,
    /// The chain (leaf first) or the trusted CAs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_subject_alt_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    /// Hex, as `openssl x509 -serial` prints it.
    pub serial_number: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// SHA-256 of the DER certificate, hex.
    pub fingerprint_sha256: String,
}

impl SecretSpec {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::TlsCertificate(_) => "tlsCertificate",
            Self::ValidationContext(_) => "validationContext",
            Self::GenericSecret(_) => "genericSecret",
        }
    }

    /// The redacted view. Certificates that do not parse are left out (validation refuses
    /// them, so that only happens to a spec that was never validated).
    pub fn summary(&self) -> SecretSummary {
        let (pem, match_subject_alt_names) = match self {
            Self::TlsCertificate(t) => (Some(&t.certificate_chain), Vec::new()),
            Self::ValidationContext(v) => (Some(&v.trusted_ca), v.match_subject_alt_names.clone()),
            Self::GenericSecret(_) => (None, Vec::new()),
        };
        let certificates = pem
            .and_then(|pem| certificates(pem).ok())
            .map(|certs| certs.iter().filter_map(|c| summarize(c).ok()).collect())
            .unwrap_or_default();
        SecretSummary {
            secret_type: self.type_name().to_string(),
            certificates,
            match_subject_alt_names,
        }
    }
}

impl Spec for SecretSpec {
    fn validate(&self, errors: &mut ValidationErrors) {
        let root = Path::root();
        match self {
            Self::TlsCertificate(t) => {
                check_certificates(
                    &t.certificate_chain,
                    &root.field("certificateChain"),
                    errors,
                );
                check_private_key(&t.private_key, &root.field("privateKey"), errors);
                if errors.is_empty() {
                    check_key_pair(t, &root, errors);
                }
            }
            Self::ValidationContext(v) => {
                check_certificates(&v.trusted_ca, &root.field("trustedCa"), errors);
                let sans = root.field("matchSubjectAltNames");
                for (i, san) in v.match_subject_alt_names.iter().enumerate() {
                    // A leading `*.` is a wildcard SAN, matched literally by Envoy.
                    let host = san.strip_prefix("*.").unwrap_or(san);
                    if !is_valid_host(host) {
                        errors.add(sans.index(i).as_str(), "must be a DNS name");
                    }
                }
            }
            Self::GenericSecret(g) => {
                let at = root.field("secret");
                if g.secret.is_empty() {
                    errors.add(at.as_str(), "must not be empty");
                } else if g.secret.len() > MAX_MATERIAL_BYTES {
                    errors.add(at.as_str(), too_long());
                }
            }
        }
    }
}

fn too_long() -> String {
    format!("must be at most {MAX_MATERIAL_BYTES} bytes")
}

/// The DER certificates in `pem`, in order. Messages never quote the input.
fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|_| "is not valid PEM".to_string())?;
    if certs.is_empty() {
        return Err("must contain at least one PEM CERTIFICATE block".into());
    }
    Ok(certs)
}

fn check_certificates(pem: &str, at: &Path, errors: &mut ValidationErrors) {
    if pem.len() > MAX_MATERIAL_BYTES {
        errors.add(at.as_str(), too_long());
        return;
    }
    match certificates(pem) {
        Err(message) => errors.add(at.as_str(), message),
        Ok(certs) => {
            for (i, cert) in certs.iter().enumerate() {
                if summarize(cert).is_err() {
                    errors.add(
                        at.as_str(),
                        format!("certificate {} is not a valid X.509 certificate", i + 1),
                    );
                }
            }
        }
    }
}

/// A key that provably belongs to another certificate is refused here rather than by Envoy.
fn check_key_pair(t: &TlsCertificate, root: &Path, errors: &mut ValidationErrors) {
    let Ok(chain) = certificates(&t.certificate_chain) else {
        return;
    };
    let Some(Ok(key)) =
        rustls_pki_types::pem::PemObject::pem_slice_iter(t.private_key.as_bytes()).next()
    else {
        return;
    };
    let (der, kind) = match &key {
        PrivateKeyDer::Pkcs1(k) => (k.secret_pkcs1_der(), key_pair::KeyKind::Pkcs1),
        PrivateKeyDer::Sec1(k) => (k.secret_sec1_der(), key_pair::KeyKind::Sec1),
        PrivateKeyDer::Pkcs8(k) => (k.secret_pkcs8_der(), key_pair::KeyKind::Pkcs8),
        _ => return,
    };
    let leaf = chain[0].as_ref();
    if key_pair::belongs_to(leaf, der, kind) == Some(false) {
        errors.add(
            root.field("privateKey").as_str(),
            "does not belong to the first certificate of certificateChain",
        );
    }
}

fn check_private_key(pem: &str, at: &Path, errors: &mut ValidationErrors) {
    if pem.len() > MAX_MATERIAL_BYTES {
        errors.add(at.as_str(), too_long());
        return;
    }
    // Only the first key is used by Envoy; a second one is almost certainly a mistake.
    let keys = rustls_pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<PrivateKeyDer<'static>>, _>>();
    match keys.as_deref() {
        Ok([_]) => {}
        Ok([]) => errors.add(
            at.as_str(),
            "must contain a PEM private key (PKCS#8, RSA or EC)",
        ),
        Ok(_) => errors.add(at.as_str(), "must contain exactly one private key"),
        Err(_) => errors.add(at.as_str(), "is not valid PEM"),
    }
}

fn summarize(der: &CertificateDer<'_>) -> Result<CertificateSummary, x509_cert::der::Error> {
    use sha2::{Digest, Sha256};
    let cert = x509_cert::Certificate::from_der(der.as_ref())?;
    let tbs = &cert.tbs_certificate;
    let time = |t: &x509_cert::time::Time| {
        let seconds = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
        chrono::DateTime::from_timestamp(seconds, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    Ok(CertificateSummary {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial_number: hex::encode_upper(tbs.serial_number.as_bytes()),
        not_before: time(&tbs.validity.not_before),
        not_after: time(&tbs.validity.not_after),
        fingerprint_sha256: hex::encode(Sha256::digest(der.as_ref())),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::resource::parse_spec;

    /// A self-signed P-256 certificate for `localhost`, valid until 2126 (test material only).
    pub(crate) const CERT: &str = include_str!("../testdata/localhost.crt.pem");
    pub(crate) const KEY: &str = include_str!("../testdata/localhost.key.pem");

    fn tls(cert: &str, key: &str) -> String {
        serde_json::json!({"name":"edge","type":"tlsCertificate","certificateChain":cert,"privateKey":key})
            .to_string()
    }

    #[test]
    fn a_key_must_belong_to_the_leaf_certificate() {
        let rsa_cert = include_str!("../testdata/rsa.crt.pem");
        let rsa_pkcs8 = include_str!("../testdata/rsa.key.pem");
        let rsa_pkcs1 = include_str!("../testdata/rsa-pkcs1.key.pem");
        let ec_sec1 = include_str!("../testdata/localhost-sec1.key.pem");
        let other_ec = include_str!("../testdata/other-ec.key.pem");
        for (cert, key) in [
            (CERT, KEY),
            (CERT, ec_sec1),
            (rsa_cert, rsa_pkcs8),
            (rsa_cert, rsa_pkcs1),
        ] {
            assert!(parse_spec::<SecretSpec>(&tls(cert, key)).is_ok());
        }
        for (cert, key) in [
            (CERT, other_ec),
            (CERT, rsa_pkcs8),
            (rsa_cert, KEY),
            (rsa_cert, ec_sec1),
        ] {
            let errors = parse_spec::<SecretSpec>(&tls(cert, key)).expect_err("mismatch");
            let fields: Vec<(&str, &str)> = errors
                .errors()
                .iter()
                .map(|e| (e.field.as_str(), e.message.as_str()))
                .collect();
            assert_eq!(
                fields,
                [(
                    "/privateKey",
                    "does not belong to the first certificate of certificateChain"
                )]
            );
        }
    }

    #[test]
    fn a_certificate_and_key_parse_and_summarize_without_material() {
        let parsed = parse_spec::<SecretSpec>(&tls(CERT, KEY)).expect("valid");
        let summary = parsed.spec.summary();
        assert_eq!(summary.secret_type, "tlsCertificate");
        let [cert] = summary.certificates.as_slice() else {
            panic!("one certificate expected: {summary:?}")
        };
        assert_eq!(cert.subject, "CN=localhost");
        assert_eq!(
            cert.serial_number,
            "7494C14D174F9262A76C7EEDE1866A9358B17E57"
        );
        assert_eq!(cert.not_after, "2126-11-05T23:30:25Z");
        assert_eq!(cert.fingerprint_sha256.len(), 64);
        let json = serde_json::to_string(&summary).unwrap();
        assert!(
            !json.contains("PRIVATE KEY") && !json.contains("BEGIN"),
            "{json}"
        );
        assert_eq!(
            format!("{:?}", parsed.spec),
            "SecretSpec(tlsCertificate, <redacted>)"
        );
    }

    #[test]
    fn every_rule_reports_its_field() {
        let big = "x".repeat(MAX_MATERIAL_BYTES + 1);
        let garbage_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let cases = [
            (tls("not pem", KEY), "/certificateChain"),
            (tls(garbage_cert, KEY), "/certificateChain"),
            (tls(&big, KEY), "/certificateChain"),
            (tls(CERT, "not a key"), "/privateKey"),
            (tls(CERT, CERT), "/privateKey"),
            (tls(CERT, &format!("{KEY}{KEY}")), "/privateKey"),
            (tls(CERT, &big), "/privateKey"),
            (
                serde_json::json!({"type":"tlsCertificate","certificateChain":CERT}).to_string(),
                "",
            ),
            (
                serde_json::json!({"type":"validationContext","trustedCa":"nope"}).to_string(),
                "/trustedCa",
            ),
            (
                serde_json::json!({"type":"validationContext","trustedCa":CERT,
                    "matchSubjectAltNames":["ok.example.com","not a name"]})
                .to_string(),
                "/matchSubjectAltNames/1",
            ),
            (
                serde_json::json!({"type":"genericSecret","secret":""}).to_string(),
                "/secret",
            ),
            (
                serde_json::json!({"type":"genericSecret","secret":big}).to_string(),
                "/secret",
            ),
            (
                serde_json::json!({"type":"genericSecret","secret":"s","extra":1}).to_string(),
                "",
            ),
            (serde_json::json!({"type":"sshKey"}).to_string(), "/type"),
        ];
        for (body, field) in cases {
            let errors = parse_spec::<SecretSpec>(&body).expect_err(field);
            assert!(
                errors.errors().iter().any(|e| e.field == field),
                "expected an error at '{field}', got {errors}"
            );
            // Messages never quote the material.
            assert!(!errors.to_string().contains("BEGIN"), "{errors}");
        }
    }

    #[test]
    fn validation_contexts_and_generic_secrets_are_accepted() {
        let vc = serde_json::json!({"type":"validationContext","trustedCa":CERT,
            "matchSubjectAltNames":["*.example.com"]});
        let parsed = parse_spec::<SecretSpec>(&vc.to_string()).expect("valid");
        let summary = parsed.spec.summary();
        assert_eq!(summary.certificates.len(), 1);
        assert_eq!(summary.match_subject_alt_names, ["*.example.com"]);
        let generic = r#"{"type":"genericSecret","secret":"hunter2"}"#;
        let parsed = parse_spec::<SecretSpec>(generic).expect("valid");
        let json = serde_json::to_string(&parsed.spec.summary()).unwrap();
        assert_eq!(json, r#"{"type":"genericSecret"}"#);
    }
}
