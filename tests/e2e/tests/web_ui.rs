//! The web UI in a real browser: a team member invited by the organization's admin signs in at
//! `/ui/` in headless Chromium and manages clusters there (`tests/ui/drive.mjs`, Playwright).
//! What the UI did is then checked through the REST API: the cluster it left has the values
//! typed into the page, the one it deleted is gone, and the learning session it started is
//! active. Needs Chromium and the Playwright
//! client installed (`.ci/run` does both); without them the test fails and says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use flowplane_e2e::{Stack, Tenant, run_scenario};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_member_manages_clusters_in_the_web_ui() {
    run_scenario("web-ui", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "webui").await?;
    let team = tenant.team.clone();
    let (email, password) = ("dev@webui.example", "a-long-enough-password");
    let invitation = tenant
        .admin
        .expect(
            Method::POST,
            "/api/v1/orgs/webui/invitations",
            Some(&json!({"email": email, "role": "member", "teams": [team],
                "scopes": ["clusters:write", "dataplanes:read", "tokens:write",
                    "listeners:read", "learning-sessions:write", "reports:read"]})),
            201,
        )
        .await?;
    flowplane_e2e::Api::new(&stack.api_url)
        .expect(
            Method::POST,
            "/api/v1/auth/register",
            Some(
                &json!({"inviteToken": invitation["inviteToken"], "name": "Dev",
                "password": password}),
            ),
            201,
        )
        .await?;

    let (dataplane_id, _) = tenant.dataplane("edge").await?;
    // A pending learning session for the page to start, on a listener that answers itself
    // (no cluster: the page starts on an empty cluster list).
    let routes = json!({"team": team, "name": "learned-routes",
        "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"path": {"type": "prefix", "value": "/"}},
             "action": {"type": "directResponse", "status": 200, "body": "hi"}}]}]});
    let listener = tenant.listener(
        "learned-listener",
        flowplane_e2e::free_port(),
        &dataplane_id,
        "learned-routes",
    );
    let session = json!({"team": team, "name": "ui-session", "listener": "learned-listener"});
    for (path, body) in [
        ("/api/v1/route-configs", routes),
        ("/api/v1/listeners", listener),
        ("/api/v1/learning-sessions", session),
    ] {
        tenant
            .api
            .expect(Method::POST, path, Some(&body), 201)
            .await?;
    }
    let dir = ui_tests_dir();
    anyhow::ensure!(
        dir.join("node_modules/playwright-core").is_dir(),
        "Playwright is not installed: run `npm ci` in {} (`.ci/run` does)",
        dir.display()
    );
    let output = tokio::process::Command::new("node")
        .arg(dir.join("drive.mjs"))
        .args([
            stack.api_url.as_str(),
            email,
            password,
            team.as_str(),
            dataplane_id.as_str(),
        ])
        .current_dir(&dir)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(
        output.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");

    // What the page did, seen through the API.
    let kept = tenant
        .api
        .expect(
            Method::GET,
            &format!("/api/v1/teams/{team}/clusters/ui-kept"),
            None,
            200,
        )
        .await?;
    anyhow::ensure!(
        kept["endpoints"][0]["port"] == 8081,
        "ui-kept as stored: {kept}"
    );
    let gone = tenant
        .api
        .get(&format!("/api/v1/teams/{team}/clusters/ui-made"))
        .await?;
    anyhow::ensure!(gone.status == 404, "ui-made should be deleted: {gone:?}");

    let session = tenant
        .api
        .expect(
            Method::GET,
            &format!("/api/v1/teams/{team}/learning-sessions/ui-session"),
            None,
            200,
        )
        .await?;
    anyhow::ensure!(
        session["state"] == "active",
        "the page started the session: {session}"
    );

    // The token made on the Tokens page reads the team's clusters and can do nothing more.
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .ok_or_else(|| anyhow::anyhow!("the browser run printed no token"))?;
    let reader = flowplane_e2e::Api::new(&stack.api_url).with_token(token);
    reader
        .expect(
            Method::GET,
            &format!("/api/v1/teams/{team}/clusters"),
            None,
            200,
        )
        .await?;
    let write = reader
        .post(
            "/api/v1/clusters",
            &json!({"team": team, "name": "by-reader", "endpoints": [{"host": "127.0.0.1", "port": 9}]}),
        )
        .await?;
    anyhow::ensure!(write.status == 403, "a read token wrote: {write:?}");
    Ok(())
}

/// `tests/ui`, found at run time (the test binary may be shared by several checkouts).
fn ui_tests_dir() -> PathBuf {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| "tests/e2e".into());
    PathBuf::from(manifest).join("../ui")
}
