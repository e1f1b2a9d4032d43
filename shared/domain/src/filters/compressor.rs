//! Response compression (gzip) for clients that accept it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompressorFilter {
    /// Responses shorter than this many bytes are sent as they are (Envoy's default: 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_content_length: Option<u32>,
    /// The content types to compress (Envoy's default: common text, JSON, XML and JavaScript
    /// types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_types: Vec<String>,
    /// gzip level from 1 (fastest) to 9 (smallest); zlib's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
}

impl CompressorFilter {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        if self.level.is_some_and(|l| !(1..=9).contains(&l)) {
            errors.add(at.field("level").as_str(), "must be between 1 and 9");
        }
        let types = at.field("contentTypes");
        for (i, content_type) in self.content_types.iter().enumerate() {
            if !content_type.contains('/') || content_type.trim() != content_type {
                errors.add(
                    types.index(i).as_str(),
                    "must be a media type such as application/json",
                );
            }
        }
    }
}
