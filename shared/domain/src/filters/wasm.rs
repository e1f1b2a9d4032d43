//! WebAssembly plugins (proxy-wasm) run by Envoy's V8 runtime on every request. The module is
//! either carried inline (base64, checked to be WebAssembly) or fetched by Envoy from a
//! cluster and checked against its SHA-256.

use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::names::check_name;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmFilter {
    pub module: WasmModule,
    /// Handed to the plugin when it starts (a string; JSON is common).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    /// The plugin's root context, when one module holds several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_id: Option<String>,
    /// Let requests through when the plugin fails (default: refuse them with 503).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
}

/// Where the module comes from: set exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmModule {
    /// The module's bytes, base64 (at most 1 MiB decoded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_base64: Option<String>,
    /// A module Envoy downloads through a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteModule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteModule {
    pub cluster: String,
    /// The module's URL, e.g. `https://plugins.example.com/auth.wasm`.
    pub uri: String,
    /// Lower-case hex SHA-256 of the module; Envoy refuses any other bytes.
    pub sha256: String,
    /// How long the download may take (default 5000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

pub const MAX_INLINE_MODULE: usize = 1024 * 1024;
const WASM_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
pub const DEFAULT_DOWNLOAD_TIMEOUT_MS: u32 = 5000;

impl WasmFilter {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        let module = at.field("module");
        match (&self.module.inline_base64, &self.module.remote) {
            (Some(_), None) => {
                if let Err(message) = self.module.inline_bytes() {
                    errors.add(module.field("inlineBase64").as_str(), message);
                }
            }
            (None, Some(remote)) => remote.validate(&module.field("remote"), errors),
            _ => errors.add(module.as_str(), "set exactly one of inlineBase64 or remote"),
        }
        if let Some(root) = &self.root_id
            && (root.is_empty() || root.len() > 128 || root.chars().any(char::is_control))
        {
            errors.add(at.field("rootId").as_str(), "must be 1 to 128 characters");
        }
    }

    /// The cluster a remote module is downloaded through, with its field.
    pub fn referenced_clusters(&self, at: &Path) -> Vec<(&str, Path)> {
        self.module
            .remote
            .iter()
            .map(|r| {
                let field = at.field("module").field("remote").field("cluster");
                (r.cluster.as_str(), field)
            })
            .collect()
    }
}

impl WasmModule {
    /// The inline module's bytes, checked to be a WebAssembly binary of a sane size.
    pub fn inline_bytes(&self) -> Result<Vec<u8>, String> {
        let encoded = self.inline_base64.as_deref().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("is not base64: {e}"))?;
        if bytes.len() > MAX_INLINE_MODULE {
            return Err(format!(
                "the module must be at most {MAX_INLINE_MODULE} bytes"
            ));
        }
        if !bytes.starts_with(&WASM_HEADER) {
            return Err("is not a WebAssembly (version 1) binary module".into());
        }
        Ok(bytes)
    }
}

impl RemoteModule {
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_DOWNLOAD_TIMEOUT_MS)
    }

    fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        check_name(&self.cluster, &at.field("cluster"), errors);
        let has_host = self
            .uri
            .strip_prefix("https://")
            .or_else(|| self.uri.strip_prefix("http://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        if !has_host
            || self
                .uri
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            errors.add(at.field("uri").as_str(), "must be an absolute http(s) URL");
        }
        let hex = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            errors.add(
                at.field("sha256").as_str(),
                "must be 64 lower-case hex characters",
            );
        }
        if !(1..=300_000).contains(&self.timeout_ms()) {
            errors.add(
                at.field("timeoutMs").as_str(),
                "must be between 1 and 300000",
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<String> {
        let filter: WasmFilter = serde_json::from_str(json).expect(json);
        let mut errors = ValidationErrors::new();
        filter.validate(&Path::root(), &mut errors);
        errors.into_errors().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn an_inline_module_must_be_webassembly() {
        // The 8-byte header of an empty module.
        assert!(errors(r#"{"module":{"inlineBase64":"AGFzbQEAAAA="}}"#).is_empty());
        assert_eq!(
            errors(r#"{"module":{"inlineBase64":"aGVsbG8="}}"#),
            ["/module/inlineBase64"]
        );
        assert_eq!(
            errors(r#"{"module":{"inlineBase64":"***"}}"#),
            ["/module/inlineBase64"]
        );
    }

    #[test]
    fn exactly_one_source_and_a_checked_remote() {
        assert_eq!(errors(r#"{"module":{}}"#), ["/module"]);
        assert_eq!(
            errors(
                r#"{"module":{"remote":{"cluster":"Plugins","uri":"plugins/x.wasm",
                    "sha256":"ABC","timeoutMs":0}},"rootId":""}"#
            ),
            [
                "/module/remote/cluster",
                "/module/remote/uri",
                "/module/remote/sha256",
                "/module/remote/timeoutMs",
                "/rootId"
            ]
        );
    }
}
