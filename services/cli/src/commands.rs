//! The REST-client commands. Each one is a thin mapping from arguments to API calls.

use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, problem};

/// A resource kind as people type it (`cluster`, `clusters`, `route-config`, ...), as its
/// collection path.
pub(crate) fn collection(kind: &str) -> anyhow::Result<&'static str> {
    Ok(match kind {
        "cluster" | "clusters" => "clusters",
        "route-config" | "route-configs" | "routeConfig" | "routes" => "route-configs",
        "listener" | "listeners" => "listeners",
        "dataplane" | "dataplanes" => "dataplanes",
        "secret" | "secrets" => "secrets",
        "learning-session" | "learning-sessions" | "learningSession" => "learning-sessions",
        other => anyhow::bail!(
            "unknown kind '{other}': use cluster, route-config, listener, dataplane, secret or \
             learning-session"
        ),
    })
}

pub(crate) fn print(value: &Value, out: Output, table: impl FnOnce(&Value)) {
    match out {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Table => table(value),
    }
}

pub(crate) fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("-")
}

#[derive(Args)]
pub struct Bootstrap {
    /// The one-time setup token from the config service's log.
    #[arg(long, env = "FLOWPLANE_SETUP_TOKEN", hide_env_values = true)]
    setup_token: String,
    #[arg(long)]
    email: String,
    #[arg(long)]
    name: String,
    /// The admin's password (at least 12 characters).
    #[arg(long, env = "FLOWPLANE_PASSWORD", hide_env_values = true)]
    password: String,
}

pub async fn bootstrap(client: &Client, args: Bootstrap, out: Output) -> anyhow::Result<()> {
    let body = json!({"email": args.email, "name": args.name, "password": args.password});
    let created = client
        .with_token(&args.setup_token)
        .call(Method::POST, "/bootstrap/initialize", Some(&body))
        .await?;
    print(&created, out, |v| println!("{}", text(v, "token")));
    Ok(())
}

#[derive(Args)]
pub struct Apply {
    /// A JSON or YAML file holding one resource or a list; each has `kind`, `team`, `name`.
    #[arg(short = 'f', long = "file")]
    file: std::path::PathBuf,
    /// Team for documents that do not name one.
    #[arg(long)]
    team: Option<String>,
}

/// The resources in a JSON or YAML file: one document, or a list of them.
pub(crate) fn read_documents(file: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let raw = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let parsed: Value = match serde_json::from_str(&raw) {
        Ok(v) => v,
        Err(_) => serde_yaml_ng::from_str(&raw)
            .map_err(|e| anyhow::anyhow!("{} is neither JSON nor YAML: {e}", file.display()))?,
    };
    Ok(match parsed {
        Value::Array(items) => items,
        single => vec![single],
    })
}

pub async fn apply(client: &Client, args: Apply, out: Output) -> anyhow::Result<()> {
    let documents = read_documents(&args.file)?;
    let mut results = Vec::new();
    for (i, mut document) in documents.into_iter().enumerate() {
        let Some(object) = document.as_object_mut() else {
            anyhow::bail!("document {i} is not an object");
        };
        let kind = object
            .remove("kind")
            .and_then(|k| k.as_str().map(String::from))
            .ok_or_else(|| anyhow::anyhow!("document {i} has no `kind`"))?;
        let collection = collection(&kind)?;
        if !object.contains_key("team") {
            let team = args
                .team
                .clone()
                .ok_or_else(|| anyhow::anyhow!("document {i} has no `team`; pass --team"))?;
            object.insert("team".into(), Value::String(team));
        }
        let team = text(&document, "team").to_string();
        let name = text(&document, "name").to_string();
        let item = format!("/teams/{team}/{collection}/{name}");
        let existing = client.send(Method::GET, &item, None).await?;
        let (action, result) = match existing.status {
            StatusCode::NOT_FOUND => {
                let created = client
                    .call(
                        Method::POST,
                        &format!("/teams/{team}/{collection}"),
                        Some(&document),
                    )
                    .await?;
                ("created", created)
            }
            status if status.is_success() => {
                let updated = client.call(Method::PUT, &item, Some(&document)).await?;
                let unchanged = updated["revision"] == existing.body["revision"];
                (if unchanged { "unchanged" } else { "updated" }, updated)
            }
            _ => return Err(problem(&existing)),
        };
        results.push(
            json!({"kind": collection, "team": team, "name": name, "action": action,
            "revision": result["revision"]}),
        );
    }
    let all = Value::Array(results);
    print(&all, out, |v| {
        for r in v.as_array().into_iter().flatten() {
            println!(
                "{} {}/{} {} (revision {})",
                text(r, "kind"),
                text(r, "team"),
                text(r, "name"),
                text(r, "action"),
                r["revision"]
            );
        }
    });
    Ok(())
}

#[derive(Args)]
pub struct Get {
    /// cluster, route-config, listener, dataplane, secret or learning-session.
    kind: String,
    /// Show one resource instead of listing.
    name: Option<String>,
    #[arg(long)]
    team: Option<String>,
}

pub async fn get(client: &Client, args: Get, out: Output) -> anyhow::Result<()> {
    let collection = collection(&args.kind)?;
    let team_query = args
        .team
        .as_deref()
        .map(|t| format!("?team={t}"))
        .unwrap_or_default();
    if let Some(name) = args.name {
        let item = client
            .call(
                Method::GET,
                &format!("/{collection}/{name}{team_query}"),
                None,
            )
            .await?;
        // One resource reads best as the JSON it is.
        println!(
            "{}",
            serde_json::to_string_pretty(&item).unwrap_or_default()
        );
        return Ok(());
    }
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec!["limit=500".to_string()];
        if let Some(team) = &args.team {
            query.push(format!("team={team}"));
        }
        if let Some(c) = &cursor {
            query.push(format!("cursor={c}"));
        }
        let page = client
            .call(
                Method::GET,
                &format!("/{collection}?{}", query.join("&")),
                None,
            )
            .await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["nextCursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
            _ => break,
        }
    }
    print(&Value::Array(items), out, |v| {
        println!("{:<32} {:<24} {:>8}  UPDATED", "NAME", "TEAM", "REVISION");
        for r in v.as_array().into_iter().flatten() {
            println!(
                "{:<32} {:<24} {:>8}  {}",
                text(r, "name"),
                text(r, "team"),
                r["revision"],
                text(r, "updatedAt")
            );
        }
    });
    Ok(())
}

#[derive(Args)]
pub struct Delete {
    kind: String,
    name: String,
    #[arg(long)]
    team: Option<String>,
}

pub async fn delete(client: &Client, args: Delete) -> anyhow::Result<()> {
    let collection = collection(&args.kind)?;
    let team_query = args
        .team
        .as_deref()
        .map(|t| format!("?team={t}"))
        .unwrap_or_default();
    client
        .call(
            Method::DELETE,
            &format!("/{collection}/{}{team_query}", args.name),
            None,
        )
        .await?;
    println!("deleted {collection}/{}", args.name);
    Ok(())
}

#[derive(Args)]
pub struct EnvoyConfig {
    /// The dataplane's name.
    dataplane: String,
    #[arg(long)]
    team: String,
    /// yaml or json.
    #[arg(long, default_value = "yaml")]
    format: String,
}

pub async fn envoy_config(client: &Client, args: EnvoyConfig) -> anyhow::Result<()> {
    let path = format!(
        "/teams/{}/dataplanes/{}/envoy-config?format={}",
        args.team, args.dataplane, args.format
    );
    let response = client.send(Method::GET, &path, None).await?;
    if !response.status.is_success() {
        return Err(problem(&response));
    }
    print!("{}", response.text);
    Ok(())
}

#[derive(Subcommand)]
pub enum Org {
    /// Create an organization (and its `<name>-default` team).
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List organizations.
    List,
}

pub async fn org(client: &Client, cmd: Org, out: Output) -> anyhow::Result<()> {
    match cmd {
        Org::Create { name, display_name } => {
            let body = json!({"name": name, "displayName": display_name.unwrap_or_default()});
            let org = client
                .call(Method::POST, "/admin/organizations", Some(&body))
                .await?;
            print(&org, out, |v| {
                println!(
                    "created organization {} with team {}",
                    text(v, "name"),
                    text(&v["defaultTeam"], "name")
                )
            });
        }
        Org::List => {
            let list = client
                .call(Method::GET, "/admin/organizations", None)
                .await?;
            print(&list["items"], out, |v| {
                println!("{:<32} DISPLAY NAME", "NAME");
                for o in v.as_array().into_iter().flatten() {
                    println!("{:<32} {}", text(o, "name"), text(o, "displayName"));
                }
            });
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum Token {
    /// Create a token; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A scope such as team:my-org-default:clusters:write (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// RFC 3339 expiry.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List tokens.
    List,
    /// Revoke a token.
    Revoke { id: String },
    /// Give a token a new secret (printed once); the old secret stops working at once.
    Rotate { id: String },
}

pub async fn token(client: &Client, cmd: Token, out: Output) -> anyhow::Result<()> {
    match cmd {
        Token::Create {
            name,
            description,
            scopes,
            expires_at,
        } => {
            let mut body = json!({"name": name, "description": description, "scopes": scopes});
            if let Some(at) = expires_at {
                body["expiresAt"] = Value::String(at);
            }
            let created = client.call(Method::POST, "/tokens", Some(&body)).await?;
            print(&created, out, |v| println!("{}", text(v, "token")));
        }
        Token::List => {
            let list = client.call(Method::GET, "/tokens?limit=500", None).await?;
            print(&list["items"], out, |v| {
                println!("{:<38} {:<24} {:<8} SCOPES", "ID", "NAME", "STATUS");
                for t in v.as_array().into_iter().flatten() {
                    let scopes: Vec<&str> = t["scopes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!(
                        "{:<38} {:<24} {:<8} {}",
                        text(t, "id"),
                        text(t, "name"),
                        text(t, "status"),
                        scopes.join(",")
                    );
                }
            });
        }
        Token::Revoke { id } => {
            client
                .call(Method::DELETE, &format!("/tokens/{id}"), None)
                .await?;
            println!("revoked {id}");
        }
        Token::Rotate { id } => {
            let rotated = client
                .call(Method::POST, &format!("/tokens/{id}/rotate"), None)
                .await?;
            print(&rotated, out, |v| println!("{}", text(v, "token")));
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum Team {
    /// Create a team in an organization.
    Create {
        #[arg(long)]
        org: String,
        name: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List the teams of an organization you can see.
    List {
        #[arg(long)]
        org: String,
    },
}

pub async fn team(client: &Client, cmd: Team, out: Output) -> anyhow::Result<()> {
    match cmd {
        Team::Create {
            org,
            name,
            display_name,
        } => {
            let body = json!({"name": name, "displayName": display_name.unwrap_or_default()});
            let team = client
                .call(Method::POST, &format!("/orgs/{org}/teams"), Some(&body))
                .await?;
            print(&team, out, |v| {
                println!("created team {} in {org}", text(v, "name"))
            });
        }
        Team::List { org } => {
            let list = client
                .call(Method::GET, &format!("/orgs/{org}/teams"), None)
                .await?;
            print(&list["items"], out, |v| {
                println!("{:<32} DISPLAY NAME", "NAME");
                for t in v.as_array().into_iter().flatten() {
                    println!("{:<32} {}", text(t, "name"), text(t, "displayName"));
                }
            });
        }
    }
    Ok(())
}
