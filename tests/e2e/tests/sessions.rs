//! Sessions across real processes and two api-gateways: login gives a session usable as bearer
//! and as cookie; state-changing calls need the CSRF token (tokens need none); a platform admin's
//! session governs organizations but reads no tenant resource, while `admin:all` does; an
//! invited member registers, logs in and sees only its team; logout through one gateway is
//! refused by the other at once; and failed logins spread over both gateways are throttled
//! together through Redis.

use std::time::Duration;

use flowplane_e2e::api::Reply;
use flowplane_e2e::{Api, Stack, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const ROOT_PASSWORD: &str = "root-password-for-sessions";
const DEV_PASSWORD: &str = "dev-password-for-sessions";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_csrf_logout_throttling_and_membership() {
    flowplane_e2e::run_scenario("sessions", |stack| Box::pin(scenario(stack))).await;
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

/// A logged-in session: its credential and CSRF token.
struct Session {
    token: String,
    csrf: String,
}

async fn login(api: &Api, email: &str, password: &str) -> anyhow::Result<Reply> {
    api.post(
        "/api/v1/auth/login",
        &json!({"email": email, "password": password}),
    )
    .await
}

async fn session(api: &Api, email: &str, password: &str) -> anyhow::Result<Session> {
    let reply = login(api, email, password).await?;
    anyhow::ensure!(reply.status.as_u16() == 200, "login {email}: {reply:?}");
    Ok(Session {
        token: text(&reply.body, "sessionToken"),
        csrf: text(&reply.body, "csrfToken"),
    })
}

/// Sends a state-changing call with the session as bearer and the given CSRF header.
async fn write(
    api: &Api,
    session: &Session,
    method: Method,
    path: &str,
    body: Option<&Value>,
    csrf: Option<&str>,
) -> anyhow::Result<Reply> {
    let headers: Vec<(&str, &str)> = csrf.map(|c| ("x-csrf-token", c)).into_iter().collect();
    api.with_token(&session.token)
        .call(method, path, body, &headers)
        .await
}

fn status(reply: &Reply, expected: u16, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        reply.status.as_u16() == expected,
        "{what}: expected {expected}, got {reply:?}"
    );
    Ok(())
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
            Some(&json!({"email": "root@example.com", "password": ROOT_PASSWORD, "name": "Root"})),
            201,
        )
        .await?;
    let pat = text(&init, "token");
    let admin = a.with_token(&pat);
    for org in ["acme", "beta"] {
        admin
            .expect(
                Method::POST,
                "/api/v1/admin/organizations",
                Some(&json!({"name": org})),
                201,
            )
            .await?;
    }
    admin
        .expect(
            Method::POST,
            "/api/v1/orgs/acme/teams",
            Some(&json!({"name": "acme-payments"})),
            201,
        )
        .await?;
    for team in ["acme-default", "acme-payments", "beta-default"] {
        admin
            .expect(
                Method::POST,
                "/api/v1/clusters",
                Some(&json!({"team": team, "name": format!("{team}-c"), "endpoints": [{"host": "127.0.0.1", "port": 9}]})),
                201,
            )
            .await?;
    }
    let mut secrets = vec![
        pat.clone(),
        ROOT_PASSWORD.to_string(),
        DEV_PASSWORD.to_string(),
    ];

    // Login: the session in the body and as an HttpOnly, SameSite=Strict cookie.
    let reply = login(&a, "root@example.com", ROOT_PASSWORD).await?;
    status(&reply, 200, "login")?;
    let cookie = reply
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let root = Session {
        token: text(&reply.body, "sessionToken"),
        csrf: text(&reply.body, "csrfToken"),
    };
    secrets.extend([root.token.clone(), root.csrf.clone()]);
    anyhow::ensure!(
        cookie.starts_with(&format!("fp_session={};", root.token))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let over_https = a
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"email": "root@example.com", "password": ROOT_PASSWORD})),
            &[("x-forwarded-proto", "https")],
        )
        .await?;
    let secure = over_https
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    anyhow::ensure!(secure.contains("; Secure"), "{secure}");
    secrets.push(text(&over_https.body, "sessionToken"));

    // The session works as bearer and as cookie, on both gateways.
    let cookie_header = format!("fp_session={}", root.token);
    for api in [&a, &b] {
        let by_bearer = api
            .with_token(&root.token)
            .get("/api/v1/auth/session")
            .await?;
        status(&by_bearer, 200, "session by bearer")?;
        anyhow::ensure!(
            by_bearer.body["authMethod"] == "session"
                && by_bearer.body["user"]["isPlatformAdmin"] == true,
            "{by_bearer:?}"
        );
        let by_cookie = api
            .call(
                Method::GET,
                "/api/v1/auth/session",
                None,
                &[("cookie", &cookie_header)],
            )
            .await?;
        status(&by_cookie, 200, "session by cookie")?;
    }
    let by_pat = admin.get("/api/v1/auth/session").await?;
    status(&by_pat, 200, "who am I with a token")?;
    anyhow::ensure!(by_pat.body["authMethod"] == "token", "{by_pat:?}");

    // CSRF: a session's state-changing call needs the token; a PAT's does not.
    let org = json!({"name": "gamma"});
    for csrf in [None, Some("wrong")] {
        let refused = write(
            &a,
            &root,
            Method::POST,
            "/api/v1/admin/organizations",
            Some(&org),
            csrf,
        )
        .await?;
        status(&refused, 403, "session write without its CSRF token")?;
        anyhow::ensure!(refused.body["code"] == "forbidden", "{refused:?}");
    }
    let by_cookie = a
        .call(
            Method::POST,
            "/api/v1/admin/organizations",
            Some(&org),
            &[("cookie", &cookie_header)],
        )
        .await?;
    status(&by_cookie, 403, "cookie write without CSRF")?;
    let by_cookie = a
        .call(
            Method::POST,
            "/api/v1/admin/organizations",
            Some(&org),
            &[("cookie", &cookie_header), ("x-csrf-token", &root.csrf)],
        )
        .await?;
    status(&by_cookie, 201, "cookie write with CSRF")?;
    admin
        .expect(
            Method::POST,
            "/api/v1/admin/organizations",
            Some(&json!({"name": "delta"})),
            201,
        )
        .await?;

    // A platform admin's session governs organizations but reads no tenant resource; the
    // break-glass admin:all token does.
    let as_root = a.with_token(&root.token);
    for path in [
        "/api/v1/teams/acme-default/clusters/acme-default-c",
        "/api/v1/clusters/acme-default-c",
        "/api/v1/teams/acme-default/clusters",
    ] {
        status(&as_root.get(path).await?, 404, path)?;
        status(&admin.get(path).await?, 200, path)?;
    }
    let listed = as_root.get("/api/v1/clusters").await?;
    anyhow::ensure!(listed.body["items"] == json!([]), "{listed:?}");
    let denied_write = write(
        &a,
        &root,
        Method::POST,
        "/api/v1/clusters",
        Some(&json!({"team": "acme-default", "name": "x", "endpoints": [{"host": "127.0.0.1", "port": 9}]})),
        Some(&root.csrf),
    )
    .await?;
    status(
        &denied_write,
        404,
        "platform admin session writing a tenant resource",
    )?;

    // Invite → register (on the other gateway) → login: the member sees only its team.
    let invite = json!({"email": "dev@acme.example", "role": "member",
        "teams": ["acme-payments"], "scopes": ["clusters:write"]});
    let invited = write(
        &a,
        &root,
        Method::POST,
        "/api/v1/orgs/acme/invitations",
        Some(&invite),
        Some(&root.csrf),
    )
    .await?;
    status(&invited, 201, "invite")?;
    let invite_token = text(&invited.body, "inviteToken");
    secrets.push(invite_token.clone());
    let register = json!({"inviteToken": invite_token, "name": "Dev", "password": DEV_PASSWORD});
    status(
        &b.post("/api/v1/auth/register", &register).await?,
        201,
        "register",
    )?;
    let again = b.post("/api/v1/auth/register", &register).await?;
    status(&again, 400, "a used invitation")?;
    anyhow::ensure!(
        again.body["errors"][0]["field"] == "/inviteToken",
        "{again:?}"
    );
    let dev = session(&b, "dev@acme.example", DEV_PASSWORD).await?;
    secrets.extend([dev.token.clone(), dev.csrf.clone()]);
    let as_dev = b.with_token(&dev.token);
    let me = as_dev.get("/api/v1/auth/session").await?;
    anyhow::ensure!(
        me.body["teams"] == json!(["acme-payments"])
            && me.body["orgs"][0]["org"] == "acme"
            && me.body["orgs"][0]["role"] == "member",
        "{me:?}"
    );
    let clusters = as_dev.get("/api/v1/clusters").await?;
    let names: Vec<String> = clusters.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| text(c, "name"))
        .collect();
    anyhow::ensure!(names == ["acme-payments-c"], "{clusters:?}");
    for path in [
        "/api/v1/teams/acme-default/clusters",
        "/api/v1/teams/beta-default/clusters/beta-default-c",
    ] {
        status(&as_dev.get(path).await?, 404, path)?;
    }
    let created = write(
        &b,
        &dev,
        Method::POST,
        "/api/v1/clusters",
        Some(&json!({"team": "acme-payments", "name": "dev-c", "endpoints": [{"host": "127.0.0.1", "port": 9}]})),
        Some(&dev.csrf),
    )
    .await?;
    status(&created, 201, "member writes in its team")?;
    let members = write(
        &b,
        &dev,
        Method::GET,
        "/api/v1/orgs/acme/members",
        None,
        None,
    )
    .await?;
    status(&members, 403, "a member administers nothing")?;
    let members = admin.get("/api/v1/orgs/acme/members").await?;
    anyhow::ensure!(
        members.body["items"]
            .as_array()
            .is_some_and(|m| m.len() == 1),
        "{members:?}"
    );

    // Logout through gateway A: refused at once by A and within a second by B, where the
    // session was cached.
    for api in [&a, &b] {
        for _ in 0..2 {
            status(
                &api.with_token(&dev.token)
                    .get("/api/v1/auth/session")
                    .await?,
                200,
                "cached",
            )?;
        }
    }
    let no_csrf = write(&a, &dev, Method::POST, "/api/v1/auth/logout", None, None).await?;
    status(&no_csrf, 403, "logout needs the CSRF token too")?;
    let out = write(
        &a,
        &dev,
        Method::POST,
        "/api/v1/auth/logout",
        None,
        Some(&dev.csrf),
    )
    .await?;
    status(&out, 204, "logout")?;
    let cleared = out
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    anyhow::ensure!(
        cleared.starts_with("fp_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    status(
        &a.with_token(&dev.token).get("/api/v1/auth/session").await?,
        401,
        "A after logout",
    )?;
    let (_, took) = eventually(
        "gateway B to refuse the ended session",
        Duration::from_secs(1),
        || {
            let api = b.with_token(&dev.token);
            async move {
                match api.get("/api/v1/auth/session").await {
                    Ok(r) if r.status.as_u16() == 401 => Ok(()),
                    Ok(r) => Err(format!("{r:?}")),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await?;
    eprintln!("logout reached gateway B after {took:?}");
    let logout_with_pat = admin
        .call(Method::POST, "/api/v1/auth/logout", None, &[])
        .await?;
    status(&logout_with_pat, 400, "logout with a token")?;

    // Throttling: five failures for one account, spread over both gateways, then 429 on both
    // (even with the right password), with Retry-After.
    for (i, api) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let failed = login(api, "dev@acme.example", &format!("wrong-password-{i}")).await?;
        status(&failed, 401, "a failed login")?;
    }
    for api in [&b, &a] {
        let throttled = login(api, "dev@acme.example", DEV_PASSWORD).await?;
        status(&throttled, 429, "throttled login")?;
        let retry_after: u64 = throttled
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        anyhow::ensure!(
            (1..=900).contains(&retry_after)
                && throttled
                    .headers
                    .get("content-type")
                    .is_some_and(|v| v == "application/problem+json"),
            "{throttled:?} {:?}",
            throttled.headers
        );
    }
    // Another account from the same address is not affected.
    status(
        &login(&b, "root@example.com", ROOT_PASSWORD).await?,
        200,
        "another account",
    )?;

    // The audit trail has the sessions and the failures, and never a secret.
    for (action, at_least) in [
        ("auth.session.created", 4),
        ("auth.login.failed", 5),
        ("auth.session.ended", 1),
    ] {
        let rows = admin
            .expect(
                Method::GET,
                &format!("/api/v1/audit-logs?action={action}"),
                None,
                200,
            )
            .await?;
        let count = rows["items"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(count >= at_least, "{action}: {count} rows: {rows}");
    }
    let config_metrics = reqwest::get(format!("{}/metrics", stack.config_http))
        .await?
        .text()
        .await?;
    let gateway_metrics = reqwest::get(format!("{}/metrics", stack.api_url))
        .await?
        .text()
        .await?;
    for (metrics, name) in [
        (&config_metrics, "auth_sessions_created_total 4"),
        (&config_metrics, "auth_login_failures_total 5"),
        (&gateway_metrics, "auth_login_throttled_total 1"),
    ] {
        anyhow::ensure!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let audit = admin.get("/api/v1/audit-logs?limit=500").await?.text;
    let logs = stack.full_logs();
    anyhow::ensure!(logs.len() == 6, "six service processes");
    for secret in &secrets {
        let part = secret.rsplit('.').next().unwrap_or(secret);
        anyhow::ensure!(!audit.contains(part), "an audit row holds a secret");
        for (service, log) in &logs {
            anyhow::ensure!(!log.contains(part), "{service}'s log holds a secret");
        }
    }
    Ok(())
}
