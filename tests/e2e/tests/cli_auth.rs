//! `flowplane auth | invite | member` against the real services: login stores the session in a
//! 0600 credentials file that later commands use (CSRF included), and logout ends it.

use std::path::Path;
use std::process::Output;

use flowplane_e2e::stack::binary;
use flowplane_e2e::{Api, Stack};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::Command;

const PASSWORD: &str = "cli-auth-password";

async fn flowplane(stack: &Stack, config_home: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(binary("flowplane")?)
        .args(args)
        .env("FLOWPLANE_API_URL", &stack.api_url)
        .env("XDG_CONFIG_HOME", config_home)
        .env_remove("FLOWPLANE_TOKEN")
        .env_remove("FLOWPLANE_PASSWORD")
        .output()
        .await?)
}

async fn ok(stack: &Stack, config_home: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let out = flowplane(stack, config_home, args).await?;
    anyhow::ensure!(
        out.status.success(),
        "flowplane {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_logs_in_invites_manages_members_and_logs_out() {
    flowplane_e2e::run_scenario("cli-auth", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let setup = stack.setup_token().await?;
    Api::new(&stack.api_url)
        .with_token(&setup)
        .expect(
            Method::POST,
            "/api/v1/bootstrap/initialize",
            Some(&json!({"email": "root@example.com", "password": PASSWORD, "name": "Root"})),
            201,
        )
        .await?;
    let home = stack.dir.join("config-home");
    let login = ok(
        stack,
        &home,
        &[
            "auth",
            "login",
            "--email",
            "root@example.com",
            "--password",
            PASSWORD,
            "-o",
            "json",
        ],
    )
    .await?;
    anyhow::ensure!(login["email"] == "root@example.com", "{login}");
    let credentials = home.join("flowplane").join("credentials");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials)?.permissions().mode() & 0o777;
        anyhow::ensure!(mode == 0o600, "credentials mode {mode:o}");
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&credentials)?)?;
    let session = stored["sessionToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(session.starts_with("fp_session_"), "{stored}");
    // The session secret is kept in the file, never printed.
    anyhow::ensure!(!login.to_string().contains(&session), "{login}");

    let me = ok(stack, &home, &["auth", "whoami", "-o", "json"]).await?;
    anyhow::ensure!(
        me["authMethod"] == "session" && me["user"]["isPlatformAdmin"] == true,
        "{me}"
    );
    // A state-changing call through the stored session (the CLI sends the CSRF token).
    ok(stack, &home, &["org", "create", "gamma", "-o", "json"]).await?;
    let invited = ok(
        stack,
        &home,
        &[
            "invite",
            "create",
            "--org",
            "gamma",
            "--email",
            "dev@gamma.example",
            "--team",
            "gamma-default",
            "--scope",
            "clusters:read",
            "-o",
            "json",
        ],
    )
    .await?;
    let invite = invited["inviteToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(invite.starts_with("fp_invite_"), "{invited}");
    let other_home = stack.dir.join("dev-home");
    ok(
        stack,
        &other_home,
        &[
            "auth",
            "register",
            "--invite-token",
            &invite,
            "--name",
            "Dev",
            "--password",
            "dev-password-12",
            "-o",
            "json",
        ],
    )
    .await?;
    let members = ok(
        stack,
        &home,
        &["member", "list", "--org", "gamma", "-o", "json"],
    )
    .await?;
    let user_id = members[0]["userId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(members[0]["email"] == "dev@gamma.example", "{members}");
    let updated = ok(
        stack,
        &home,
        &[
            "member",
            "update",
            "--org",
            "gamma",
            &user_id,
            "--scope",
            "clusters:write",
            "-o",
            "json",
        ],
    )
    .await?;
    anyhow::ensure!(updated["scopes"] == json!(["clusters:write"]), "{updated}");
    ok(
        stack,
        &home,
        &["member", "remove", "--org", "gamma", &user_id],
    )
    .await?;
    let members = ok(
        stack,
        &home,
        &["member", "list", "--org", "gamma", "-o", "json"],
    )
    .await?;
    anyhow::ensure!(members == json!([]), "{members}");

    ok(stack, &home, &["auth", "logout"]).await?;
    anyhow::ensure!(!credentials.exists(), "logout forgets the session");
    let refused = Api::new(&stack.api_url)
        .with_token(&session)
        .get("/api/v1/auth/session")
        .await?;
    anyhow::ensure!(refused.status.as_u16() == 401, "{refused:?}");
    let after = flowplane(stack, &home, &["auth", "whoami"]).await?;
    anyhow::ensure!(!after.status.success(), "whoami without a credential fails");
    Ok(())
}
