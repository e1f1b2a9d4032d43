//! Response compression: Envoy's compressor filter with the gzip library.

use envoy_types::pb::envoy::extensions::compression::gzip::compressor::v3::Gzip;
use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::Compressor;
use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::compressor::{
    CommonDirectionConfig, ResponseDirectionConfig,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::compressor::CompressorFilter;

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::{any, typed_extension, u32_value};

impl HttpFilterConfig for CompressorFilter {
    const NAME: &'static str = "envoy.filters.http.compressor";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        let gzip = Gzip {
            // Gzip's enum numbers the levels 1 to 9 as their values; 0 is zlib's default.
            compression_level: self.level.map(i32::from).unwrap_or(0),
            ..Default::default()
        };
        Ok(any(&Compressor {
            compressor_library: Some(typed_extension("gzip", &gzip)),
            response_direction_config: Some(ResponseDirectionConfig {
                common_config: Some(CommonDirectionConfig {
                    min_content_length: self.min_content_length.map(u32_value),
                    content_type_matcher: self
                        .content_types
                        .iter()
                        .map(|t| StringMatcher {
                            match_pattern: Some(MatchPattern::Exact(t.clone())),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn gzip_at_the_chosen_level_for_the_listed_types() {
        let filter: CompressorFilter = serde_json::from_str(
            r#"{"minContentLength":100,"contentTypes":["application/json"],"level":9}"#,
        )
        .unwrap();
        let config =
            Compressor::decode(filter.typed_config(&Path::root()).unwrap().value.as_slice())
                .unwrap();
        let library = config.compressor_library.unwrap();
        let gzip = Gzip::decode(library.typed_config.unwrap().value.as_slice()).unwrap();
        assert_eq!(gzip.compression_level, 9);
        let common = config
            .response_direction_config
            .unwrap()
            .common_config
            .unwrap();
        assert_eq!(common.min_content_length.unwrap().value, 100);
        assert_eq!(
            common.content_type_matcher[0].match_pattern,
            Some(MatchPattern::Exact("application/json".into()))
        );
    }
}
