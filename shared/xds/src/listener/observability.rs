//! Access logs and tracing of an HTTP connection manager.

use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType as AccessLogConfig;
use envoy_types::pb::envoy::config::accesslog::v3::access_log_filter::FilterSpecifier;
use envoy_types::pb::envoy::config::accesslog::v3::comparison_filter::Op;
use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLog as EnvoyAccessLog, AccessLogFilter, ComparisonFilter, StatusCodeFilter,
};
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, GrpcService, RuntimeUInt32, SubstitutionFormatString,
};
use envoy_types::pb::envoy::config::trace::v3::OpenTelemetryConfig;
use envoy_types::pb::envoy::config::trace::v3::tracing::Http as TracingProvider;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType as ProviderConfig;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::file_access_log::AccessLogFormat as FileFormat;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing as EnvoyTracing;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use flowplane_domain::listener::{AccessLog, AccessLogFormat, Tracing};

use crate::envoy_core::any;

const FILE_LOGGER: &str = "envoy.access_loggers.file";
const OPENTELEMETRY: &str = "envoy.tracers.opentelemetry";

pub(super) fn access_log(log: &AccessLog) -> EnvoyAccessLog {
    let format = log.format.as_ref().map(|format| match format {
        AccessLogFormat::Text { template } => {
            let mut line = template.clone();
            if !line.ends_with('\n') {
                line.push('\n');
            }
            substitution(Format::TextFormatSource(DataSource {
                specifier: Some(Specifier::InlineString(line)),
                ..Default::default()
            }))
        }
        AccessLogFormat::Json { fields } => substitution(Format::JsonFormat(Struct {
            fields: fields
                .iter()
                .map(|(name, template)| {
                    let value = Value {
                        kind: Some(Kind::StringValue(template.clone())),
                    };
                    (name.clone(), value)
                })
                .collect(),
        })),
    });
    let filter = log.min_status.map(|status| AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::StatusCodeFilter(StatusCodeFilter {
            comparison: Some(ComparisonFilter {
                op: Op::Ge as i32,
                value: Some(RuntimeUInt32 {
                    default_value: u32::from(status),
                    // Envoy requires a runtime key; none is ever set, so the default holds.
                    runtime_key: "flowplane.access_log.min_status".to_string(),
                }),
            }),
        })),
    });
    EnvoyAccessLog {
        name: FILE_LOGGER.to_string(),
        filter,
        config_type: Some(AccessLogConfig::TypedConfig(any(&FileAccessLog {
            path: log.path.clone(),
            access_log_format: format,
        }))),
    }
}

fn substitution(format: Format) -> FileFormat {
    FileFormat::LogFormat(SubstitutionFormatString {
        format: Some(format),
        ..Default::default()
    })
}

pub(super) fn tracing(tracing: &Tracing, listener: &str) -> EnvoyTracing {
    let provider = OpenTelemetryConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                cluster_name: tracing.cluster.clone(),
                ..Default::default()
            })),
            ..Default::default()
        }),
        service_name: tracing
            .service_name
            .clone()
            .unwrap_or_else(|| listener.to_string()),
        ..Default::default()
    };
    EnvoyTracing {
        random_sampling: Some(Percent {
            value: tracing.sampling_percent(),
        }),
        provider: Some(TracingProvider {
            name: OPENTELEMETRY.to_string(),
            config_type: Some(ProviderConfig::TypedConfig(any(&provider))),
        }),
        ..Default::default()
    }
}
