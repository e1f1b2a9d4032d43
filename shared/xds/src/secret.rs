//! Secrets: a `SecretSpec` becomes one Envoy SDS `Secret` with its material inline. Listeners
//! and clusters never embed material; they name the secret (`tls::sds_secret`) and Envoy
//! fetches it over the same ADS stream, so rotating a secret pushes only the secret.

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, GenericSecret as EnvoyGenericSecret, Secret,
    SubjectAltNameMatcher, TlsCertificate as EnvoyTlsCertificate,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use flowplane_domain::secret::SecretSpec;

use crate::TranslateError;

pub fn translate_secret(name: &str, spec: &SecretSpec) -> Result<Secret, TranslateError> {
    let secret_type = match spec {
        SecretSpec::TlsCertificate(t) => Type::TlsCertificate(EnvoyTlsCertificate {
            certificate_chain: Some(inline(&t.certificate_chain)),
            private_key: Some(inline(&t.private_key)),
            ..Default::default()
        }),
        SecretSpec::ValidationContext(v) => Type::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(inline(&v.trusted_ca)),
            match_typed_subject_alt_names: v
                .match_subject_alt_names
                .iter()
                .map(|san| dns_san(san))
                .collect(),
            ..Default::default()
        }),
        SecretSpec::GenericSecret(g) => Type::GenericSecret(EnvoyGenericSecret {
            secret: Some(inline(&g.secret)),
            ..Default::default()
        }),
    };
    Ok(Secret {
        name: name.to_string(),
        r#type: Some(secret_type),
    })
}

fn inline(text: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::InlineString(text.to_string())),
        ..Default::default()
    }
}

/// A DNS SAN, matched exactly; Envoy applies RFC 6125 wildcard rules to a `*.` name itself.
fn dns_san(san: &str) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: SanType::Dns as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(san.to_string())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn validation_contexts_match_dns_names_exactly() {
        let spec: SecretSpec = serde_json::from_str(
            r#"{"type":"validationContext","trustedCa":"PEM","matchSubjectAltNames":["*.example.com"]}"#,
        )
        .unwrap();
        let Some(Type::ValidationContext(vc)) = translate_secret("ca", &spec).unwrap().r#type
        else {
            panic!("validation context expected")
        };
        assert_eq!(vc.match_typed_subject_alt_names.len(), 1);
        assert_eq!(
            vc.match_typed_subject_alt_names[0].san_type,
            SanType::Dns as i32
        );
    }
}
