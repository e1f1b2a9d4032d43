//! Builders for the `envoy.config.core.v3` and `google.protobuf` values that clusters, routes
//! and listeners share (addresses, durations, wrappers, typed extensions, ADS sources), so the
//! translation modules read in domain terms.

use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, TypedExtensionConfig,
    address,
};
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use flowplane_domain::error::Path;
use prost::{Message, Name};

use crate::TranslateError;

pub(crate) fn seconds(value: u32) -> Duration {
    Duration {
        seconds: i64::from(value),
        nanos: 0,
    }
}

pub(crate) fn milliseconds(value: u32) -> Duration {
    Duration {
        seconds: i64::from(value / 1000),
        nanos: i32::try_from((value % 1000) * 1_000_000).unwrap_or(0),
    }
}

pub(crate) fn u32_value(value: u32) -> UInt32Value {
    UInt32Value { value }
}

/// Packs a message into the `Any` Envoy expects in `typed_config` fields.
pub(crate) fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// A named extension whose config is `message`; Envoy picks the implementation by the
/// payload's type URL, the name is for humans and stats.
pub(crate) fn typed_extension<M: Message + Name>(name: &str, message: &M) -> TypedExtensionConfig {
    TypedExtensionConfig {
        name: name.to_string(),
        typed_config: Some(any(message)),
    }
}

/// A TCP socket address. `host` may be a name only where Envoy resolves it (DNS clusters).
pub(crate) fn socket_address(host: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// Domain validation already bounds ports; this backstop keeps an out-of-range value from
/// reaching Envoy as a NACK.
pub(crate) fn checked_port(port: u32, path: &Path) -> Result<u32, TranslateError> {
    if (1..=65535).contains(&port) {
        Ok(port)
    } else {
        Err(TranslateError::at(path, "must be between 1 and 65535"))
    }
}

/// An optional name or prefix, else `default`. Envoy requires these non-empty, so an explicit
/// empty string is an error rather than a silent fallback.
pub(crate) fn given_or(
    value: Option<&str>,
    default: &str,
    path: &Path,
) -> Result<String, TranslateError> {
    match value {
        None => Ok(default.to_string()),
        Some("") => Err(TranslateError::at(path, "must not be empty")),
        Some(value) => Ok(value.to_string()),
    }
}

/// "Fetch this over the same ADS stream", in the v3 transport.
pub(crate) fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_outside_the_tcp_range_are_rejected_at_their_path() {
        let path = Path::root().field("port");
        assert_eq!(checked_port(1, &path), Ok(1));
        assert_eq!(checked_port(65535, &path), Ok(65535));
        for bad in [0, 65536] {
            let error = checked_port(bad, &path).err();
            assert_eq!(error.map(|e| e.field), Some("/port".to_string()));
        }
    }

    #[test]
    fn given_values_win_over_defaults_but_may_not_be_empty() {
        let path = Path::root().field("statPrefix");
        assert_eq!(given_or(None, "dflt", &path), Ok("dflt".to_string()));
        assert_eq!(
            given_or(Some("mine"), "dflt", &path),
            Ok("mine".to_string())
        );
        assert_eq!(
            given_or(Some(""), "dflt", &path).map_err(|e| e.field),
            Err("/statPrefix".to_string())
        );
    }

    #[test]
    fn typed_extensions_carry_the_payload_type_url() {
        let config = typed_extension("envoy.example", &u32_value(7));
        assert_eq!(config.name, "envoy.example");
        assert_eq!(
            config.typed_config.map(|a| a.type_url),
            Some("type.googleapis.com/google.protobuf.UInt32Value".to_string())
        );
    }
}
