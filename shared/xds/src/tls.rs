//! TLS transport sockets that take their certificates and trust anchors from SDS secrets by
//! name, over ADS. Envoy warms a listener or cluster until its secrets arrive, and a secret
//! update reaches every context that names it without re-sending the listener or cluster.

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
};
use envoy_types::pb::google::protobuf::BoolValue;
use flowplane_domain::listener::DownstreamTls;

use crate::envoy_core::{ads_config_source, any};

pub(crate) const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// "The secret named `name`, fetched over ADS."
pub(crate) fn sds_secret(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ads_config_source()),
    }
}

pub(crate) fn validation_from(secret: Option<&String>) -> Option<ValidationContextType> {
    secret.map(|name| ValidationContextType::ValidationContextSdsSecretConfig(sds_secret(name)))
}

/// TLS termination for one listener filter chain.
pub(crate) fn downstream_transport_socket(tls: &DownstreamTls) -> TransportSocket {
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds_secret(&tls.certificate_secret)],
            validation_context_type: validation_from(tls.validation_secret.as_ref()),
            alpn_protocols: tls.alpn.clone(),
            ..Default::default()
        }),
        require_client_certificate: tls
            .require_client_certificate
            .then_some(BoolValue { value: true }),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(ConfigType::TypedConfig(any(&context))),
    }
}
