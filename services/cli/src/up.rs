//! `flowplane up`: every service in one process.

use std::time::Duration;

use flowplane_api_gateway::ApiGatewayConfig;
use flowplane_config::ConfigServiceConfig;
use flowplane_learning::LearningConfig;
use flowplane_mcp::McpConfig;
use flowplane_ratelimit::RateLimitConfig;
use flowplane_runtime::bus::{Bus, NatsSettings};
use flowplane_runtime::credential::{Service, ServiceSecret};
use flowplane_runtime::{env, shutdown, telemetry};
use flowplane_xds_server::XdsServerConfig;

pub async fn run() -> anyhow::Result<()> {
    telemetry::init("flowplane");
    // One process needs no secret from outside; make one up unless the operator set it. It is
    // kept across restarts: it also keys the dataplane tokens in Envoy bootstraps. Each service
    // still gets only its own credential derived from it, as in a split deployment.
    let service_secret = match env::optional("FLOWPLANE_SERVICE_SECRET") {
        Some(secret) => secret,
        None => kept_dev_secret("service.token", "FLOWPLANE_SERVICE_SECRET", || {
            let mut bytes = [0u8; 24];
            getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            Ok(hex::encode(bytes))
        })?,
    };
    let mut config = ConfigServiceConfig::from_env()?;
    config.create_database = true;
    if config.secrets_key.is_none() {
        config.secrets_key = Some(kept_dev_secret(
            "secrets.key",
            "FLOWPLANE_SECRETS_KEY",
            || Ok(flowplane_config::secrets_key::SecretsKey::generate_base64()?),
        )?);
    }
    let secret = ServiceSecret::new(&service_secret)
        .map_err(|e| anyhow::anyhow!("FLOWPLANE_SERVICE_SECRET: {e}"))?;
    config.service_secret = service_secret;
    let mut xds = XdsServerConfig::from_env()?;
    xds.service_credential = secret.credential(Service::XdsServer);
    let mut api = ApiGatewayConfig::from_env()?;
    api.service_credential = secret.credential(Service::ApiGateway);
    let mut ratelimit = RateLimitConfig::from_env()?;
    ratelimit.service_credential = secret.credential(Service::Ratelimit);
    ratelimit.config_url.clone_from(&api.config_url);
    let mut learning = LearningConfig::from_env()?;
    learning.service_credential = secret.credential(Service::Learning);
    learning.config_url.clone_from(&api.config_url);
    let mut mcp = McpConfig::from_env()?;
    // A laptop's Envoy listens on loopback: API tools may call it there (still never on the
    // control plane's own ports).
    if std::env::var_os("FLOWPLANE_MCP_TOOL_ALLOW_LOOPBACK").is_none() {
        mcp.tool_destinations.allow_loopback = true;
    }
    if std::env::var_os("FLOWPLANE_API_URL").is_none() {
        // The gateway of this process, reached on loopback whatever address it binds.
        mcp.api_url = format!("http://127.0.0.1:{}", api.api_addr.port());
        mcp.tool_destinations.denied_ports.push(api.api_addr.port());
    }
    loopback_unless_set("FLOWPLANE_XDS_ADDR", &mut xds.xds_addr);
    loopback_unless_set("FLOWPLANE_RATELIMIT_ADDR", &mut ratelimit.grpc_addr);
    loopback_unless_set("FLOWPLANE_LEARNING_ADDR", &mut learning.grpc_addr);
    loopback_unless_set("FLOWPLANE_MCP_ADDR", &mut mcp.addr);
    loopback_unless_set("FLOWPLANE_API_ADDR", &mut api.api_addr);
    // Every port first, before anything starts: a second `up` on a taken port must not run
    // half-started, nor have any of its services reach the first instance's.
    ports_free(&[
        ("FLOWPLANE_CONFIG_GRPC_ADDR", config.grpc_addr),
        ("FLOWPLANE_CONFIG_HTTP_ADDR", config.http_addr),
        ("FLOWPLANE_XDS_ADDR", xds.xds_addr),
        ("FLOWPLANE_XDS_HTTP_ADDR", xds.http_addr),
        ("FLOWPLANE_API_ADDR", api.api_addr),
        ("FLOWPLANE_RATELIMIT_ADDR", ratelimit.grpc_addr),
        ("FLOWPLANE_RATELIMIT_HTTP_ADDR", ratelimit.http_addr),
        ("FLOWPLANE_LEARNING_ADDR", learning.grpc_addr),
        ("FLOWPLANE_LEARNING_HTTP_ADDR", learning.http_addr),
        ("FLOWPLANE_MCP_ADDR", mcp.addr),
    ])?;
    let bus = choose_bus(&config.nats, &config.nats_prefix).await;

    tracing::info!("Flowplane is starting");
    tracing::info!(
        "  REST API      http://{}/api/v1  (OpenAPI: /api-docs/openapi.json, Swagger UI: /swagger-ui/)",
        api.api_addr
    );
    tracing::info!("  xDS (ADS)     {}", xds.xds_addr);
    tracing::info!("  config gRPC   {}", config.grpc_addr);
    tracing::info!(
        "  ratelimit     {}  (Envoy's Rate Limit Service)",
        ratelimit.grpc_addr
    );
    tracing::info!(
        "  learning      {}  (Envoy's External Processor, for learning sessions)",
        learning.grpc_addr
    );
    tracing::info!(
        "  MCP (agents)  http://{}{}",
        mcp.addr,
        flowplane_mcp::MCP_PATH
    );
    tracing::info!(
        "  health        http://{}/healthz (config), http://{}/healthz (xds)",
        config.http_addr,
        xds.http_addr
    );
    tracing::info!("  database      {}", env::redact_url(&config.database_url));
    tracing::info!("  events        {}", bus.describe());

    // One notice channel shared by config and the gateway: the bus's NATS connection, or an
    // in-process channel.
    let notices = bus.auth_notices();

    // All or nothing: the first service to end (a port taken, a database missing) stops the
    // others, and `up` exits with its error, so no half-started instance keeps serving while
    // its peers talk to another instance's services.
    let (trigger, stop) = shutdown::channel();
    let trigger = std::sync::Arc::new(trigger);
    let on_signal = shutdown::on_signals();
    let signalled = trigger.clone();
    tokio::spawn(async move {
        on_signal.wait().await;
        signalled.fire();
    });
    let mut services = tokio::task::JoinSet::new();
    let (config_bus, config_stop) = (bus.clone(), stop.clone());
    let config_notices = notices.clone();
    services.spawn(async move {
        let result =
            flowplane_config::run_with_notices(config, config_bus, config_notices, config_stop)
                .await;
        ("config", result)
    });
    let xds_stop = stop.clone();
    services.spawn(async move {
        (
            "xds-server",
            flowplane_xds_server::run(xds, bus, xds_stop).await,
        )
    });
    let api_stop = stop.clone();
    services.spawn(async move {
        let result = flowplane_api_gateway::run_with_notices(api, Some(notices), api_stop).await;
        ("api-gateway", result)
    });
    let ratelimit_stop = stop.clone();
    services.spawn(async move {
        (
            "ratelimit",
            flowplane_ratelimit::run(ratelimit, ratelimit_stop).await,
        )
    });
    let learning_stop = stop.clone();
    services.spawn(async move {
        (
            "learning",
            flowplane_learning::run(learning, learning_stop).await,
        )
    });
    services.spawn(async move { ("mcp", flowplane_mcp::run(mcp, stop).await) });

    let mut failure = None;
    while let Some(joined) = services.join_next().await {
        let (name, result) = match joined {
            Ok(ended) => ended,
            Err(e) => ("a service", Err(anyhow::anyhow!("crashed: {e}"))),
        };
        match result {
            Err(e) if failure.is_none() => {
                tracing::error!("{name} failed: {e:#}; stopping every service");
                failure = Some(anyhow::anyhow!("{name} failed: {e:#}"));
            }
            Err(e) => tracing::warn!("{name} stopped: {e:#}"),
            Ok(()) => {}
        }
        trigger.fire();
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Fails, naming the setting, when any address cannot be bound now (another process holds
/// it, or two settings name the same one). The listeners close at once; the services bind
/// their own a moment later.
fn ports_free(addresses: &[(&str, std::net::SocketAddr)]) -> anyhow::Result<()> {
    let mut held = Vec::with_capacity(addresses.len());
    for (setting, addr) in addresses {
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            anyhow::anyhow!(
                "{setting}={addr} cannot be used: {e} (another Flowplane or another program \
                 holds it; set {setting} to a free address)"
            )
        })?;
        held.push(listener);
    }
    Ok(())
}

/// `up` is for a laptop: every port it listens on is loopback-only unless its setting says
/// otherwise (the services' own defaults listen on every interface, for containers).
fn loopback_unless_set(setting: &str, addr: &mut std::net::SocketAddr) {
    if std::env::var_os(setting).is_none() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
}

/// A laptop install needs no key management: the first `flowplane up` generates each secret
/// it needs (the secrets key, the service token) and keeps it beside the CLI credentials
/// (mode 0600), so stored secrets and issued Envoy bootstraps survive restarts. The secrets
/// key file is the key to every stored secret; production sets `setting` instead.
fn kept_dev_secret(
    file: &str,
    setting: &str,
    generate: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    use std::io::Write;
    let path = crate::credentials::path()?.with_file_name(file);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        tracing::info!(path = %path.display(), "{setting} is unset; using the development value");
        return Ok(existing.trim().to_string());
    }
    let value = generate()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(&path)?.write_all(value.as_bytes())?;
    tracing::warn!(path = %path.display(), "{setting} is unset; generated a development value (set {setting} in production)");
    Ok(value)
}

/// NATS when configured or reachable, otherwise the in-process bus.
async fn choose_bus(nats: &NatsSettings, prefix: &str) -> Bus {
    let explicit = env::optional("FLOWPLANE_NATS_URL").is_some();
    match tokio::time::timeout(Duration::from_secs(3), Bus::nats(nats, prefix)).await {
        Ok(Ok(bus)) => bus,
        Ok(Err(e)) if explicit => {
            tracing::warn!(error = %e, "FLOWPLANE_NATS_URL is set but NATS is unreachable; using the in-process bus");
            Bus::local()
        }
        _ => {
            tracing::info!(
                "NATS not reachable at {}; using the in-process bus (fine for one process)",
                nats.redacted_url()
            );
            Bus::local()
        }
    }
}
