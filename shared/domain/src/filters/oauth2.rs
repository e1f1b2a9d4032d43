//! OAuth2 login at the edge: a request without a valid session is redirected to the identity
//! provider's authorization endpoint; Envoy exchanges the returned code at the token endpoint
//! (through a cluster), keeps the token in HMAC-signed cookies and forwards it upstream. The
//! client secret and the cookie-signing key are `genericSecret`s, delivered over SDS.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::names::check_name;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Filter {
    /// Where users are sent to log in, e.g. `https://idp.example.com/oauth2/authorize`.
    pub authorization_endpoint: String,
    /// Where Envoy exchanges the code for a token.
    pub token_endpoint: TokenEndpoint,
    pub client_id: String,
    /// A `genericSecret` holding the client secret.
    pub client_secret: String,
    /// A `genericSecret` holding the key that signs the session cookies.
    pub hmac_secret: String,
    /// The path the identity provider redirects back to (default `/oauth2/callback`); it is
    /// registered with the provider as `<scheme>://<host><redirectPath>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_path: Option<String>,
    /// Requests to this path clear the session cookies (default `/oauth2/signout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signout_path: Option<String>,
    /// Scopes asked for (default `user`, Envoy's default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Send the access token upstream as `Authorization: Bearer …`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_bearer_token: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenEndpoint {
    /// The cluster that reaches the token endpoint.
    pub cluster: String,
    /// The token endpoint's URL, e.g. `https://idp.example.com/oauth2/token`.
    pub uri: String,
    /// How long the exchange may take (default 3000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

pub const DEFAULT_REDIRECT_PATH: &str = "/oauth2/callback";
pub const DEFAULT_SIGNOUT_PATH: &str = "/oauth2/signout";
pub const DEFAULT_TOKEN_TIMEOUT_MS: u32 = 3000;

impl OAuth2Filter {
    pub fn redirect_path(&self) -> &str {
        self.redirect_path
            .as_deref()
            .unwrap_or(DEFAULT_REDIRECT_PATH)
    }

    pub fn signout_path(&self) -> &str {
        self.signout_path.as_deref().unwrap_or(DEFAULT_SIGNOUT_PATH)
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        check_url(
            &self.authorization_endpoint,
            &at.field("authorizationEndpoint"),
            errors,
        );
        let token = at.field("tokenEndpoint");
        check_name(
            &self.token_endpoint.cluster,
            &token.field("cluster"),
            errors,
        );
        check_url(&self.token_endpoint.uri, &token.field("uri"), errors);
        if !(1..=60_000).contains(&self.token_endpoint.timeout_ms()) {
            errors.add(
                token.field("timeoutMs").as_str(),
                "must be between 1 and 60000",
            );
        }
        if self.client_id.trim().is_empty() {
            errors.add(at.field("clientId").as_str(), "must not be empty");
        }
        check_name(&self.client_secret, &at.field("clientSecret"), errors);
        check_name(&self.hmac_secret, &at.field("hmacSecret"), errors);
        for (field, path) in [
            ("redirectPath", self.redirect_path()),
            ("signoutPath", self.signout_path()),
        ] {
            if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
                errors.add(
                    at.field(field).as_str(),
                    "must be a path starting with / (no query)",
                );
            }
        }
        if self.redirect_path() == self.signout_path() {
            errors.add(
                at.field("signoutPath").as_str(),
                "must differ from redirectPath",
            );
        }
        for (i, scope) in self.scopes.iter().enumerate() {
            if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
                errors.add(
                    at.field("scopes").index(i).as_str(),
                    "must be one scope without spaces",
                );
            }
        }
    }

    /// The secrets this filter reads, with the field naming each.
    pub fn referenced_secrets(&self, at: &Path) -> Vec<(&str, Path)> {
        vec![
            (self.client_secret.as_str(), at.field("clientSecret")),
            (self.hmac_secret.as_str(), at.field("hmacSecret")),
        ]
    }

    /// The cluster of the token endpoint, with its field.
    pub fn referenced_clusters(&self, at: &Path) -> Vec<(&str, Path)> {
        vec![(
            self.token_endpoint.cluster.as_str(),
            at.field("tokenEndpoint").field("cluster"),
        )]
    }
}

impl TokenEndpoint {
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_TOKEN_TIMEOUT_MS)
    }
}

fn check_url(url: &str, at: &Path, errors: &mut ValidationErrors) {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host_present = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
    if !host_present || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.add(at.as_str(), "must be an absolute http(s) URL");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"authorizationEndpoint":"https://idp.example.com/authorize",
        "tokenEndpoint":{"cluster":"idp","uri":"https://idp.example.com/token"},
        "clientId":"app","clientSecret":"oauth-client","hmacSecret":"oauth-hmac"}"#;

    fn errors(json: &str) -> Vec<String> {
        let filter: OAuth2Filter = serde_json::from_str(json).expect(json);
        let mut errors = ValidationErrors::new();
        filter.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn defaults_fill_the_paths() {
        assert!(errors(VALID).is_empty());
        let filter: OAuth2Filter = serde_json::from_str(VALID).unwrap();
        assert_eq!(filter.redirect_path(), "/oauth2/callback");
        assert_eq!(filter.signout_path(), "/oauth2/signout");
    }

    #[test]
    fn each_rule_is_reported_at_its_field() {
        assert_eq!(
            errors(
                r#"{"authorizationEndpoint":"idp.example.com/authorize",
                    "tokenEndpoint":{"cluster":"Idp","uri":"https:///token","timeoutMs":0},
                    "clientId":" ","clientSecret":"a b","hmacSecret":"h",
                    "redirectPath":"/cb","signoutPath":"/cb","scopes":["open id"]}"#
            ),
            [
                "/authorizationEndpoint",
                "/tokenEndpoint/cluster",
                "/tokenEndpoint/uri",
                "/tokenEndpoint/timeoutMs",
                "/clientId",
                "/clientSecret",
                "/signoutPath",
                "/scopes/0"
            ]
        );
    }
}
