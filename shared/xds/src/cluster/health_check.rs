//! Active health checks: `HealthCheck` → Envoy `HealthCheck`, one per entry.

use envoy_types::pb::envoy::config::core::v3::HealthCheck as EnvoyHealthCheck;
use envoy_types::pb::envoy::config::core::v3::health_check::payload::Payload as PayloadKind;
use envoy_types::pb::envoy::config::core::v3::health_check::{
    GrpcHealthCheck as EnvoyGrpc, HealthChecker, HttpHealthCheck as EnvoyHttp, Payload,
    TcpHealthCheck as EnvoyTcp,
};
use envoy_types::pb::envoy::r#type::v3::{CodecClientType, Int64Range};
use flowplane_domain::cluster::{
    GrpcHealthCheck, HealthCheck, HttpHealthCheck, Probe, TcpHealthCheck, UpstreamProtocol,
};
use flowplane_domain::error::Path;

use crate::TranslateError;
use crate::envoy_core::{milliseconds, u32_value};

pub(super) fn health_checks(
    checks: &[HealthCheck],
    protocol: UpstreamProtocol,
) -> Result<Vec<EnvoyHealthCheck>, TranslateError> {
    let path = Path::root().field("healthChecks");
    checks
        .iter()
        .enumerate()
        .map(|(i, check)| health_check(check, protocol, &path.index(i)))
        .collect()
}

fn health_check(
    check: &HealthCheck,
    protocol: UpstreamProtocol,
    path: &Path,
) -> Result<EnvoyHealthCheck, TranslateError> {
    let checker = match check.probe() {
        Some(Probe::Http(http)) => HealthChecker::HttpHealthCheck(http_check(http, protocol)),
        Some(Probe::Tcp(tcp)) => HealthChecker::TcpHealthCheck(tcp_check(tcp)),
        Some(Probe::Grpc(grpc)) => HealthChecker::GrpcHealthCheck(grpc_check(grpc)),
        None => {
            return Err(TranslateError::at(
                path,
                "set exactly one of http, tcp or grpc",
            ));
        }
    };
    Ok(EnvoyHealthCheck {
        timeout: Some(milliseconds(check.timeout_ms)),
        interval: Some(milliseconds(check.interval_ms)),
        unhealthy_threshold: Some(u32_value(check.unhealthy_threshold)),
        healthy_threshold: Some(u32_value(check.healthy_threshold)),
        no_traffic_interval: check.no_traffic_interval_ms.map(milliseconds),
        health_checker: Some(checker),
        ..Default::default()
    })
}

/// Probes speak the cluster's protocol: an HTTP/2-only upstream would refuse HTTP/1.1 probes.
/// AUTO clusters negotiate by ALPN for traffic, but probes cannot, so they use HTTP/1.1.
fn http_check(http: &HttpHealthCheck, protocol: UpstreamProtocol) -> EnvoyHttp {
    let codec = match protocol {
        UpstreamProtocol::Http2 => CodecClientType::Http2,
        UpstreamProtocol::Http1 | UpstreamProtocol::Auto => CodecClientType::Http1,
    };
    EnvoyHttp {
        path: http.path.clone(),
        host: http.host.clone().unwrap_or_default(),
        // Envoy takes half-open ranges; one range per listed status keeps the mapping obvious.
        expected_statuses: http
            .expected_statuses
            .iter()
            .map(|&status| Int64Range {
                start: i64::from(status),
                end: i64::from(status) + 1,
            })
            .collect(),
        codec_client_type: codec as i32,
        ..Default::default()
    }
}

fn tcp_check(tcp: &TcpHealthCheck) -> EnvoyTcp {
    EnvoyTcp {
        send: tcp.send.as_deref().map(hex_payload),
        receive: tcp.receive.iter().map(|p| hex_payload(p)).collect(),
        ..Default::default()
    }
}

fn grpc_check(grpc: &GrpcHealthCheck) -> EnvoyGrpc {
    EnvoyGrpc {
        service_name: grpc.service_name.clone().unwrap_or_default(),
        authority: grpc.authority.clone().unwrap_or_default(),
        ..Default::default()
    }
}

fn hex_payload(hex: &str) -> Payload {
    Payload {
        payload: Some(PayloadKind::Text(hex.to_string())),
    }
}
