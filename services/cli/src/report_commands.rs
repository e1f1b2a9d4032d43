//! `flowplane report`: reports about a team (route flows, usage), as a table or JSON.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use crate::Output;
use crate::client::Client;
use crate::commands::{print, text};

#[derive(Subcommand)]
pub enum Report {
    /// Where each listener's routes send traffic: listener, route, match, destinations.
    RouteFlows(TeamArg),
    /// Requests per listener, route and cluster in a window (default: the last hour).
    Usage(UsageArgs),
}

#[derive(Args)]
pub struct UsageArgs {
    #[arg(long)]
    team: String,
    /// Start of the window (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// End of the window (RFC 3339); default now.
    #[arg(long)]
    until: Option<String>,
}

#[derive(Args)]
pub struct TeamArg {
    #[arg(long)]
    team: String,
}

pub async fn report(client: &Client, command: Report, out: Output) -> anyhow::Result<()> {
    match command {
        Report::RouteFlows(args) => {
            let flows = client
                .call(
                    Method::GET,
                    &format!("/reports/route-flows?team={}", args.team),
                    None,
                )
                .await?;
            print(&flows["items"], out, print_route_flows);
            Ok(())
        }
        Report::Usage(args) => {
            let mut path = format!("/reports/usage?team={}", args.team);
            for (key, value) in [("since", &args.since), ("until", &args.until)] {
                if let Some(value) = value {
                    path.push_str(&format!("&{key}={}", value.replace('+', "%2B")));
                }
            }
            let usage = client.call(Method::GET, &path, None).await?;
            print(&usage, out, print_usage);
            Ok(())
        }
    }
}

fn print_usage(usage: &Value) {
    println!("{} to {}", text(usage, "since"), text(usage, "until"));
    println!(
        "{:<24} {:<24} {:<20} {:>9} {:>10}  STATUSES",
        "LISTENER", "ROUTE", "CLUSTER", "REQUESTS", "MEAN MS"
    );
    for row in usage["items"].as_array().into_iter().flatten() {
        let statuses: Vec<String> = row["statuses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(class, n)| format!("{class}×{n}"))
            .collect();
        let cluster = match text(row, "cluster") {
            "" => "-",
            name => name,
        };
        println!(
            "{:<24} {:<24} {:<20} {:>9} {:>10}  {}",
            text(row, "listener"),
            text(row, "route"),
            cluster,
            row["requests"],
            row["meanDurationMs"].as_f64().unwrap_or_default(),
            statuses.join(" ")
        );
    }
}

fn print_route_flows(rows: &Value) {
    println!(
        "{:<24} {:>6}  {:<24} {:<10} {:<28} DESTINATIONS",
        "LISTENER", "PORT", "DOMAINS", "ROUTE", "MATCH"
    );
    for row in rows.as_array().into_iter().flatten() {
        let domains: Vec<&str> = row["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let destinations: Vec<String> = row["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                // 90, not 90.0: a share reads as people write it.
                let percent = d["percent"].as_f64().unwrap_or_default();
                format!("{} {percent}% → {}", text(d, "cluster"), endpoints(d))
            })
            .collect();
        let destinations = if destinations.is_empty() {
            text(row, "action").to_string()
        } else {
            destinations.join("; ")
        };
        println!(
            "{:<24} {:>6}  {:<24} {:<10} {:<28} {}",
            text(row, "listener"),
            row["port"],
            domains.join(","),
            text(row, "route"),
            format!(
                "{} {}",
                text(&row["path"], "type"),
                text(&row["path"], "value")
            ),
            destinations
        );
    }
}

fn endpoints(destination: &Value) -> String {
    let list: Vec<&str> = destination["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if list.is_empty() {
        "(no endpoints)".into()
    } else {
        list.join(",")
    }
}
