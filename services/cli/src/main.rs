//! The `flowplane` command: a REST client for people and scripts, and `flowplane up`, which
//! runs every service in one process for a laptop or a demo (still speaking the same internal
//! gRPC contracts between them).

mod client;
mod commands;
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
    /// A personal access token (fp_pat_...).
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
    /// Print a dataplane's Envoy bootstrap.
    EnvoyConfig(commands::EnvoyConfig),
    /// Organizations (platform admin).
    #[command(subcommand)]
    Org(commands::Org),
    /// Personal access tokens.
    #[command(subcommand)]
    Token(commands::Token),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let client = client::Client::new(&cli.api_url, cli.token.clone());
    let out = cli.output;
    match cli.command {
        Command::Up => up::run().await,
        Command::Bootstrap(args) => commands::bootstrap(&client, args, out).await,
        Command::Apply(args) => commands::apply(&client, args, out).await,
        Command::Get(args) => commands::get(&client, args, out).await,
        Command::Delete(args) => commands::delete(&client, args).await,
        Command::EnvoyConfig(args) => commands::envoy_config(&client, args).await,
        Command::Org(cmd) => commands::org(&client, cmd, out).await,
        Command::Token(cmd) => commands::token(&client, cmd, out).await,
    }
}
