//! `flowplane learn`: learning sessions from the command line — start one on a listener, stop
//! it, and read what it learned (a table of endpoints, or the OpenAPI document).

use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, problem};
use crate::commands::{print, text};

#[derive(Subcommand)]
pub enum Learn {
    /// Start learning from a listener's traffic: creates the session if it does not exist,
    /// then activates it.
    Start(Start),
    /// Stop a session; what it learned stays.
    Stop(Session),
    /// What a session learned: endpoints, samples, statuses.
    Endpoints(Session),
    /// What a session learned, as an OpenAPI 3.1 document (JSON).
    Openapi(OpenApi),
}

#[derive(Args)]
pub struct Session {
    /// The session's name.
    name: String,
    #[arg(long)]
    team: String,
}

#[derive(Args)]
pub struct Start {
    /// The session's name.
    name: String,
    #[arg(long)]
    team: String,
    /// The listener whose traffic to learn from (needed when the session is new).
    #[arg(long)]
    listener: Option<String>,
    /// Only paths under this prefix (default `/`).
    #[arg(long)]
    path_prefix: Option<String>,
}

#[derive(Args)]
pub struct OpenApi {
    /// The session's name.
    name: String,
    #[arg(long)]
    team: String,
    /// The upstream's URL, written as the document's server (so it imports back).
    #[arg(long)]
    server_url: Option<String>,
}

fn session_path(team: &str, name: &str) -> String {
    format!("/teams/{team}/learning-sessions/{name}")
}

pub async fn learn(client: &Client, command: Learn, out: Output) -> anyhow::Result<()> {
    match command {
        Learn::Start(args) => start(client, args, out).await,
        Learn::Stop(args) => {
            let path = format!("{}/stop", session_path(&args.team, &args.name));
            let session = client.call(Method::POST, &path, None).await?;
            print(&session, out, |s| {
                println!(
                    "learning session {} is {}",
                    text(s, "name"),
                    text(s, "state")
                );
            });
            Ok(())
        }
        Learn::Endpoints(args) => {
            let path = format!("{}/endpoints", session_path(&args.team, &args.name));
            let learned = client.call(Method::GET, &path, None).await?;
            print(&learned["items"], out, print_endpoints);
            Ok(())
        }
        Learn::Openapi(args) => {
            let mut path = format!("{}/openapi", session_path(&args.team, &args.name));
            if let Some(url) = &args.server_url {
                path.push_str(&format!("?serverUrl={url}"));
            }
            let document = client.call(Method::GET, &path, None).await?;
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(())
        }
    }
}

async fn start(client: &Client, args: Start, out: Output) -> anyhow::Result<()> {
    let path = session_path(&args.team, &args.name);
    let existing = client.send(Method::GET, &path, None).await?;
    if existing.status == StatusCode::NOT_FOUND {
        let Some(listener) = &args.listener else {
            anyhow::bail!(
                "session '{}' does not exist: pass --listener to create it",
                args.name
            );
        };
        let mut body = json!({"name": args.name, "listener": listener, "state": "active"});
        if let Some(prefix) = &args.path_prefix {
            body["pathPrefix"] = Value::from(prefix.as_str());
        }
        let created = client
            .call(
                Method::POST,
                &format!("/teams/{}/learning-sessions", args.team),
                Some(&body),
            )
            .await?;
        return report(&created, out);
    }
    if !existing.status.is_success() {
        return Err(problem(&existing));
    }
    let activated = client
        .call(Method::POST, &format!("{path}/activate"), None)
        .await?;
    report(&activated, out)
}

fn report(session: &Value, out: Output) -> anyhow::Result<()> {
    print(session, out, |s| {
        println!(
            "learning session {} is {} on listener {} (paths under {})",
            text(s, "name"),
            text(s, "state"),
            text(s, "listener"),
            text(s, "pathPrefix")
        );
    });
    Ok(())
}

fn print_endpoints(items: &Value) {
    println!("{:<8} {:<48} {:>8}  STATUSES", "METHOD", "PATH", "SAMPLES");
    for e in items.as_array().into_iter().flatten() {
        let statuses: Vec<String> = e["responses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!("{}×{}", r["status"], r["samples"]))
            .collect();
        println!(
            "{:<8} {:<48} {:>8}  {}",
            text(e, "method"),
            text(e, "path"),
            e["samples"],
            statuses.join(" ")
        );
    }
}
