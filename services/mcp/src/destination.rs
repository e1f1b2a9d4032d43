//! Where API tools may send an agent's call. The mcp service fetches on a tenant's behalf, from
//! inside the operator's network, and hands the answer back: a dataplane's `gatewayHost` naming
//! a cloud metadata address (`169.254.169.254`) or a control-plane port must not become a way to
//! read them. Envoy routing to private addresses stays the tenant's choice; this guards only
//! Flowplane's own process.
//!
//! Always refused: link-local (IPv4 `169.254/16`, IPv6 `fe80::/10`), unspecified, multicast and
//! broadcast addresses, and the control plane's own ports (the api-gateway's, mcp's and any in
//! `FLOWPLANE_MCP_TOOL_DENIED_PORTS`) on any address. Loopback is refused unless
//! `FLOWPLANE_MCP_TOOL_ALLOW_LOOPBACK` is set (`flowplane up` sets it: a laptop's Envoy listens
//! there). A name is resolved once and every address it resolves to is checked; the call goes to
//! the checked address, so a second lookup cannot swap in another.

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    pub allow_loopback: bool,
    pub denied_ports: Vec<u16>,
}

impl DestinationPolicy {
    /// Why `addr` is refused, if it is.
    pub fn refusal(&self, addr: SocketAddr) -> Option<String> {
        let ip = match addr.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let reason = match ip {
            IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
            IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
            ip if ip.is_unspecified() => Some("an unspecified address"),
            ip if ip.is_multicast() => Some("a multicast address"),
            IpAddr::V4(v4) if v4.is_broadcast() => Some("a broadcast address"),
            ip if ip.is_loopback() && !self.allow_loopback => {
                Some("loopback (set FLOWPLANE_MCP_TOOL_ALLOW_LOOPBACK to allow it)")
            }
            _ if self.denied_ports.contains(&addr.port()) => Some("a control-plane port"),
            _ => None,
        };
        reason.map(|r| format!("{addr} is {r}; API tools do not call it"))
    }

    /// Resolves `host:port` and returns the first address, or why it is refused (every address
    /// a name resolves to must be allowed).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect(),
        };
        if let Some(refused) = addrs.iter().find_map(|a| self.refusal(*a)) {
            return Err(refused);
        }
        addrs
            .first()
            .copied()
            .ok_or_else(|| format!("{host} resolves to no address"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn metadata_loopback_and_control_plane_ports_are_refused() {
        let strict = DestinationPolicy {
            allow_loopback: false,
            denied_ports: vec![8080],
        };
        for refused in [
            "169.254.169.254:80",
            "[fe80::1]:80",
            "[::ffff:169.254.169.254]:80",
            "0.0.0.0:10000",
            "127.0.0.1:10000",
            "[::1]:10000",
            "224.0.0.1:80",
            "10.0.0.5:8080",
        ] {
            assert!(strict.refusal(addr(refused)).is_some(), "{refused}");
        }
        assert!(strict.refusal(addr("10.0.0.5:10000")).is_none());
        let laptop = DestinationPolicy {
            allow_loopback: true,
            denied_ports: vec![8080],
        };
        assert!(laptop.refusal(addr("127.0.0.1:10000")).is_none());
        assert!(laptop.refusal(addr("127.0.0.1:8080")).is_some());
        assert!(laptop.refusal(addr("169.254.169.254:80")).is_some());
        assert!(strict.resolve("169.254.169.254", 80).await.is_err());
        assert!(laptop.resolve("localhost", 10000).await.is_ok());
        assert!(strict.resolve("localhost", 10000).await.is_err());
    }
}
