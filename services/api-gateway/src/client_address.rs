//! The client's address: the TCP peer, or, when the peer is a proxy the operator trusts
//! (`FLOWPLANE_TRUSTED_PROXIES`), the address that proxy saw, from `X-Forwarded-For`.
//!
//! Throttles and the audit log key on this address. Behind a load balancer every request's
//! peer is the balancer; taking `X-Forwarded-For` from anyone else would let a client name any
//! address it likes and so dodge the throttle. The header is read right to left, skipping
//! trusted proxies: the first address that is not one is the client, because everything left
//! of it was written by the client itself.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// The resolved client address, in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// An address range: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("`{text}` is not an address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix must be 0 to {max}"))?,
            None => max,
        };
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, address: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u8) {
            match a {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let ((network, width), (candidate, candidate_width)) = (bits(self.network), bits(address));
        if width != candidate_width {
            return false;
        }
        let prefix = u32::from(self.prefix);
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix)
        };
        network & mask == candidate & mask
    }
}

/// Parses `FLOWPLANE_TRUSTED_PROXIES` (comma-separated addresses and ranges).
pub fn parse_list(text: &str) -> Result<Vec<Cidr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(Cidr::from_str)
        .collect()
}

/// The client behind `peer`, given the request's headers and the trusted proxies.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |a: IpAddr| trusted.iter().any(|cidr| cidr.contains(a));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    // Every X-Forwarded-For line, in order, as one list.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(address) => {
                client = address;
                if !is_trusted(address) {
                    break;
                }
            }
            // Garbage where an address should be: stop at the last address we could trust.
            Err(_) => break,
        }
    }
    client
}

/// Puts the [`ClientAddress`] of each request into its extensions.
pub async fn middleware(
    State(trusted): State<std::sync::Arc<Vec<Cidr>>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = resolve(peer.ip(), request.headers(), &trusted);
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", v.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_they_say() {
        let ten: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(ten.contains(ip("10.200.3.4")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy.internal".parse::<Cidr>().is_err());
        assert_eq!(parse_list(" 10.0.0.0/8, ,127.0.0.1 ").unwrap().len(), 2);
    }

    #[test]
    fn only_a_trusted_peer_may_name_the_client() {
        let trusted = parse_list("10.0.0.0/8").unwrap();
        // An untrusted peer's header is ignored: it could say anything.
        assert_eq!(
            resolve(ip("198.51.100.1"), &headers(&["203.0.113.9"]), &trusted),
            ip("198.51.100.1")
        );
        // Behind the balancer: the address it saw.
        assert_eq!(
            resolve(ip("10.0.0.5"), &headers(&["203.0.113.9"]), &trusted),
            ip("203.0.113.9")
        );
        // A client that forges a left-hand entry gets its real address, the one the balancer
        // appended; chained trusted proxies are skipped.
        assert_eq!(
            resolve(
                ip("10.0.0.5"),
                &headers(&["1.1.1.1, 203.0.113.9", "10.0.0.9"]),
                &trusted
            ),
            ip("203.0.113.9")
        );
        // No header, or garbage: the peer (or the last trusted hop).
        assert_eq!(
            resolve(ip("10.0.0.5"), &headers(&[]), &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(
            resolve(ip("10.0.0.5"), &headers(&["not-an-address"]), &trusted),
            ip("10.0.0.5")
        );
        // Nothing trusted (the default): the header never counts.
        assert_eq!(
            resolve(ip("10.0.0.5"), &headers(&["203.0.113.9"]), &[]),
            ip("10.0.0.5")
        );
    }
}
