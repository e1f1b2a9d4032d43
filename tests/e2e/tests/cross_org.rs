//! The organization boundary, tried as an attacker inside one organization would: an
//! organization admin, a member and a team-scoped token of `acme` each go after `beta` through
//! every identity operation (tokens create/update/rotate/revoke/read, invitations, members,
//! teams, audit reads) and through the resources a cross-organization token would open.
//! Nothing of `beta` is reachable, readable or grantable, and nothing changes there; the
//! platform's `admin:all` (the control) reaches `beta` through the same calls.

use flowplane_e2e::api::Reply;
use flowplane_e2e::{Api, Stack};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "a-password-for-cross-org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identity_operation_reaches_another_organization() {
    flowplane_e2e::run_scenario("cross-org", |stack| Box::pin(scenario(stack))).await;
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

fn status(reply: &Reply, expected: u16, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        reply.status.as_u16() == expected,
        "{what}: expected {expected}, got {reply:?}"
    );
    Ok(())
}

/// Invites `email` into `org` (by the platform admin), registers the user and logs in; returns
/// a personal access token the user made with its session, holding `token_scopes`.
async fn member_token(
    admin: &Api,
    anonymous: &Api,
    org: &str,
    email: &str,
    invitation: Value,
    token_scopes: &[&str],
) -> anyhow::Result<(Api, String)> {
    let invited = admin
        .expect(
            Method::POST,
            &format!("/api/v1/orgs/{org}/invitations"),
            Some(&invitation),
            201,
        )
        .await?;
    let registered = anonymous
        .expect(
            Method::POST,
            "/api/v1/auth/register",
            Some(&json!({"inviteToken": text(&invited, "inviteToken"), "name": email, "password": PASSWORD})),
            201,
        )
        .await?;
    let user_id = text(&registered["user"], "id");
    let login = anonymous
        .expect(
            Method::POST,
            "/api/v1/auth/login",
            Some(&json!({"email": email, "password": PASSWORD})),
            200,
        )
        .await?;
    let session = anonymous.with_token(&text(&login, "sessionToken"));
    let made = session
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": "mine", "scopes": token_scopes})),
            &[("x-csrf-token", &text(&login, "csrfToken"))],
        )
        .await?;
    status(&made, 201, &format!("{email} makes a token"))?;
    // A response carrying a secret is never stored by a browser or proxy.
    anyhow::ensure!(
        made.headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            == Some("no-store"),
        "a token's secret without no-store: {:?}",
        made.headers
    );
    Ok((anonymous.with_token(&text(&made.body, "token")), user_id))
}

async fn scenario(stack: &mut Stack) -> anyhow::Result<()> {
    let anonymous = Api::new(&stack.api_url);
    let setup = stack.setup_token().await?;
    let init = anonymous
        .with_token(&setup)
        .expect(
            Method::POST,
            "/api/v1/bootstrap/initialize",
            Some(&json!({"email": "root@example.com", "password": PASSWORD, "name": "Root"})),
            201,
        )
        .await?;
    let admin = anonymous.with_token(&text(&init, "token"));
    for org in ["acme", "beta"] {
        admin
            .expect(
                Method::POST,
                "/api/v1/admin/organizations",
                Some(&json!({"name": org})),
                201,
            )
            .await?;
        admin
            .expect(
                Method::POST,
                "/api/v1/clusters",
                Some(
                    &json!({"team": format!("{org}-default"), "name": format!("{org}-c"),
                    "endpoints": [{"host": "127.0.0.1", "port": 9}]}),
                ),
                201,
            )
            .await?;
    }

    // beta's own people and token, the targets.
    let (beta_member, beta_user) = member_token(
        &admin,
        &anonymous,
        "beta",
        "dev@beta.example",
        json!({"email": "dev@beta.example", "role": "member", "teams": ["beta-default"],
            "scopes": ["clusters:write", "tokens:write"]}),
        &[
            "team:beta-default:clusters:read",
            "team:beta-default:tokens:read",
        ],
    )
    .await?;
    let beta_token_id = text(
        &beta_member
            .expect(Method::GET, "/api/v1/tokens", None, 200)
            .await?["items"][0],
        "id",
    );

    // The attackers, all of acme.
    let org_admin_scopes = [
        "clusters:write",
        "tokens:write",
        "secrets:write",
        "dataplanes:write",
    ];
    let (org_admin, _) = member_token(
        &admin,
        &anonymous,
        "acme",
        "admin@acme.example",
        json!({"email": "admin@acme.example", "role": "admin", "teams": [],
            "scopes": org_admin_scopes}),
        &org_admin_scopes,
    )
    .await?;
    let (member, _) = member_token(
        &admin,
        &anonymous,
        "acme",
        "dev@acme.example",
        json!({"email": "dev@acme.example", "role": "member", "teams": ["acme-default"],
            "scopes": ["clusters:write", "tokens:write"]}),
        &[
            "team:acme-default:clusters:write",
            "team:acme-default:tokens:write",
        ],
    )
    .await?;
    let team_token = admin
        .expect(
            Method::POST,
            "/api/v1/tokens",
            Some(&json!({"name": "acme-team", "scopes": [
                "team:acme-default:clusters:write", "team:acme-default:tokens:write",
                "team:acme-default:secrets:write", "team:acme-default:dataplanes:write"]})),
            201,
        )
        .await?;
    let team_token = anonymous.with_token(&text(&team_token, "token"));
    let audit_before = admin
        .expect(
            Method::GET,
            "/api/v1/audit-logs?team=beta-default&limit=500",
            None,
            200,
        )
        .await?;

    let attackers = [
        ("org admin", &org_admin),
        ("member", &member),
        ("team token", &team_token),
    ];
    let beta_scopes = [
        "team:beta-default:clusters:read",
        "team:beta-default:secrets:read",
        "team:beta-default:dataplanes:read",
        "team:beta-default:tokens:write",
    ];
    for (who, api) in attackers {
        // Minting: a token naming beta's team is refused, without telling beta's team exists.
        for scope in beta_scopes {
            let minted = api
                .post(
                    "/api/v1/tokens",
                    &json!({"name": "reach", "scopes": [scope]}),
                )
                .await?;
            status(&minted, 400, &format!("{who} mints {scope}"))?;
            anyhow::ensure!(
                minted.body["errors"][0]["field"] == "/scopes/0"
                    && minted.text.contains("not found"),
                "{who} mints {scope}: {minted:?}"
            );
        }
        // Narrowing or widening one's own token into beta.
        let own = api
            .expect(
                Method::POST,
                "/api/v1/tokens",
                Some(&json!({"name": "own", "scopes": ["team:acme-default:clusters:read"]})),
                201,
            )
            .await?;
        let own_id = text(&own, "id");
        let moved = api
            .call(
                Method::PATCH,
                &format!("/api/v1/tokens/{own_id}"),
                Some(&json!({"scopes": ["team:beta-default:clusters:read"]})),
                &[],
            )
            .await?;
        status(&moved, 400, &format!("{who} moves its token into beta"))?;

        // beta's token: not found for every token operation.
        for (method, path) in [
            (Method::GET, format!("/api/v1/tokens/{beta_token_id}")),
            (Method::PATCH, format!("/api/v1/tokens/{beta_token_id}")),
            (
                Method::POST,
                format!("/api/v1/tokens/{beta_token_id}/rotate"),
            ),
            (Method::DELETE, format!("/api/v1/tokens/{beta_token_id}")),
        ] {
            let body = (method == Method::PATCH).then(|| json!({"name": "taken"}));
            let reply = api.call(method.clone(), &path, body.as_ref(), &[]).await?;
            status(&reply, 404, &format!("{who} {method} {path}"))?;
        }
        let listed = api.expect(Method::GET, "/api/v1/tokens", None, 200).await?;
        anyhow::ensure!(
            !listed.to_string().contains(&beta_token_id),
            "{who} lists beta's token: {listed}"
        );

        // Organization administration of beta: as if beta did not exist.
        for (method, path, body) in [
            (Method::GET, "/api/v1/orgs/beta/members".to_string(), None),
            (
                Method::PATCH,
                format!("/api/v1/orgs/beta/members/{beta_user}"),
                Some(json!({"scopes": ["clusters:read"]})),
            ),
            (
                Method::DELETE,
                format!("/api/v1/orgs/beta/members/{beta_user}"),
                None,
            ),
            (
                Method::POST,
                "/api/v1/orgs/beta/invitations".to_string(),
                Some(
                    json!({"email": "spy@acme.example", "role": "admin", "teams": [], "scopes": ["clusters:write"]}),
                ),
            ),
            (Method::GET, "/api/v1/orgs/beta/teams".to_string(), None),
            (
                Method::POST,
                "/api/v1/orgs/beta/teams".to_string(),
                Some(json!({"name": "beta-spies"})),
            ),
        ] {
            let reply = api.call(method.clone(), &path, body.as_ref(), &[]).await?;
            status(&reply, 404, &format!("{who} {method} {path}"))?;
        }
        // Granting beta's team inside acme.
        let invited = api
            .post(
                "/api/v1/orgs/acme/invitations",
                &json!({"email": format!("{}@acme.example", who.replace(' ', "-")), "role": "member",
                    "teams": ["beta-default"], "scopes": ["clusters:read"]}),
            )
            .await?;
        anyhow::ensure!(
            matches!(invited.status.as_u16(), 400 | 403),
            "{who} invites into beta's team: {invited:?}"
        );

        // beta's resources and audit trail.
        for path in [
            "/api/v1/teams/beta-default/clusters",
            "/api/v1/teams/beta-default/clusters/beta-c",
            "/api/v1/clusters/beta-c?team=beta-default",
            "/api/v1/teams/beta-default/secrets",
            "/api/v1/teams/beta-default/dataplanes",
        ] {
            status(&api.get(path).await?, 404, &format!("{who} GET {path}"))?;
        }
        let clusters = api
            .expect(Method::GET, "/api/v1/clusters", None, 200)
            .await?;
        anyhow::ensure!(
            !clusters.to_string().contains("beta"),
            "{who} lists beta's clusters: {clusters}"
        );
        let audit = api
            .expect(
                Method::GET,
                "/api/v1/audit-logs?team=beta-default",
                None,
                200,
            )
            .await?;
        anyhow::ensure!(
            audit["items"] == json!([]),
            "{who} reads beta's audit trail: {audit}"
        );
        let me = api
            .expect(Method::GET, "/api/v1/auth/session", None, 200)
            .await?;
        anyhow::ensure!(
            !me["teams"].to_string().contains("beta"),
            "{who} reaches beta's teams: {me}"
        );
    }

    // Nothing changed in beta: its member, its token and its trail are as they were.
    let members = admin
        .expect(Method::GET, "/api/v1/orgs/beta/members", None, 200)
        .await?;
    anyhow::ensure!(
        members["items"][0]["scopes"] == json!(["clusters:write", "tokens:write"]),
        "{members}"
    );
    let beta_token = admin
        .expect(
            Method::GET,
            &format!("/api/v1/tokens/{beta_token_id}"),
            None,
            200,
        )
        .await?;
    anyhow::ensure!(
        beta_token["status"] == "active" && beta_token["name"] == "mine",
        "{beta_token}"
    );
    status(
        &beta_member
            .get("/api/v1/teams/beta-default/clusters/beta-c")
            .await?,
        200,
        "beta's member still reads its cluster",
    )?;
    let audit_after = admin
        .expect(
            Method::GET,
            "/api/v1/audit-logs?team=beta-default&limit=500",
            None,
            200,
        )
        .await?;
    anyhow::ensure!(
        audit_after["items"] == audit_before["items"],
        "beta's audit trail changed: {audit_after}"
    );
    // Every token acme's people made is recorded in acme.
    let acme_org = text(
        &admin
            .expect(Method::GET, "/api/v1/admin/organizations", None, 200)
            .await?["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["name"] == "acme")
            .cloned()
            .unwrap_or_default(),
        "id",
    );
    let created = admin
        .expect(
            Method::GET,
            "/api/v1/audit-logs?action=auth.token.created&limit=500",
            None,
            200,
        )
        .await?;
    let orgs: Vec<String> = created["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["after"]["scopes"].to_string().contains("acme-default"))
        .map(|e| text(e, "orgId"))
        .collect();
    anyhow::ensure!(
        !orgs.is_empty() && orgs.iter().all(|o| *o == acme_org),
        "token creations recorded outside acme: {orgs:?} vs {acme_org}"
    );

    // The control: the platform's admin:all reaches beta through the same calls.
    for path in [
        "/api/v1/teams/beta-default/clusters/beta-c",
        "/api/v1/orgs/beta/members",
        "/api/v1/orgs/beta/teams",
    ] {
        status(
            &admin.get(path).await?,
            200,
            &format!("admin:all GET {path}"),
        )?;
    }
    Ok(())
}
