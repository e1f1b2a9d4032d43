//! The mcp service's settings, from `FLOWPLANE_*` variables.

use std::net::SocketAddr;

use flowplane_runtime::env;

#[derive(Debug, Clone)]
pub struct McpConfig {
    /// `FLOWPLANE_MCP_ADDR`: where agents connect (MCP at `/api/v1/mcp/cp`), and `/healthz`,
    /// `/readyz`, `/metrics`.
    pub addr: SocketAddr,
    /// `FLOWPLANE_API_URL`: the api-gateway every tool acts through, with the agent's token.
    pub api_url: String,
    /// `FLOWPLANE_MCP_ALLOWED_HOSTS`: comma-separated `Host` values agents may use (DNS
    /// rebinding protection); loopback names by default.
    pub allowed_hosts: Vec<String>,
    /// Where API tools may call: `FLOWPLANE_MCP_TOOL_ALLOW_LOOPBACK` (default false) and
    /// `FLOWPLANE_MCP_TOOL_DENIED_PORTS` (comma-separated, added to the api-gateway's and mcp's
    /// own ports). See [`crate::destination`].
    pub tool_destinations: crate::destination::DestinationPolicy,
}

impl McpConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let addr = env::parsed("FLOWPLANE_MCP_ADDR", SocketAddr::from(([0, 0, 0, 0], 8091)))?;
        let api_url = env::string("FLOWPLANE_API_URL", "http://127.0.0.1:8080");
        let mut denied_ports = vec![addr.port()];
        denied_ports.extend(port_of(&api_url));
        for raw in env::string("FLOWPLANE_MCP_TOOL_DENIED_PORTS", "").split(',') {
            let raw = raw.trim();
            if !raw.is_empty() {
                denied_ports.push(raw.parse().map_err(|_| {
                    anyhow::anyhow!("FLOWPLANE_MCP_TOOL_DENIED_PORTS: '{raw}' is not a port")
                })?);
            }
        }
        Ok(Self {
            addr,
            tool_destinations: crate::destination::DestinationPolicy {
                allow_loopback: env::parsed("FLOWPLANE_MCP_TOOL_ALLOW_LOOPBACK", false)?,
                denied_ports,
            },
            api_url,
            allowed_hosts: env::string("FLOWPLANE_MCP_ALLOWED_HOSTS", "localhost,127.0.0.1,::1")
                .split(',')
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
        })
    }
}

/// The port of an `http(s)://host[:port]/…` URL.
fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rsplit_once(':') {
        Some((_, port)) if !port.ends_with(']') => port.parse().ok(),
        _ if url.starts_with("https://") => Some(443),
        _ => Some(80),
    }
}
