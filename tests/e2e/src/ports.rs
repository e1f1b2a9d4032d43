//! Ports for the services a scenario starts. A service is told its port before it binds it, so
//! the port must stay free in between, while other scenarios run in parallel processes.
//!
//! Two things used to take such a port in that gap: outgoing connections (the kernel gives
//! their local side a port from the ephemeral range, where `bind(0)` also picks) and another
//! scenario picking the same port. So ports come from below the ephemeral range, and each is
//! reserved with a file created exclusively under the temp directory, which every scenario
//! process sees. Reservations older than `STALE` are from finished runs and are reused.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Longer than any scenario runs (nextest ends one after five minutes).
const STALE: Duration = Duration::from_secs(15 * 60);
/// The lowest port handed out: above the well-known and registered ports most daemons use.
const LOWEST: u16 = 10_000;

/// A port no other scenario holds, which nothing has bound right now and which no outgoing
/// connection will take.
pub fn free_port() -> u16 {
    let Some(end) = ephemeral_start().filter(|end| *end > LOWEST + 1_000) else {
        return kernel_pick();
    };
    let span = u64::from(end - LOWEST);
    for _ in 0..1_000 {
        let port = LOWEST + (random() % span) as u16;
        if reserve(port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    kernel_pick()
}

/// The first port of the kernel's ephemeral range (where outgoing connections' ports come
/// from), when the system says.
fn ephemeral_start() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

/// What the kernel picks for `bind(0)`: free now, but not reserved.
fn kernel_pick() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| unreachable!("cannot bind an ephemeral port: {e}"))
}

fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Claims `port` for this scenario; false when another scenario holds it.
fn reserve(port: u16) -> bool {
    let dir = reservations_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return true;
    }
    let path = dir.join(port.to_string());
    let claim = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .is_ok()
    };
    if claim() {
        return true;
    }
    let stale = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_some_and(|age| age > STALE);
    stale && std::fs::remove_file(&path).is_ok() && claim()
}

fn reservations_dir() -> PathBuf {
    std::env::temp_dir().join("flowplane-e2e-ports")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        if let Some(start) = ephemeral_start().filter(|s| *s > LOWEST + 1_000) {
            assert!(
                ports.iter().all(|p| (LOWEST..start).contains(p)),
                "{ports:?}"
            );
        }
        for port in ports {
            TcpListener::bind(("127.0.0.1", port)).expect("a handed-out port is bindable");
        }
    }

    #[test]
    fn a_reserved_port_is_not_reserved_again() {
        let port = free_port();
        assert!(!reserve(port));
    }
}
