//! External processing over gRPC to a cluster.

use envoy_types::pb::envoy::config::core::v3::GrpcService;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    ExternalProcessor, ProcessingMode,
};
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::filters::ext_proc::{BodyMode, ExtProcFilter};

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::{any, milliseconds};

impl HttpFilterConfig for ExtProcFilter {
    const NAME: &'static str = "envoy.filters.http.ext_proc";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        let p = &self.processing;
        let headers = |send: bool| {
            if send {
                HeaderSendMode::Send
            } else {
                HeaderSendMode::Skip
            }
        } as i32;
        // Trailers are never sent: nothing in the domain asks for them.
        let processing_mode = ProcessingMode {
            request_header_mode: headers(p.request_headers),
            response_header_mode: headers(p.response_headers),
            request_body_mode: body(p.request_body) as i32,
            response_body_mode: body(p.response_body) as i32,
            request_trailer_mode: HeaderSendMode::Skip as i32,
            response_trailer_mode: HeaderSendMode::Skip as i32,
        };
        Ok(any(&ExternalProcessor {
            grpc_service: Some(GrpcService {
                target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                    cluster_name: self.cluster.clone(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            failure_mode_allow: self.failure_mode_allow,
            processing_mode: Some(processing_mode),
            message_timeout: Some(milliseconds(self.timeout_ms())),
            ..Default::default()
        }))
    }
}

fn body(mode: BodyMode) -> BodySendMode {
    match mode {
        BodyMode::None => BodySendMode::None,
        BodyMode::Buffered => BodySendMode::Buffered,
        BodyMode::Streamed => BodySendMode::Streamed,
    }
}
