//! `flowplane report`: reports about a team (route flows, usage, request traces, validate,
//! preflight), as a table or JSON.

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
    /// Where one request would go through a dataplane's Envoys, and why.
    Trace(TraceArgs),
    /// What is wrong with the team's resources taken together (shadowed routes, unused
    /// clusters, port clashes, expiring certificates).
    Validate(TeamArg),
    /// What one change would do, without making it: whether the API would take it, what
    /// uses the resource, and the findings it would add or clear.
    Preflight(PreflightArgs),
    /// A dataplane's Envoys: the replica each is connected to, per type the version sent
    /// and acknowledged, and the recent NACKs.
    Delivery(DeliveryArgs),
    /// The team's resources as a graph: each with its status, and what it references.
    Topology(TeamArg),
}

#[derive(Args)]
pub struct DeliveryArgs {
    #[arg(long)]
    team: String,
    /// The dataplane (name or id).
    #[arg(long)]
    dataplane: String,
}

#[derive(Args)]
pub struct PreflightArgs {
    #[arg(long)]
    team: String,
    /// A JSON or YAML file holding the resource as `apply` takes it (`kind`, `name`, spec).
    #[arg(short = 'f', long = "file", conflicts_with = "delete")]
    file: Option<std::path::PathBuf>,
    /// Try deleting this resource instead: `KIND/NAME`, e.g. `cluster/web`.
    #[arg(long)]
    delete: Option<String>,
}

#[derive(Args)]
pub struct TraceArgs {
    #[arg(long)]
    team: String,
    /// The dataplane (name or id) whose Envoys receive the request.
    #[arg(long)]
    dataplane: String,
    /// The listener the request arrives on (or give --port).
    #[arg(long)]
    listener: Option<String>,
    /// The port the request arrives on.
    #[arg(long)]
    port: Option<u16>,
    #[arg(long, default_value = "GET")]
    method: String,
    /// The Host header.
    #[arg(long)]
    host: String,
    /// Path and query.
    path: String,
    /// A request header, `name: value`; repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// The TLS server name, for a TLS listener.
    #[arg(long)]
    sni: Option<String>,
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
        Report::Validate(args) => {
            let findings = client
                .call(
                    Method::GET,
                    &format!("/reports/validate?team={}", args.team),
                    None,
                )
                .await?;
            print(&findings["items"], out, print_findings);
            Ok(())
        }
        Report::Preflight(args) => {
            let body = match (&args.file, &args.delete) {
                (Some(file), None) => {
                    let mut documents = crate::commands::read_documents(file)?;
                    anyhow::ensure!(
                        documents.len() == 1,
                        "a preflight tries one change; {} holds {}",
                        file.display(),
                        documents.len()
                    );
                    let mut resource = documents.remove(0);
                    let object = resource
                        .as_object_mut()
                        .ok_or_else(|| anyhow::anyhow!("the document is not an object"))?;
                    let kind = object
                        .remove("kind")
                        .and_then(|k| k.as_str().map(String::from))
                        .ok_or_else(|| anyhow::anyhow!("the document has no `kind`"))?;
                    object.remove("team");
                    let name = text(&resource, "name").to_string();
                    serde_json::json!({"kind": crate::commands::collection(&kind)?,
                        "name": name, "resource": resource})
                }
                (None, Some(target)) => {
                    let (kind, name) = target.split_once('/').ok_or_else(|| {
                        anyhow::anyhow!("--delete takes KIND/NAME, not {target:?}")
                    })?;
                    serde_json::json!({"kind": crate::commands::collection(kind)?, "name": name})
                }
                _ => anyhow::bail!("give -f FILE (a create or replace) or --delete KIND/NAME"),
            };
            let preflight = client
                .call(
                    Method::POST,
                    &format!("/reports/preflight?team={}", args.team),
                    Some(&body),
                )
                .await?;
            print(&preflight, out, print_preflight);
            Ok(())
        }
        Report::Topology(args) => {
            let graph = client
                .call(
                    Method::GET,
                    &format!("/reports/topology?team={}", args.team),
                    None,
                )
                .await?;
            print(&graph, out, print_topology);
            Ok(())
        }
        Report::Delivery(args) => {
            let delivery = client
                .call(
                    Method::GET,
                    &format!(
                        "/reports/delivery?team={}&dataplane={}",
                        args.team, args.dataplane
                    ),
                    None,
                )
                .await?;
            print(&delivery, out, print_delivery);
            Ok(())
        }
        Report::Trace(args) => {
            let mut headers = serde_json::Map::new();
            for header in &args.headers {
                let (name, value) = header.split_once(':').ok_or_else(|| {
                    anyhow::anyhow!("--header takes `name: value`, not {header:?}")
                })?;
                headers.insert(name.trim().to_string(), Value::from(value.trim()));
            }
            let body = serde_json::json!({"dataplane": args.dataplane, "listener": args.listener,
                "port": args.port, "method": args.method, "host": args.host, "path": args.path,
                "headers": headers, "sni": args.sni});
            let trace = client
                .call(
                    Method::POST,
                    &format!("/reports/trace?team={}", args.team),
                    Some(&body),
                )
                .await?;
            print(&trace, out, print_trace);
            Ok(())
        }
    }
}

fn print_topology(graph: &Value) {
    let edges = graph["edges"].as_array().cloned().unwrap_or_default();
    for node in graph["nodes"].as_array().into_iter().flatten() {
        let id = text(node, "id");
        let status: Vec<String> = node["status"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("{} {}", text(s, "dataplane"), text(s, "state")))
            .collect();
        println!(
            "{id}  {}  [{}]",
            text(node, "detail"),
            if status.is_empty() {
                "not served".to_string()
            } else {
                status.join(", ")
            }
        );
        for edge in edges.iter().filter(|e| e["from"] == id) {
            println!("    → {}  ({})", text(edge, "to"), text(edge, "field"));
        }
    }
}

fn print_delivery(delivery: &Value) {
    let nodes = delivery["nodes"].as_array().cloned().unwrap_or_default();
    if nodes.is_empty() {
        println!("no Envoy of this dataplane is connected");
    } else {
        println!(
            "{:<28} {:<24} {:<5} {:<5} {:<18} {:<18} PENDING",
            "NODE", "REPLICA", "PROTO", "TYPE", "SENT", "ACKED"
        );
    }
    for node in &nodes {
        for t in node["types"].as_array().into_iter().flatten() {
            println!(
                "{:<28} {:<24} {:<5} {:<5} {:<18} {:<18} {}",
                text(node, "nodeId"),
                text(node, "replica"),
                text(node, "protocol"),
                text(t, "type"),
                short(t["sentVersion"].as_str().unwrap_or("-")),
                short(t["ackedVersion"].as_str().unwrap_or("-")),
                if t["pending"] == true { "yes" } else { "no" }
            );
        }
    }
    for nack in delivery["nacks"].as_array().into_iter().flatten() {
        println!(
            "NACK {} {} {} {}: {}",
            text(nack, "at"),
            text(nack, "nodeId"),
            text(nack, "type"),
            short(text(nack, "version")),
            text(nack, "error")
        );
    }
}

/// A version as far as a table needs it.
fn short(version: &str) -> &str {
    version.get(..16).unwrap_or(version)
}

fn print_preflight(preflight: &Value) {
    let accepted = preflight["accepted"] == true;
    println!(
        "{}: {}",
        text(preflight, "operation"),
        if accepted {
            "would be accepted"
        } else {
            "would be refused"
        }
    );
    for problem in preflight["problems"].as_array().into_iter().flatten() {
        println!(
            "  problem {}: {}",
            text(problem, "field"),
            text(problem, "message")
        );
    }
    for used in preflight["affected"].as_array().into_iter().flatten() {
        println!(
            "  used by {}/{} at {}",
            text(used, "kind"),
            text(used, "name"),
            text(used, "field")
        );
    }
    for (label, key) in [("new", "introduced"), ("cleared", "resolved")] {
        for finding in preflight[key].as_array().into_iter().flatten() {
            println!(
                "  {label} {} {} {}/{}: {}",
                text(finding, "severity"),
                text(finding, "code"),
                text(finding, "kind"),
                text(finding, "name"),
                text(finding, "message")
            );
        }
    }
}

fn print_findings(rows: &Value) {
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no findings");
        return;
    }
    println!(
        "{:<8} {:<24} {:<32} MESSAGE",
        "SEVERITY", "CODE", "RESOURCE"
    );
    for row in &rows {
        let resource = format!(
            "{}/{}{}",
            text(row, "kind"),
            text(row, "name"),
            text(row, "field")
        );
        println!(
            "{:<8} {:<24} {:<32} {}",
            text(row, "severity"),
            text(row, "code"),
            resource,
            text(row, "message")
        );
    }
}

fn print_trace(trace: &Value) {
    for step in trace["steps"].as_array().into_iter().flatten() {
        let mark = if step["matched"] == true { "→" } else { " " };
        println!(
            "{mark} {:<12} {:<28} {}",
            text(step, "stage"),
            text(step, "name"),
            text(step, "reason")
        );
    }
    let filters: Vec<String> = trace["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{} ({})", text(f, "name"), text(f, "effect")))
        .collect();
    if !filters.is_empty() {
        println!("filters: {}", filters.join(", "));
    }
    let outcome = &trace["outcome"];
    let status = outcome["status"]
        .as_u64()
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    println!(
        "outcome: {}{status}: {}",
        text(outcome, "kind"),
        text(outcome, "detail")
    );
    for cluster in outcome["clusters"].as_array().into_iter().flatten() {
        let endpoints: Vec<String> = cluster["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{}:{}", text(e, "address"), e["port"]))
            .collect();
        let weight = cluster["weight"]
            .as_u64()
            .map(|w| format!(" weight {w}"))
            .unwrap_or_default();
        let missing = if cluster["exists"] == false {
            " (does not exist: 503)"
        } else {
            ""
        };
        println!(
            "  cluster {}{weight}{missing} → {}",
            text(cluster, "name"),
            endpoints.join(", ")
        );
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
