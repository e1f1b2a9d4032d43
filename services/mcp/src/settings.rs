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
}

impl McpConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            addr: env::parsed("FLOWPLANE_MCP_ADDR", SocketAddr::from(([0, 0, 0, 0], 8091)))?,
            api_url: env::string("FLOWPLANE_API_URL", "http://127.0.0.1:8080"),
            allowed_hosts: env::string("FLOWPLANE_MCP_ALLOWED_HOSTS", "localhost,127.0.0.1,::1")
                .split(',')
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
        })
    }
}
