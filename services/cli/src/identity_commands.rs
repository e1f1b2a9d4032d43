//! `flowplane auth` (login, logout, whoami, register), `flowplane member` and
//! `flowplane invite`: thin mappings onto the session and membership endpoints.

use std::io::BufRead;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Output;
use crate::client::{Client, problem};
use crate::credentials::{self, StoredSession};

fn print(value: &Value, out: Output, table: impl FnOnce(&Value)) {
    match out {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Table => table(value),
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("-")
}

fn strings(value: &Value) -> String {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// The password from the flag or environment, else one line of standard input (so it need not
/// appear in the shell history or the process list).
fn password(given: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(
        !line.is_empty(),
        "give the password with --password, FLOWPLANE_PASSWORD or on standard input"
    );
    Ok(line)
}

#[derive(Subcommand)]
pub enum Auth {
    /// Log in with email and password; the session is kept in the credentials file
    /// ($XDG_CONFIG_HOME/flowplane/credentials, mode 0600) and used by later commands.
    Login {
        #[arg(long)]
        email: String,
        /// Read from standard input when not given.
        #[arg(long, env = "FLOWPLANE_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// End the stored session (everywhere) and forget it.
    Logout,
    /// Show who the current credential is: user, organizations, teams, scopes.
    Whoami,
    /// Create your account with an invite token.
    Register {
        #[arg(long, env = "FLOWPLANE_INVITE_TOKEN", hide_env_values = true)]
        invite_token: String,
        #[arg(long)]
        name: String,
        /// At least 12 characters; read from standard input when not given.
        #[arg(long, env = "FLOWPLANE_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

pub async fn auth(client: &Client, cmd: Auth, out: Output) -> anyhow::Result<()> {
    match cmd {
        Auth::Login { email, password: p } => {
            let body = json!({"email": email, "password": password(p)?});
            let session = client
                .call(Method::POST, "/auth/login", Some(&body))
                .await?;
            let stored = StoredSession {
                api_url: client.base().to_string(),
                session_token: text(&session, "sessionToken").to_string(),
                csrf_token: text(&session, "csrfToken").to_string(),
                email: text(&session["user"], "email").to_string(),
                expires_at: text(&session, "expiresAt").to_string(),
            };
            let path = credentials::save(&stored)?;
            // Never print the session secret: it is in the credentials file.
            let shown = json!({"email": stored.email, "expiresAt": stored.expires_at,
                "credentials": path.display().to_string()});
            print(&shown, out, |v| {
                println!(
                    "logged in as {} until {} (session stored in {})",
                    text(v, "email"),
                    text(v, "expiresAt"),
                    text(v, "credentials")
                )
            });
        }
        Auth::Logout => {
            let Some(stored) = credentials::load(client.base()) else {
                anyhow::bail!("not logged in to {}", client.base());
            };
            let session = client.with_session(&stored.session_token, &stored.csrf_token);
            let response = session.send(Method::POST, "/auth/logout", None).await?;
            // An expired or already ended session is gone either way.
            if !(response.status.is_success() || response.status.as_u16() == 401) {
                return Err(problem(&response));
            }
            credentials::remove()?;
            print(&json!({"loggedOut": stored.email}), out, |_| {
                println!("logged out {}", stored.email)
            });
        }
        Auth::Whoami => {
            let me = client.call(Method::GET, "/auth/session", None).await?;
            print(&me, out, |v| {
                println!(
                    "user     {} ({})",
                    text(&v["user"], "email"),
                    text(&v["user"], "id")
                );
                println!(
                    "via      {} {}",
                    text(v, "authMethod"),
                    text(v, "credentialId")
                );
                for org in v["orgs"].as_array().into_iter().flatten() {
                    println!("org      {} ({})", text(org, "org"), text(org, "role"));
                }
                println!("teams    {}", strings(&v["teams"]));
                println!("scopes   {}", strings(&v["scopes"]));
            });
        }
        Auth::Register {
            invite_token,
            name,
            password: p,
        } => {
            let body = json!({"inviteToken": invite_token, "name": name, "password": password(p)?});
            let registered = client
                .call(Method::POST, "/auth/register", Some(&body))
                .await?;
            print(&registered, out, |v| {
                println!(
                    "registered {} in organization {}; log in with `flowplane auth login`",
                    text(&v["user"], "email"),
                    text(v, "org")
                )
            });
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum Member {
    /// List an organization's members.
    List {
        #[arg(long)]
        org: String,
    },
    /// Change a member's role, teams or scopes (each replaced when given).
    Update {
        #[arg(long)]
        org: String,
        user_id: String,
        #[arg(long)]
        role: Option<String>,
        /// Repeatable; replaces the teams.
        #[arg(long = "team")]
        teams: Vec<String>,
        /// Repeatable; replaces the scopes.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// Remove a member (its sessions end and its tokens are revoked).
    Remove {
        #[arg(long)]
        org: String,
        user_id: String,
    },
}

fn print_member(m: &Value) {
    println!(
        "{:<38} {:<32} {:<7} {:<32} {}",
        text(m, "userId"),
        text(m, "email"),
        text(m, "role"),
        strings(&m["teams"]),
        strings(&m["scopes"])
    );
}

pub async fn member(client: &Client, cmd: Member, out: Output) -> anyhow::Result<()> {
    match cmd {
        Member::List { org } => {
            let list = client
                .call(Method::GET, &format!("/orgs/{org}/members"), None)
                .await?;
            print(&list["items"], out, |v| {
                println!(
                    "{:<38} {:<32} {:<7} {:<32} SCOPES",
                    "USER ID", "EMAIL", "ROLE", "TEAMS"
                );
                v.as_array().into_iter().flatten().for_each(print_member);
            });
        }
        Member::Update {
            org,
            user_id,
            role,
            teams,
            scopes,
        } => {
            let mut body = json!({});
            if let Some(role) = role {
                body["role"] = json!(role);
            }
            if !teams.is_empty() {
                body["teams"] = json!(teams);
            }
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            let updated = client
                .call(
                    Method::PATCH,
                    &format!("/orgs/{org}/members/{user_id}"),
                    Some(&body),
                )
                .await?;
            print(&updated, out, print_member);
        }
        Member::Remove { org, user_id } => {
            client
                .call(
                    Method::DELETE,
                    &format!("/orgs/{org}/members/{user_id}"),
                    None,
                )
                .await?;
            print(&json!({"removed": user_id}), out, |_| {
                println!("removed {user_id}")
            });
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum Invite {
    /// Invite a user into an organization; prints the single-use invite token.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        /// `admin` or `member`.
        #[arg(long, default_value = "member")]
        role: String,
        /// Repeatable.
        #[arg(long = "team")]
        teams: Vec<String>,
        /// Repeatable; within your own scopes.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
}

pub async fn invite(client: &Client, cmd: Invite, out: Output) -> anyhow::Result<()> {
    let Invite::Create {
        org,
        email,
        role,
        teams,
        scopes,
    } = cmd;
    let body = json!({"email": email, "role": role, "teams": teams, "scopes": scopes});
    let invited = client
        .call(
            Method::POST,
            &format!("/orgs/{org}/invitations"),
            Some(&body),
        )
        .await?;
    print(&invited, out, |v| println!("{}", text(v, "inviteToken")));
    Ok(())
}
