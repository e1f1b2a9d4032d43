//! proxy-wasm plugins on Envoy's V8 runtime, the module inline or downloaded.

use envoy_types::pb::envoy::config::core::v3::async_data_source::Specifier as ModuleSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType;
use envoy_types::pb::envoy::config::core::v3::{
    AsyncDataSource, DataSource, HttpUri, RemoteDataSource,
};
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::wasm::v3::plugin_config::Vm;
use envoy_types::pb::envoy::extensions::wasm::v3::{FailurePolicy, PluginConfig, VmConfig};
use envoy_types::pb::google::protobuf::{Any, StringValue};
use flowplane_domain::error::Path;
use flowplane_domain::filters::wasm::WasmFilter;

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::{any, milliseconds};

const V8: &str = "envoy.wasm.runtime.v8";

impl HttpFilterConfig for WasmFilter {
    const NAME: &'static str = "envoy.filters.http.wasm";

    fn typed_config(&self, path: &Path) -> Result<Any, TranslateError> {
        let code = match (&self.module.inline_base64, &self.module.remote) {
            (Some(_), _) => {
                let bytes = self.module.inline_bytes().map_err(|message| {
                    TranslateError::at(&path.field("module").field("inlineBase64"), message)
                })?;
                ModuleSource::Local(DataSource {
                    specifier: Some(Specifier::InlineBytes(bytes)),
                    ..Default::default()
                })
            }
            (None, Some(remote)) => ModuleSource::Remote(RemoteDataSource {
                http_uri: Some(HttpUri {
                    uri: remote.uri.clone(),
                    http_upstream_type: Some(HttpUpstreamType::Cluster(remote.cluster.clone())),
                    timeout: Some(milliseconds(remote.timeout_ms())),
                }),
                sha256: remote.sha256.clone(),
                ..Default::default()
            }),
            (None, None) => {
                return Err(TranslateError::at(
                    &path.field("module"),
                    "set exactly one of inlineBase64 or remote",
                ));
            }
        };
        let failure_policy = if self.fail_open {
            FailurePolicy::FailOpen
        } else {
            FailurePolicy::FailClosed
        };
        #[allow(deprecated)] // `fail_open` is deprecated; only `failure_policy` is set.
        let config = PluginConfig {
            root_id: self.root_id.clone().unwrap_or_default(),
            configuration: self.configuration.as_ref().map(|value| {
                any(&StringValue {
                    value: value.clone(),
                })
            }),
            failure_policy: failure_policy as i32,
            vm: Some(Vm::VmConfig(VmConfig {
                runtime: V8.to_string(),
                code: Some(AsyncDataSource {
                    specifier: Some(code),
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        Ok(any(&Wasm {
            config: Some(config),
        }))
    }
}
