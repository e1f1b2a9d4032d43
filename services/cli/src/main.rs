//! The `flowplane` command: a REST client for people and scripts, and `flowplane up`, which
//! runs every service in one process for a laptop or a demo (still speaking the same internal
//! gRPC contracts between them).

mod client;
mod commands;
mod credentials;
mod identity_commands;
mod learning_commands;
mod platform;
mod report_commands;
mod up;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "flowplane",
    version,
    about = "Flowplane: an Envoy control plane"
)]
struct Cli {
    /// Base URL of the REST API.
    #[arg(
        long,
        global = true,
        env = "FLOWPLANE_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    api_url: String,
    /// A personal access token (fp_pat_...). Without one, the session from
    /// `flowplane auth login` is used.
    #[arg(long, global = true, env = "FLOWPLANE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run config, xds-server and api-gateway in this process (creates and migrates the
    /// database; uses NATS when reachable, else an in-process bus).
    Up,
    /// Create the first platform admin with the one-time setup token; prints its token.
    Bootstrap(commands::Bootstrap),
    /// Create or update resources from a JSON or YAML file (one object, or a list).
    Apply(commands::Apply),
    /// List resources of a kind, or show one.
    Get(commands::Get),
    /// Delete a resource.
    Delete(commands::Delete),
    /// Print a service's own credential on internal gRPC, derived from
    /// `FLOWPLANE_SERVICE_SECRET` (give it to that service as `FLOWPLANE_SERVICE_CREDENTIAL`).
    ServiceCredential(ServiceCredentialArgs),
    /// Print a dataplane's Envoy bootstrap.
    EnvoyConfig(commands::EnvoyConfig),
    /// Organizations (platform admin).
    #[command(subcommand)]
    Org(commands::Org),
    /// Personal access tokens.
    #[command(subcommand)]
    Token(commands::Token),
    /// Teams of an organization (organization admins create them).
    #[command(subcommand)]
    Team(commands::Team),
    /// Sessions: login, logout, whoami, and registering with an invite.
    #[command(subcommand)]
    Auth(identity_commands::Auth),
    /// Organization members (organization admins).
    #[command(subcommand)]
    Member(identity_commands::Member),
    /// Invitations into an organization (organization admins).
    #[command(subcommand)]
    Invite(identity_commands::Invite),
    /// Import an API description as an API definition (`import openapi FILE --team T`).
    #[command(subcommand)]
    Import(platform::Import),
    /// Expose an upstream URL at a path through Envoy in one call.
    Expose(platform::Expose),
    /// Stop exposing what `expose` exposed.
    Unexpose(platform::Unexpose),
    /// API definitions (the Platform API): list, get, delete.
    #[command(subcommand)]
    Api(platform::Api),
    /// Learning sessions: learn an API from a listener's live traffic.
    #[command(subcommand)]
    Learn(learning_commands::Learn),
    /// Reports about a team (route flows, usage, request traces).
    #[command(subcommand)]
    Report(report_commands::Report),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut client = client::Client::new(&cli.api_url, cli.token.clone());
    if cli.token.is_none()
        && let Some(session) = credentials::load(client.base())
    {
        client = client.with_session(&session.session_token, &session.csrf_token);
    }
    let out = cli.output;
    match cli.command {
        Command::Up => up::run().await,
        Command::ServiceCredential(args) => print_service_credential(&args),
        Command::Bootstrap(args) => commands::bootstrap(&client, args, out).await,
        Command::Apply(args) => commands::apply(&client, args, out).await,
        Command::Get(args) => commands::get(&client, args, out).await,
        Command::Delete(args) => commands::delete(&client, args).await,
        Command::EnvoyConfig(args) => commands::envoy_config(&client, args).await,
        Command::Org(cmd) => commands::org(&client, cmd, out).await,
        Command::Token(cmd) => commands::token(&client, cmd, out).await,
        Command::Team(cmd) => commands::team(&client, cmd, out).await,
        Command::Auth(cmd) => identity_commands::auth(&client, cmd, out).await,
        Command::Member(cmd) => identity_commands::member(&client, cmd, out).await,
        Command::Invite(cmd) => identity_commands::invite(&client, cmd, out).await,
        Command::Import(cmd) => platform::import(&client, cmd, out).await,
        Command::Expose(args) => platform::expose(&client, args, out).await,
        Command::Unexpose(args) => platform::unexpose(&client, args).await,
        Command::Api(cmd) => platform::api(&client, cmd, out).await,
        Command::Learn(cmd) => learning_commands::learn(&client, cmd, out).await,
        Command::Report(cmd) => report_commands::report(&client, cmd, out).await,
    }
}

#[derive(clap::Args)]
struct ServiceCredentialArgs {
    /// api-gateway, xds-server, learning or ratelimit.
    service: String,
}

/// Prints `args.service`'s credential under the secret in `FLOWPLANE_SERVICE_SECRET`.
fn print_service_credential(args: &ServiceCredentialArgs) -> anyhow::Result<()> {
    use flowplane_runtime::credential::{Service, ServiceSecret};
    let service = Service::parse(&args.service).ok_or_else(|| {
        let names: Vec<_> = Service::ALL.iter().map(|s| s.name()).collect();
        anyhow::anyhow!("no service '{}': one of {}", args.service, names.join(", "))
    })?;
    let secret = std::env::var("FLOWPLANE_SERVICE_SECRET")
        .map_err(|_| anyhow::anyhow!("FLOWPLANE_SERVICE_SECRET is not set"))?;
    println!("{}", ServiceSecret::new(&secret)?.credential(service));
    Ok(())
}
