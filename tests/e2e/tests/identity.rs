//! Identity across real processes: a token revoked through one api-gateway stops working on a
//! second one within a second; rotation swaps the secret; scopes bound writes and team
//! visibility; the audit trail names actor and team; and no secret (token, password, session,
//! CSRF or invite token) ever reaches a log or an audit row.

use std::time::Duration;

use flowplane_e2e::{Api, Stack, eventually};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_revocation_rotation_tenancy_audit_and_log_hygiene() {
    flowplane_e2e::run_scenario("identity", |stack| Box::pin(scenario(stack))).await;
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

async fn new_token(admin: &Api, name: &str, scopes: &[&str]) -> anyhow::Result<(String, String)> {
    let created = admin
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": name, "scopes": scopes})),
            201,
        )
        .await?;
    Ok((text(&created, "id"), text(&created, "token")))
}

/// Polls `api` until `path` answers `expected`, within `timeout`; returns how long it took.
async fn answers(
    api: &Api,
    path: &str,
    expected: u16,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let (_, took) = eventually(&format!("GET {path} to answer {expected}"), timeout, || {
        let api = api.clone();
        let path = path.to_string();
        async move {
            match api.get(&path).await {
                Ok(r) if r.status.as_u16() == expected => Ok(()),
                Ok(r) => Err(format!("{r:?}")),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await?;
    Ok(took)
}

async fn scenario(stack: &mut Stack) -> anyhow::Result<()> {
    let gateway_b = stack.add_api_gateway("flowplane-api-gateway-b").await?;
    let a = Api::new(&stack.api_url);
    let b = Api::new(&gateway_b);
    let setup = stack.setup_token().await?;
    let init = a
        .with_token(&setup)
        .expect(
            Method::POST,
            "/api/v1/bootstrap/initialize",
            Some(&json!({"email": "admin@example.com", "password": "correct-horse-battery", "name": "Admin"})),
            201,
        )
        .await?;
    let mut secrets = vec![text(&init, "token")];
    let admin = a.with_token(&secrets[0]);
    for org in ["acme", "beta"] {
        admin
            .expect(
                Method::POST,
                "/api/v1/admin/organizations",
                Some(&json!({"name": org, "displayName": org})),
                201,
            )
            .await?;
    }
    admin
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&json!({"team": "beta-default", "name": "beta-cluster", "endpoints": [{"host": "127.0.0.1", "port": 9}]})),
            201,
        )
        .await?;
    let list = "/api/v1/teams/acme-default/clusters";

    // (a) Revoked through gateway A, refused by gateway B within a second.
    let (victim_id, victim) =
        new_token(&admin, "victim", &["team:acme-default:clusters:read"]).await?;
    secrets.push(victim.clone());
    for api in [&a, &b] {
        for _ in 0..2 {
            // The second call is served from the gateway's cache.
            answers(&api.with_token(&victim), list, 200, Duration::from_secs(5)).await?;
        }
    }
    admin
        .expect(
            Method::DELETE,
            &format!("/api/v1/tokens/{victim_id}"),
            None,
            204,
        )
        .await?;
    let took = answers(&b.with_token(&victim), list, 401, Duration::from_secs(1)).await?;
    eprintln!("revocation reached gateway B after {took:?}");
    answers(
        &a.with_token(&victim),
        list,
        401,
        Duration::from_millis(100),
    )
    .await?;
    let status = admin.get(&format!("/api/v1/tokens/{victim_id}")).await?;
    anyhow::ensure!(status.body["status"] == "revoked", "{status:?}");

    // (b) Rotation: the old secret is refused at once (on both gateways), the new one works.
    let (rotated_id, old) =
        new_token(&admin, "rotated", &["team:acme-default:clusters:read"]).await?;
    secrets.push(old.clone());
    for api in [&a, &b] {
        answers(&api.with_token(&old), list, 200, Duration::from_secs(5)).await?;
    }
    let rotated = admin
        .expect(
            Method::POST,
            &format!("/api/v1/tokens/{rotated_id}/rotate"),
            None,
            200,
        )
        .await?;
    let new = text(&rotated, "token");
    anyhow::ensure!(
        new != old && text(&rotated, "id") == rotated_id,
        "{rotated}"
    );
    secrets.push(new.clone());
    answers(&a.with_token(&old), list, 401, Duration::from_millis(100)).await?;
    answers(&b.with_token(&old), list, 401, Duration::from_secs(1)).await?;
    for api in [&a, &b] {
        answers(&api.with_token(&new), list, 200, Duration::from_secs(1)).await?;
    }

    // (c) Read-only: 403 on write. Team A: 404 for team B's resources.
    let reader = a.with_token(&new);
    let write = reader
        .post(
            "/api/v1/clusters",
            &json!({"team": "acme-default", "name": "nope", "endpoints": [{"host": "127.0.0.1", "port": 9}]}),
        )
        .await?;
    anyhow::ensure!(
        write.status.as_u16() == 403 && write.body["code"] == "forbidden",
        "{write:?}"
    );
    let (writer_id, writer) = new_token(
        &admin,
        "team-a-writer",
        &["team:acme-default:clusters:write"],
    )
    .await?;
    secrets.push(writer.clone());
    let team_a = a.with_token(&writer);
    for path in [
        "/api/v1/teams/beta-default/clusters/beta-cluster",
        "/api/v1/clusters/beta-cluster?team=beta-default",
        "/api/v1/clusters/beta-cluster",
    ] {
        let hidden = team_a.get(path).await?;
        anyhow::ensure!(hidden.status.as_u16() == 404, "{path}: {hidden:?}");
    }
    let hidden_write = team_a
        .post(
            "/api/v1/clusters",
            &json!({"team": "beta-default", "name": "x", "endpoints": [{"host": "127.0.0.1", "port": 9}]}),
        )
        .await?;
    anyhow::ensure!(hidden_write.status.as_u16() == 404, "{hidden_write:?}");
    team_a
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&json!({"team": "acme-default", "name": "acme-cluster", "endpoints": [{"host": "127.0.0.1", "port": 9}]})),
            201,
        )
        .await?;

    // (d) The audit trail shows the change with actor and team; team A sees none of team B.
    let audit = admin
        .expect(
            Method::GET,
            "/api/v1/audit-logs?resourceKind=clusters",
            None,
            200,
        )
        .await?;
    let items = audit["items"].as_array().cloned().unwrap_or_default();
    let change = items
        .iter()
        .find(|e| e["resourceName"] == "acme-cluster")
        .ok_or_else(|| anyhow::anyhow!("no audit row for acme-cluster: {audit}"))?;
    anyhow::ensure!(
        change["action"] == "cluster.created"
            && change["team"] == "acme-default"
            && change["actorTokenId"] == writer_id.as_str()
            && change["actorUserId"].is_string()
            && change["after"]["endpoints"].is_array(),
        "{change}"
    );
    anyhow::ensure!(
        items.iter().any(|e| e["team"] == "beta-default"),
        "admin sees all: {audit}"
    );
    let rotations = admin
        .expect(
            Method::GET,
            "/api/v1/audit-logs?action=auth.token.rotated",
            None,
            200,
        )
        .await?;
    anyhow::ensure!(
        rotations["items"]
            .as_array()
            .is_some_and(|i| i.len() == 1 && i[0]["resourceName"] == rotated_id.as_str()),
        "{rotations}"
    );
    let seen_by_a = team_a
        .expect(Method::GET, "/api/v1/audit-logs?limit=500", None, 200)
        .await?;
    let seen = seen_by_a["items"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(
        seen.iter().any(|e| e["resourceName"] == "acme-cluster"),
        "{seen_by_a}"
    );
    anyhow::ensure!(
        seen.iter().all(|e| e["team"] != "beta-default"),
        "team A must not see team B's rows: {seen_by_a}"
    );
    let text_of_rows = admin.get("/api/v1/audit-logs?limit=500").await?.text;
    for secret in &secrets {
        let part = secret.rsplit('.').next().unwrap_or(secret);
        anyhow::ensure!(!text_of_rows.contains(part), "an audit row holds a secret");
    }

    // Config exports every token metric.
    let metrics = reqwest::get(format!("{}/metrics", stack.config_http))
        .await?
        .text()
        .await?;
    for name in [
        "auth_tokens_created_total 3",
        "auth_tokens_revoked_total 1",
        "auth_tokens_rotated_total 1",
        "auth_tokens_active_total 3",
        "auth_authentications_total{status=\"success\"}",
    ] {
        anyhow::ensure!(
            metrics.contains(name),
            "{name} missing from config's /metrics:\n{metrics}"
        );
    }

    // (e) Passwords, session tokens, CSRF tokens and invite tokens join the secrets that no
    // log and no audit row may hold.
    secrets.push("correct-horse-battery".into());
    let login = a
        .post(
            "/api/v1/auth/login",
            &json!({"email": "admin@example.com", "password": "correct-horse-battery"}),
        )
        .await?;
    anyhow::ensure!(login.status.as_u16() == 200, "{login:?}");
    let (session, csrf) = (
        text(&login.body, "sessionToken"),
        text(&login.body, "csrfToken"),
    );
    secrets.extend([session.clone(), csrf.clone()]);
    let invited = admin
        .expect(
            Method::POST,
            "/api/v1/orgs/acme/invitations",
            Some(&json!({"email": "member@acme.example", "role": "member",
                "teams": ["acme-default"], "scopes": ["clusters:read"]})),
            201,
        )
        .await?;
    let invite_token = text(&invited, "inviteToken");
    let member_password = "member-password-never-logged";
    secrets.extend([invite_token.clone(), member_password.to_string()]);
    b.expect(
        Method::POST,
        "/api/v1/auth/register",
        Some(&json!({"inviteToken": invite_token, "name": "Member", "password": member_password})),
        201,
    )
    .await?;
    let member = b
        .post(
            "/api/v1/auth/login",
            &json!({"email": "member@acme.example", "password": member_password}),
        )
        .await?;
    anyhow::ensure!(member.status.as_u16() == 200, "{member:?}");
    secrets.extend([
        text(&member.body, "sessionToken"),
        text(&member.body, "csrfToken"),
    ]);
    // A failed login with a password-like string: it must not be logged either.
    let wrong = "wrong-password-never-logged";
    secrets.push(wrong.into());
    let failed = b
        .post(
            "/api/v1/auth/login",
            &json!({"email": "member@acme.example", "password": wrong}),
        )
        .await?;
    anyhow::ensure!(failed.status.as_u16() == 401, "{failed:?}");
    let audit_text = admin.get("/api/v1/audit-logs?limit=500").await?.text;
    for secret in &secrets {
        let part = secret.rsplit('.').next().unwrap_or(secret);
        anyhow::ensure!(!audit_text.contains(part), "an audit row holds a secret");
    }

    // No service log holds a secret; the setup token is logged exactly once, by config, by
    // design.
    let logs = stack.full_logs();
    anyhow::ensure!(
        logs.len() == 6,
        "six service processes: {:?}",
        logs.iter().map(|l| &l.0).collect::<Vec<_>>()
    );
    for (service, log) in &logs {
        for secret in &secrets {
            let part = secret.rsplit('.').next().unwrap_or(secret);
            anyhow::ensure!(!log.contains(part), "{service}'s log holds a secret");
        }
        let setup_count = log.matches(&setup).count();
        let expected = usize::from(service == "flowplane-config");
        anyhow::ensure!(
            setup_count == expected,
            "{service} logs the setup token {setup_count} times"
        );
    }
    Ok(())
}
