//! The Platform API commands: `import openapi`, `expose` / `unexpose`, and `api list|get|delete`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, problem};
use crate::commands::{print, text};

/// One line per reported change, or a note that nothing changed.
fn print_result(result: &Value) {
    let definition = &result["definition"];
    let verb = match (
        result["dryRun"] == true,
        result["created"] == true,
        result["changed"] == true,
    ) {
        (true, _, _) => "would change (dry run)",
        (false, true, _) => "created",
        (false, false, true) => "updated",
        (false, false, false) => "unchanged",
    };
    println!(
        "api-definition {} in team {}: {verb} (revision {})",
        text(definition, "name"),
        text(definition, "team"),
        definition["revision"]
    );
    for change in result["changes"].as_array().into_iter().flatten() {
        println!(
            "  {:<8} {:<14} {}",
            text(change, "op"),
            text(change, "kind"),
            text(change, "name")
        );
    }
}

#[derive(Subcommand)]
pub enum Import {
    /// Import an OpenAPI 3.0/3.1 document (JSON or YAML) as an API definition; re-importing
    /// updates it in place.
    Openapi(ImportOpenApi),
}

#[derive(Args)]
pub struct ImportOpenApi {
    /// The document.
    file: std::path::PathBuf,
    #[arg(long)]
    team: String,
    /// The definition's name (default: x-flowplane-name, else the document's title).
    #[arg(long)]
    name: Option<String>,
    /// The domain clients call (default: x-flowplane-domain, else any host).
    #[arg(long)]
    domain: Option<String>,
    /// A dedicated listener on this port instead of the team's shared gateway.
    #[arg(long)]
    port: Option<u16>,
    /// Show what would change without applying it.
    #[arg(long)]
    dry_run: bool,
}

pub async fn import(client: &Client, cmd: Import, out: Output) -> anyhow::Result<()> {
    let Import::Openapi(args) = cmd;
    let document = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let mut query = vec![format!("team={}", encode(&args.team))];
    if let Some(name) = &args.name {
        query.push(format!("name={}", encode(name)));
    }
    if let Some(domain) = &args.domain {
        query.push(format!("domain={}", encode(domain)));
    }
    if let Some(port) = args.port {
        query.push(format!("listenerIsolation=dedicated&port={port}"));
    }
    if args.dry_run {
        query.push("dryRun=true".into());
    }
    let path = format!("/api-definitions/from-openapi?{}", query.join("&"));
    let response = client.send_text(Method::POST, &path, document).await?;
    if !response.status.is_success() {
        return Err(problem(&response));
    }
    print(&response.body, out, print_result);
    Ok(())
}

#[derive(Args)]
pub struct Expose {
    /// The upstream, `http://host:port` (a path in it replaces `--path` upstream).
    upstream: String,
    /// The path prefix clients call.
    #[arg(long, default_value = "/")]
    path: String,
    #[arg(long)]
    team: String,
    /// The API definition's name (default: from the path, else the upstream's host).
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    domain: Option<String>,
    /// A dedicated listener on this port instead of the team's shared gateway.
    #[arg(long)]
    port: Option<u16>,
}

pub async fn expose(client: &Client, args: Expose, out: Output) -> anyhow::Result<()> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(&args.path, &args.upstream));
    let mut body = json!({"name": name, "upstream": args.upstream, "path": args.path});
    if let Some(domain) = &args.domain {
        body["domain"] = json!(domain);
    }
    if let Some(port) = args.port {
        body["port"] = json!(port);
    }
    let result = client
        .call(
            Method::POST,
            &format!("/teams/{}/expose", encode(&args.team)),
            Some(&body),
        )
        .await?;
    print(&result, out, print_result);
    Ok(())
}

#[derive(Args)]
pub struct Unexpose {
    /// The name `expose` used.
    name: String,
    #[arg(long)]
    team: String,
}

pub async fn unexpose(client: &Client, args: Unexpose) -> anyhow::Result<()> {
    client
        .call(
            Method::DELETE,
            &format!(
                "/teams/{}/expose/{}",
                encode(&args.team),
                encode(&args.name)
            ),
            None,
        )
        .await?;
    println!("no longer exposed: {}", args.name);
    Ok(())
}

#[derive(Subcommand)]
pub enum Api {
    /// List API definitions.
    List {
        #[arg(long)]
        team: Option<String>,
    },
    /// Show one API definition with its generated resources.
    Get {
        name: String,
        #[arg(long)]
        team: Option<String>,
    },
    /// Delete an API definition and the resources it generated.
    Delete {
        name: String,
        #[arg(long)]
        team: Option<String>,
    },
}

pub async fn api(client: &Client, cmd: Api, out: Output) -> anyhow::Result<()> {
    let team_query = |team: &Option<String>| {
        team.as_deref()
            .map(|t| format!("?team={}", encode(t)))
            .unwrap_or_default()
    };
    match cmd {
        Api::List { team } => {
            let mut items = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut query = vec!["limit=500".to_string()];
                if let Some(team) = &team {
                    query.push(format!("team={}", encode(team)));
                }
                if let Some(c) = &cursor {
                    query.push(format!("cursor={c}"));
                }
                let page = client
                    .call(
                        Method::GET,
                        &format!("/api-definitions?{}", query.join("&")),
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
                println!(
                    "{:<28} {:<20} {:<28} {:<10} {:>8}",
                    "NAME", "TEAM", "DOMAIN", "LISTENER", "REVISION"
                );
                for d in v.as_array().into_iter().flatten() {
                    println!(
                        "{:<28} {:<20} {:<28} {:<10} {:>8}",
                        text(d, "name"),
                        text(d, "team"),
                        d["domain"].as_str().unwrap_or("*"),
                        text(d, "listenerIsolation"),
                        d["revision"]
                    );
                }
            });
        }
        Api::Get { name, team } => {
            let item = client
                .call(
                    Method::GET,
                    &format!("/api-definitions/{}{}", encode(&name), team_query(&team)),
                    None,
                )
                .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&item).unwrap_or_default()
            );
        }
        Api::Delete { name, team } => {
            client
                .call(
                    Method::DELETE,
                    &format!("/api-definitions/{}{}", encode(&name), team_query(&team)),
                    None,
                )
                .await?;
            println!("deleted api-definition {name}");
        }
    }
    Ok(())
}

/// A resource-name-shaped default: the path's words, or the upstream's host.
fn default_name(path: &str, upstream: &str) -> String {
    let source = if path.trim_matches('/').is_empty() {
        upstream
            .split("://")
            .nth(1)
            .unwrap_or(upstream)
            .split(['/', ':'])
            .next()
            .unwrap_or_default()
    } else {
        path
    };
    let mut name = String::new();
    for c in source.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.trim_end_matches('-').to_string()
}

/// Percent-encodes a query or path value (names are plain, but domains and teams come from
/// people).
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_names_default_to_the_path_or_the_host() {
        assert_eq!(default_name("/echo/v1", "http://h:1"), "echo-v1");
        assert_eq!(default_name("/", "http://httpbin.org:80/x"), "httpbin-org");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
