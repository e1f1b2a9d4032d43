//! The `flowplane` CLI against the real services: bootstrap, organization, token, apply (create,
//! then unchanged, then updated), get and delete, teams, and token rotation.

use std::process::Output;

use flowplane_e2e::Stack;
use flowplane_e2e::stack::binary;
use serde_json::Value;
use tokio::process::Command;

async fn flowplane(stack: &Stack, token: Option<&str>, args: &[&str]) -> anyhow::Result<Output> {
    let mut command = Command::new(binary("flowplane")?);
    command
        .args(args)
        .env("FLOWPLANE_API_URL", &stack.api_url)
        .env_remove("FLOWPLANE_TOKEN");
    if let Some(token) = token {
        command.env("FLOWPLANE_TOKEN", token);
    }
    Ok(command.output().await?)
}

async fn ok(stack: &Stack, token: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let out = flowplane(stack, token, args).await?;
    anyhow::ensure!(
        out.status.success(),
        "flowplane {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_resources_end_to_end() {
    flowplane_e2e::run_scenario("cli", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let setup = stack.setup_token().await?;
    let admin = ok(
        stack,
        None,
        &[
            "bootstrap",
            "--setup-token",
            &setup,
            "--email",
            "cli@example.com",
            "--name",
            "CLI",
            "--password",
            "a-long-enough-password",
        ],
    )
    .await?;
    anyhow::ensure!(
        admin.starts_with("fp_pat_"),
        "bootstrap prints the token: {admin}"
    );
    ok(stack, Some(&admin), &["org", "create", "cli-org"]).await?;
    let token = ok(
        stack,
        Some(&admin),
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "team:cli-org-default:clusters:write",
            "--scope",
            "team:cli-org-default:routes:write",
        ],
    )
    .await?;

    let file = stack.dir.join("resources.yaml");
    let write = |port: u16| {
        std::fs::write(
            &file,
            format!(
                "- kind: cluster\n  name: api\n  endpoints: [{{host: 127.0.0.1, port: {port}}}]\n\
             - kind: route-config\n  name: api-routes\n  virtualHosts:\n  - name: all\n    domains: ['*']\n    routes:\n    \
             - match: {{path: {{type: prefix, value: /}}}}\n      action: {{type: forward, cluster: api}}\n"
            ),
        )
    };
    write(8080)?;
    let path = file.to_string_lossy().to_string();
    let apply = |expected: &'static str| {
        let path = path.clone();
        let token = token.clone();
        async move {
            let out = ok(
                stack,
                Some(&token),
                &[
                    "apply",
                    "-f",
                    &path,
                    "--team",
                    "cli-org-default",
                    "-o",
                    "json",
                ],
            )
            .await?;
            let results: Value = serde_json::from_str(&out)?;
            let actions: Vec<&str> = results
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["action"].as_str())
                .collect();
            anyhow::ensure!(
                actions == vec![expected, expected],
                "apply: expected {expected}, got {out}"
            );
            Ok::<_, anyhow::Error>(())
        }
    };
    apply("created").await?;
    apply("unchanged").await?;
    write(9090)?;
    let out = ok(
        stack,
        Some(&token),
        &["apply", "-f", &path, "--team", "cli-org-default"],
    )
    .await?;
    anyhow::ensure!(
        out.contains("clusters cli-org-default/api updated"),
        "{out}"
    );

    let listed: Value =
        serde_json::from_str(&ok(stack, Some(&token), &["get", "clusters", "-o", "json"]).await?)?;
    anyhow::ensure!(listed[0]["endpoints"][0]["port"] == 9090, "get: {listed}");

    // Errors are readable and carry the field path.
    let bad = stack.dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"kind":"cluster","name":"bad","endpoints":[{"host":"x","port":0}]}"#,
    )?;
    let out = flowplane(
        stack,
        Some(&token),
        &[
            "apply",
            "-f",
            &bad.to_string_lossy(),
            "--team",
            "cli-org-default",
        ],
    )
    .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        !out.status.success() && stderr.contains("/endpoints/0/port"),
        "bad apply: {stderr}"
    );

    let referenced = flowplane(stack, Some(&token), &["delete", "cluster", "api"]).await?;
    anyhow::ensure!(
        !referenced.status.success(),
        "a referenced cluster cannot be deleted"
    );
    ok(
        stack,
        Some(&token),
        &["delete", "route-config", "api-routes"],
    )
    .await?;
    ok(stack, Some(&token), &["delete", "cluster", "api"]).await?;
    let empty = ok(stack, Some(&token), &["get", "clusters", "-o", "json"]).await?;
    anyhow::ensure!(
        serde_json::from_str::<Value>(&empty)? == Value::Array(vec![]),
        "after delete: {empty}"
    );

    // Teams: an organization admin's command; the new team is listed.
    ok(
        stack,
        Some(&admin),
        &["team", "create", "--org", "cli-org", "cli-payments"],
    )
    .await?;
    let teams: Value = serde_json::from_str(
        &ok(
            stack,
            Some(&admin),
            &["team", "list", "--org", "cli-org", "-o", "json"],
        )
        .await?,
    )?;
    let names: Vec<&str> = teams
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    anyhow::ensure!(
        names.contains(&"cli-org-default") && names.contains(&"cli-payments"),
        "teams: {teams}"
    );

    // Rotation: a new secret for the same token; the old one stops working.
    let id = token
        .strip_prefix("fp_pat_")
        .and_then(|rest| rest.split_once('.'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_default();
    let rotated = ok(stack, Some(&admin), &["token", "rotate", &id]).await?;
    anyhow::ensure!(
        rotated.starts_with(&format!("fp_pat_{id}.")) && rotated != token,
        "rotate prints the new secret: {rotated}"
    );
    ok(stack, Some(&rotated), &["get", "clusters"]).await?;
    let old = flowplane(stack, Some(&token), &["get", "clusters"]).await?;
    anyhow::ensure!(!old.status.success(), "the old secret still works");
    Ok(())
}
