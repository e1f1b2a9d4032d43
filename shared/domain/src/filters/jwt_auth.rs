//! JWT authentication: named providers (issuer, audiences, where the signing keys come from)
//! and rules that say, by path prefix, which providers a request needs. A request that no rule
//! matches is not checked.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::names::check_name;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtAuthFilter {
    pub providers: Vec<JwtProvider>,
    /// In order; the first rule whose prefix matches decides.
    pub rules: Vec<JwtRule>,
    /// Named provider lists (a valid token from any one is required) that a route or virtual
    /// host selects with a `jwtRequirement` override instead of the rules.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub requirements: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtProvider {
    pub name: String,
    /// The `iss` a token must carry (any when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// One of these must be in the token's `aud` (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    pub jwks: Jwks,
    /// Pass the token on to the upstream (default: strip it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward: bool,
}

/// Where the provider's signing keys come from, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Jwks {
    /// A JWKS document (`{"keys":[...]}`) given inline, as a string.
    Local(LocalJwks),
    /// Fetched over HTTP(S) through a cluster of the same team.
    Remote(RemoteJwks),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalJwks {
    pub inline: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteJwks {
    pub cluster: String,
    pub uri: String,
    /// Fetch timeout (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

pub const DEFAULT_JWKS_TIMEOUT_SECONDS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    pub path_prefix: String,
    /// A valid token from any one of these providers is required; empty means no check.
    #[serde(default)]
    pub providers: Vec<String>,
}

impl JwtAuthFilter {
    /// Clusters that remote JWKS are fetched through, with their paths.
    pub fn referenced_clusters(&self, at: &Path) -> Vec<(&str, Path)> {
        self.providers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match &p.jwks {
                Jwks::Remote(remote) => Some((
                    remote.cluster.as_str(),
                    at.field("providers")
                        .index(i)
                        .field("jwks")
                        .field("cluster"),
                )),
                Jwks::Local(_) => None,
            })
            .collect()
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        let providers = at.field("providers");
        if self.providers.is_empty() {
            errors.add(providers.as_str(), "at least one provider is required");
        }
        let mut names = std::collections::HashSet::new();
        for (i, provider) in self.providers.iter().enumerate() {
            let p = providers.index(i);
            check_name(&provider.name, &p.field("name"), errors);
            if !names.insert(provider.name.as_str()) {
                errors.add(p.field("name").as_str(), "provider names must be unique");
            }
            let jwks = p.field("jwks");
            match &provider.jwks {
                Jwks::Local(local) => {
                    if let Err(message) = check_jwks(&local.inline) {
                        errors.add(jwks.field("inline").as_str(), message);
                    }
                }
                Jwks::Remote(remote) => {
                    check_name(&remote.cluster, &jwks.field("cluster"), errors);
                    if !(remote.uri.starts_with("http://") || remote.uri.starts_with("https://")) {
                        errors.add(
                            jwks.field("uri").as_str(),
                            "must be an http:// or https:// URI",
                        );
                    }
                    if remote.timeout_seconds == Some(0) {
                        errors.add(jwks.field("timeoutSeconds").as_str(), "must be at least 1");
                    }
                }
            }
        }
        let rules = at.field("rules");
        if self.rules.is_empty() {
            errors.add(rules.as_str(), "at least one rule is required");
        }
        let check_providers = |providers: &[String], at: &Path, errors: &mut ValidationErrors| {
            for (j, name) in providers.iter().enumerate() {
                if !names.contains(name.as_str()) {
                    errors.add(
                        at.index(j).as_str(),
                        format!("no provider is named '{name}'"),
                    );
                }
            }
        };
        for (i, rule) in self.rules.iter().enumerate() {
            let r = rules.index(i);
            if !rule.path_prefix.starts_with('/') {
                errors.add(r.field("pathPrefix").as_str(), "must start with '/'");
            }
            check_providers(&rule.providers, &r.field("providers"), errors);
        }
        for (name, providers) in &self.requirements {
            let r = at.field("requirements").field(name);
            check_name(name, &r, errors);
            if providers.is_empty() {
                errors.add(r.as_str(), "at least one provider is required");
            }
            check_providers(providers, &r, errors);
        }
    }
}

/// Envoy rejects the listener if an inline JWKS does not parse, so it is checked here.
fn check_jwks(text: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
    match value.get("keys").and_then(|k| k.as_array()) {
        Some(keys) if !keys.is_empty() => Ok(()),
        _ => Err("must be a JWKS document with a non-empty \"keys\" array".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Vec<String> {
        let filter: JwtAuthFilter = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        let mut errors = ValidationErrors::new();
        filter.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    const JWKS: &str = r#"{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":\"c2VjcmV0\"}]}"#;

    #[test]
    fn local_and_remote_providers_are_valid() {
        let json = format!(
            r#"{{"providers":[{{"name":"local","issuer":"me","audiences":["api"],"jwks":{{"type":"local","inline":"{JWKS}"}}}},
                {{"name":"idp","jwks":{{"type":"remote","cluster":"idp","uri":"https://idp.example/jwks"}},"forward":true}}],
                "rules":[{{"pathPrefix":"/public"}},{{"pathPrefix":"/","providers":["local","idp"]}}]}}"#
        );
        assert!(fields(&json).is_empty());
        let filter: JwtAuthFilter = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        let refs = filter.referenced_clusters(&Path::root());
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].0, "idp");
        assert_eq!(refs[0].1.as_str(), "/providers/1/jwks/cluster");
    }

    #[test]
    fn providers_keys_uris_and_rules_are_checked() {
        assert_eq!(
            fields(r#"{"providers":[],"rules":[]}"#),
            ["/providers", "/rules"]
        );
        assert_eq!(
            fields(
                r#"{"providers":[{"name":"a","jwks":{"type":"local","inline":"{}"}},
                    {"name":"a","jwks":{"type":"remote","cluster":"c","uri":"ftp://x","timeoutSeconds":0}}],
                    "rules":[{"pathPrefix":"api","providers":["b"]}]}"#
            ),
            [
                "/providers/0/jwks/inline",
                "/providers/1/name",
                "/providers/1/jwks/uri",
                "/providers/1/jwks/timeoutSeconds",
                "/rules/0/pathPrefix",
                "/rules/0/providers/0"
            ]
        );
    }
}
