//! How traffic reaches the learning service: usage counts and learning sessions.
//!
//! Usage: every HTTP connection manager sends Envoy's access log of each request, in
//! batches, over gRPC to the learning service (`envoy.access_loggers.http_grpc`, named after
//! the listener). Envoy buffers and drops rather than wait, so a slow learning service costs
//! requests nothing; the service counts requests per route, cluster and status.
//!
//! Learning sessions: every HTTP connection manager carries one extension-config
//! (ECDS) filter slot named after its listener, just before the router. Each listener also
//! serves its slot's idle configuration, an external processor that sends nothing; an active
//! learning session serves the slot's capturing configuration instead, which wins while the
//! session is active. Stopping a session is then an update back to idle, never a removal
//! (state-of-the-world ECDS has no removals). The capturing processor runs in observability mode
//! (Envoy copies headers and bodies to the learning service and never waits for it), so a
//! session starts and stops without re-creating the listener or its connections, and a slow
//! or absent learning service never delays or fails a request.

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::accesslog::v3::access_log::ConfigType as AccessLogConfig;
use envoy_types::pb::envoy::config::core::v3::ApiVersion;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::extensions::access_loggers::grpc::v3::{
    CommonGrpcAccessLogConfig, HttpGrpcAccessLogConfig,
};
use envoy_types::pb::envoy::config::core::v3::{
    ExtensionConfigSource, GrpcService, HeaderValue, TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    ExternalProcessor, HeaderForwardingRules, ProcessingMode,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{ListStringMatcher, StringMatcher};
use flowplane_domain::learning_session::{LearningSessionSpec, SessionState};
use prost::Name;

use crate::bootstrap::LEARNING_CLUSTER;
use crate::envoy_core::{any, milliseconds};
use crate::resource::{EXTENSION_CONFIG_TYPE, EncodedResource, encode};

/// gRPC metadata on the learning service's streams: which team's session the traffic is for,
/// and the path prefix the session learns from.
pub const TEAM_HEADER: &str = "x-flowplane-team";
pub const SESSION_HEADER: &str = "x-flowplane-learning-session";
pub const PATH_PREFIX_HEADER: &str = "x-flowplane-learning-path-prefix";

/// The only request and response headers Envoy sends the learning service: what it needs to
/// name an endpoint and read a body. Credentials and cookies never leave Envoy.
const FORWARDED_HEADERS: [&str; 4] = [":method", ":path", ":status", "content-type"];

const SLOT_PREFIX: &str = "flowplane.learning/";

/// The access log that counts `listener`'s requests (its `log_name` is the listener's name).
pub(crate) fn usage_log(listener: &str) -> AccessLog {
    let config = HttpGrpcAccessLogConfig {
        common_config: Some(CommonGrpcAccessLogConfig {
            log_name: listener.to_string(),
            grpc_service: Some(learning_service(Vec::new())),
            transport_api_version: ApiVersion::V3 as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    AccessLog {
        name: "envoy.access_loggers.http_grpc".into(),
        config_type: Some(AccessLogConfig::TypedConfig(any(&config))),
        ..Default::default()
    }
}

/// The ECDS resource name (and filter name) of `listener`'s learning slot.
pub fn slot_name(listener: &str) -> String {
    format!("{SLOT_PREFIX}{listener}")
}

/// The listener whose learning slot `slot` is.
pub fn slot_listener(slot: &str) -> Option<&str> {
    slot.strip_prefix(SLOT_PREFIX)
}

/// The idle configuration of `listener`'s slot, which the listener serves beside itself.
pub(crate) fn idle_slot(listener: &str) -> EncodedResource {
    let slot = slot_name(listener);
    let config = TypedExtensionConfig {
        name: slot.clone(),
        typed_config: Some(any(&idle_processor())),
    };
    encode(&slot, EXTENSION_CONFIG_TYPE, &config)
}

/// The learning slot of `listener`'s connection managers.
pub(crate) fn slot(listener: &str) -> HttpFilter {
    HttpFilter {
        name: slot_name(listener),
        config_type: Some(ConfigType::ConfigDiscovery(ExtensionConfigSource {
            config_source: Some(crate::envoy_core::ads_config_source()),
            default_config: Some(any(&idle_processor())),
            apply_default_config_without_warming: true,
            type_urls: vec![ExternalProcessor::type_url()],
        })),
        ..Default::default()
    }
}

/// What an active session puts in its listener's slot; nothing for a session that is not
/// active (the slot falls back to its idle default).
pub fn translate_learning_session(
    team: &str,
    name: &str,
    session: &LearningSessionSpec,
) -> Vec<EncodedResource> {
    if session.state != SessionState::Active {
        return Vec::new();
    }
    let slot = slot_name(&session.listener);
    let config = TypedExtensionConfig {
        name: slot.clone(),
        typed_config: Some(any(&capturing_processor(team, name, &session.path_prefix))),
    };
    vec![encode(&slot, EXTENSION_CONFIG_TYPE, &config)]
}

/// Sends nothing: every part of the exchange is skipped.
fn idle_processor() -> ExternalProcessor {
    ExternalProcessor {
        grpc_service: Some(learning_service(Vec::new())),
        failure_mode_allow: true,
        processing_mode: Some(processing_mode(HeaderSendMode::Skip, BodySendMode::None)),
        ..Default::default()
    }
}

/// Copies headers and streamed bodies to the learning service without waiting for it.
fn capturing_processor(team: &str, session: &str, path_prefix: &str) -> ExternalProcessor {
    let metadata = [
        (TEAM_HEADER, team),
        (SESSION_HEADER, session),
        (PATH_PREFIX_HEADER, path_prefix),
    ]
    .into_iter()
    .map(|(key, value)| HeaderValue {
        key: key.to_string(),
        value: value.to_string(),
        ..Default::default()
    })
    .collect();
    let allowed = FORWARDED_HEADERS
        .iter()
        .map(|h| StringMatcher {
            match_pattern: Some(MatchPattern::Exact((*h).to_string())),
            ..Default::default()
        })
        .collect();
    ExternalProcessor {
        grpc_service: Some(learning_service(metadata)),
        failure_mode_allow: true,
        observability_mode: true,
        processing_mode: Some(processing_mode(
            HeaderSendMode::Send,
            BodySendMode::Streamed,
        )),
        forward_rules: Some(HeaderForwardingRules {
            allowed_headers: Some(ListStringMatcher { patterns: allowed }),
            ..Default::default()
        }),
        message_timeout: Some(milliseconds(200)),
        ..Default::default()
    }
}

/// The same mode both ways; trailers are never sent (nothing learned needs them).
fn processing_mode(headers: HeaderSendMode, bodies: BodySendMode) -> ProcessingMode {
    ProcessingMode {
        request_header_mode: headers as i32,
        response_header_mode: headers as i32,
        request_body_mode: bodies as i32,
        response_body_mode: bodies as i32,
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    }
}

fn learning_service(initial_metadata: Vec<HeaderValue>) -> GrpcService {
    GrpcService {
        target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
            cluster_name: LEARNING_CLUSTER.to_string(),
            ..Default::default()
        })),
        initial_metadata,
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use prost::Message;

    fn session(state: SessionState) -> LearningSessionSpec {
        LearningSessionSpec {
            listener: "edge".into(),
            path_prefix: "/api".into(),
            state,
            description: None,
        }
    }

    #[test]
    fn only_an_active_session_fills_its_listeners_slot() {
        assert!(translate_learning_session("t", "s", &session(SessionState::Pending)).is_empty());
        assert!(translate_learning_session("t", "s", &session(SessionState::Stopped)).is_empty());
        let active = translate_learning_session("payments", "s1", &session(SessionState::Active));
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].name, "flowplane.learning/edge");
        assert_eq!(active[0].type_url, EXTENSION_CONFIG_TYPE);
        let config = TypedExtensionConfig::decode(active[0].any.value.as_slice()).unwrap();
        assert_eq!(config.name, slot_name("edge"));
        let processor =
            ExternalProcessor::decode(config.typed_config.unwrap().value.as_slice()).unwrap();
        assert!(processor.observability_mode && processor.failure_mode_allow);
        let metadata: Vec<(String, String)> = processor
            .grpc_service
            .unwrap()
            .initial_metadata
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect();
        assert!(metadata.contains(&(TEAM_HEADER.into(), "payments".into())));
        assert!(metadata.contains(&(SESSION_HEADER.into(), "s1".into())));
        assert!(metadata.contains(&(PATH_PREFIX_HEADER.into(), "/api".into())));
        let allowed = processor
            .forward_rules
            .unwrap()
            .allowed_headers
            .unwrap()
            .patterns;
        assert_eq!(
            allowed.len(),
            FORWARDED_HEADERS.len(),
            "no credential header is copied"
        );
    }

    #[test]
    fn the_idle_slot_sends_nothing_and_does_not_wait_for_ecds() {
        let filter = slot("edge");
        assert_eq!(filter.name, "flowplane.learning/edge");
        let Some(ConfigType::ConfigDiscovery(source)) = filter.config_type else {
            panic!("the slot is discovered over ECDS")
        };
        assert!(source.apply_default_config_without_warming);
        let idle =
            ExternalProcessor::decode(source.default_config.unwrap().value.as_slice()).unwrap();
        let mode = idle.processing_mode.unwrap();
        assert_eq!(mode.request_header_mode, HeaderSendMode::Skip as i32);
        assert_eq!(mode.response_header_mode, HeaderSendMode::Skip as i32);
        assert_eq!(mode.request_body_mode, BodySendMode::None as i32);
    }
}
