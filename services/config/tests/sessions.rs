//! Sessions, invitations and membership against a real PostgreSQL: login and its audit trail,
//! logout and expiry, a platform admin's session (governs orgs, reaches no tenant resource),
//! single-use and expiring invitations, and the rule that nobody grants beyond their own scopes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flowplane_config::authz::Caller;
use flowplane_config::error::ServiceError;
use flowplane_config::{audit_log, identity, membership, resources, secrets, sessions};
use flowplane_domain::ResourceKind;
use flowplane_proto::common::v1::RequestContext;
use flowplane_proto::identity::v1 as pb;
use futures::StreamExt;
use support::{TestDb, admin, cluster_body};

const SETUP: &str = "fp_setup_integration-test-setup-token";
const PASSWORD: &str = "correct horse battery";

/// Initializes Flowplane with a platform admin and two organizations (each with a cluster).
async fn bootstrap(db: &TestDb) {
    identity::announce_setup_token(&db.ctx, Some(SETUP))
        .await
        .unwrap();
    identity::initialize(
        &db.ctx,
        pb::InitializeRequest {
            setup_token: SETUP.into(),
            email: "root@example.com".into(),
            password: PASSWORD.into(),
            name: "Root".into(),
            request_id: "r".into(),
            client_address: "127.0.0.1".into(),
        },
    )
    .await
    .unwrap();
    for org in ["acme", "beta"] {
        identity::create_organization(&db.ctx, &admin(), org, "")
            .await
            .unwrap();
        let team = format!("{org}-default");
        resources::create(
            &db.ctx,
            &admin(),
            ResourceKind::Cluster,
            "",
            &cluster_body(&team, "c1", 80),
        )
        .await
        .unwrap();
    }
    let payments = pb::CreateTeamRequest {
        org: "acme".into(),
        name: "acme-payments".into(),
        ..Default::default()
    };
    flowplane_config::teams::create(&db.ctx, &admin(), payments)
        .await
        .unwrap();
    resources::create(
        &db.ctx,
        &admin(),
        ResourceKind::Cluster,
        "",
        &cluster_body("acme-payments", "c2", 80),
    )
    .await
    .unwrap();
}

async fn login(
    db: &TestDb,
    email: &str,
    password: &str,
) -> Result<pb::LoginResponse, ServiceError> {
    sessions::login(
        &db.ctx,
        pb::LoginRequest {
            email: email.into(),
            password: password.into(),
            request_id: "login-req".into(),
            client_address: "10.1.2.3".into(),
        },
    )
    .await
}

async fn authenticate(
    db: &TestDb,
    credential: &str,
) -> Result<pb::AuthenticateResponse, ServiceError> {
    identity::authenticate(
        &db.ctx,
        pb::AuthenticateRequest {
            credential: credential.into(),
            request_id: "req".into(),
            client_address: "127.0.0.1".into(),
        },
    )
    .await
}

/// The caller api-gateway would build for this credential.
async fn caller(db: &TestDb, credential: &str) -> Caller {
    let answer = authenticate(db, credential).await.unwrap();
    Caller::from_context(
        &db.ctx.keys,
        Some(RequestContext {
            signed_principal: answer.signed_principal,
            request_id: "req".into(),
            client_address: "127.0.0.1".into(),
        }),
    )
    .unwrap()
}

async fn session_of(db: &TestDb, email: &str) -> Caller {
    let session = login(db, email, PASSWORD).await.unwrap();
    caller(db, &session.session_token).await
}

fn invitation(
    org: &str,
    email: &str,
    role: &str,
    teams: &[&str],
    scopes: &[&str],
) -> pb::CreateInvitationRequest {
    pb::CreateInvitationRequest {
        context: None,
        org: org.into(),
        email: email.into(),
        role: role.into(),
        teams: teams.iter().map(|s| s.to_string()).collect(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

async fn register(db: &TestDb, invite_token: &str) -> Result<pb::RegisterResponse, ServiceError> {
    membership::register(
        &db.ctx,
        pb::RegisterRequest {
            invite_token: invite_token.into(),
            name: "New Member".into(),
            password: PASSWORD.into(),
            request_id: "reg".into(),
            client_address: "127.0.0.1".into(),
        },
    )
    .await
}

/// Invites `email` with `by` and registers it; returns the new member's session.
async fn join(db: &TestDb, by: &Caller, request: pb::CreateInvitationRequest) -> Caller {
    let email = request.email.clone();
    let invited = membership::create_invitation(&db.ctx, by, request)
        .await
        .unwrap_or_else(|e| panic!("invite {email}: {e:?}"));
    register(db, &invited.invite_token).await.unwrap();
    session_of(db, &email).await
}

fn fields(error: ServiceError) -> Vec<String> {
    match error {
        ServiceError::Validation(v) => v.errors().iter().map(|e| e.field.clone()).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn login_opens_a_session_that_logout_and_expiry_end() {
    let db = TestDb::new().await;
    bootstrap(&db).await;
    let mut notices = db.ctx.notices.subscribe().await.unwrap();

    // Wrong password and unknown email: the same refusal, each audited without the password.
    for (email, password) in [
        ("root@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
    ] {
        let refused = login(&db, email, password).await.unwrap_err();
        assert!(
            matches!(refused, ServiceError::Unauthenticated(ref m) if m == "invalid email or password")
        );
    }
    let failed = audit_log::list(
        &db.ctx,
        &admin(),
        pb::ListAuditLogsRequest {
            action: "auth.login.failed".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(failed.items.len(), 2);
    assert!(failed.items.iter().all(|e| e.client_address == "10.1.2.3"));
    assert!(
        failed
            .items
            .iter()
            .any(|e| e.after_json.contains("nobody@example.com"))
    );
    assert!(
        failed
            .items
            .iter()
            .all(|e| !e.after_json.contains("wrong password"))
    );

    // Email matching ignores case and surrounding space, like registration.
    let session = login(&db, " Root@Example.com ", PASSWORD).await.unwrap();
    assert!(session.session_token.starts_with("fp_session_"));
    assert!(session.user.as_ref().unwrap().is_platform_admin);
    let answer = authenticate(&db, &session.session_token).await.unwrap();
    let principal = answer.principal.clone().unwrap();
    assert_eq!(principal.session_id, session.session_id);
    assert!(principal.token_id.is_empty());
    assert_eq!(
        answer.csrf_token_sha256,
        secrets::digest(&session.csrf_token)
    );
    assert!(answer.cache_seconds > 0 && answer.cache_seconds <= 30);

    // Stored as digests only.
    let (secret_hash, csrf_hash): (String, String) =
        sqlx::query_as("SELECT secret_hash, csrf_hash FROM sessions WHERE id = $1::uuid")
            .bind(&session.session_id)
            .fetch_one(&db.ctx.pool)
            .await
            .unwrap();
    let secret = session.session_token.rsplit('.').next().unwrap();
    assert_eq!(secret_hash, secrets::digest(secret));
    assert_ne!(csrf_hash, session.csrf_token);

    // A tampered secret is refused.
    let tampered = format!(
        "{}0",
        session.session_token.trim_end_matches(|c: char| c != '.')
    );
    assert!(authenticate(&db, &tampered).await.is_err());

    let created = audit_log::list(
        &db.ctx,
        &admin(),
        pb::ListAuditLogsRequest {
            action: "auth.session.created".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(created.items.len(), 1);
    assert_eq!(created.items[0].resource_name, session.session_id);

    // Logout: refused from now on, and every gateway is told.
    let me = caller(&db, &session.session_token).await;
    sessions::logout(&db.ctx, &me).await.unwrap();
    assert!(matches!(
        authenticate(&db, &session.session_token).await,
        Err(ServiceError::Unauthenticated(_))
    ));
    assert_eq!(notices.next().await.unwrap().id, session.session_id);
    // A token is not a session.
    assert!(matches!(
        sessions::logout(&db.ctx, &admin()).await,
        Err(ServiceError::Validation(_))
    ));

    // Expiry.
    let second = login(&db, "root@example.com", PASSWORD).await.unwrap();
    authenticate(&db, &second.session_token).await.unwrap();
    sqlx::query("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(&second.session_id)
        .execute(&db.ctx.pool)
        .await
        .unwrap();
    assert!(authenticate(&db, &second.session_token).await.is_err());
    db.drop_db().await;
}

#[tokio::test]
async fn a_platform_admin_session_governs_orgs_but_reaches_no_tenant_resource() {
    let db = TestDb::new().await;
    bootstrap(&db).await;
    let root = session_of(&db, "root@example.com").await;
    assert!(root.grants.scopes().is_empty());
    identity::create_organization(&db.ctx, &root, "gamma", "")
        .await
        .unwrap();
    let hidden = resources::get(&db.ctx, &root, ResourceKind::Cluster, "acme-default", "c1").await;
    assert!(
        matches!(hidden, Err(ServiceError::NotFound(_))),
        "{hidden:?}"
    );
    let listed = resources::list(&db.ctx, &root, ResourceKind::Cluster, "", 50, "")
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    // It can still invite into any organization, granting what it does not hold itself.
    let invited = membership::create_invitation(
        &db.ctx,
        &root,
        invitation(
            "acme",
            "owner@acme.example",
            "admin",
            &[],
            &["clusters:write"],
        ),
    )
    .await
    .unwrap();
    assert!(invited.invite_token.starts_with("fp_invite_"));
    let whoami = sessions::whoami(&db.ctx, &root).await.unwrap();
    assert_eq!(whoami.auth_method, "session");
    assert!(whoami.teams.is_empty() && whoami.scopes.is_empty());
    db.drop_db().await;
}

#[tokio::test]
async fn invitations_are_single_use_and_expire() {
    let db = TestDb::new().await;
    bootstrap(&db).await;
    let invited = membership::create_invitation(
        &db.ctx,
        &admin(),
        invitation(
            "acme",
            "Dev@Acme.example",
            "member",
            &["acme-payments"],
            &["clusters:read"],
        ),
    )
    .await
    .unwrap();
    let record = invited.invitation.unwrap();
    assert_eq!(record.email, "dev@acme.example");
    let stored: String =
        sqlx::query_scalar("SELECT secret_hash FROM invitations WHERE id = $1::uuid")
            .bind(&record.id)
            .fetch_one(&db.ctx.pool)
            .await
            .unwrap();
    assert!(!invited.invite_token.contains(&stored));

    // Bad bodies name their fields; a bad token is refused like a used one.
    let bad = membership::register(
        &db.ctx,
        pb::RegisterRequest {
            invite_token: invited.invite_token.clone(),
            name: String::new(),
            password: "short".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(fields(bad), ["/name", "/password"]);
    let forged = format!("{}x", invited.invite_token);
    assert_eq!(
        fields(register(&db, &forged).await.unwrap_err()),
        ["/inviteToken"]
    );

    let joined = register(&db, &invited.invite_token).await.unwrap();
    assert_eq!(joined.org, "acme");
    assert_eq!(joined.member.unwrap().teams, ["acme-payments"]);
    assert_eq!(
        fields(register(&db, &invited.invite_token).await.unwrap_err()),
        ["/inviteToken"],
        "an invitation is single-use"
    );
    // The member sees only its team, and only reads there.
    let member = session_of(&db, "dev@acme.example").await;
    assert_eq!(
        member
            .grants
            .scopes()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["team:acme-payments:clusters:read"]
    );
    resources::get(
        &db.ctx,
        &member,
        ResourceKind::Cluster,
        "acme-payments",
        "c2",
    )
    .await
    .unwrap();
    let other_team = resources::get(
        &db.ctx,
        &member,
        ResourceKind::Cluster,
        "acme-default",
        "c1",
    )
    .await;
    assert!(matches!(other_team, Err(ServiceError::NotFound(_))));
    let write = resources::create(
        &db.ctx,
        &member,
        ResourceKind::Cluster,
        "",
        &cluster_body("acme-payments", "c3", 80),
    )
    .await;
    assert!(
        matches!(write, Err(ServiceError::Forbidden(_))),
        "{write:?}"
    );

    // An expired invitation is refused; an existing user cannot be invited again.
    let late = membership::create_invitation(
        &db.ctx,
        &admin(),
        invitation(
            "acme",
            "late@acme.example",
            "member",
            &["acme-default"],
            &[],
        ),
    )
    .await
    .unwrap();
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE email = 'late@acme.example'")
        .execute(&db.ctx.pool)
        .await
        .unwrap();
    assert_eq!(
        fields(register(&db, &late.invite_token).await.unwrap_err()),
        ["/inviteToken"]
    );
    let again = membership::create_invitation(
        &db.ctx,
        &admin(),
        invitation("acme", "dev@acme.example", "member", &["acme-default"], &[]),
    )
    .await;
    assert!(matches!(again, Err(ServiceError::AlreadyExists(_))));
    db.drop_db().await;
}

#[tokio::test]
async fn nobody_grants_beyond_their_own_scopes() {
    let db = TestDb::new().await;
    bootstrap(&db).await;
    // An org admin holding clusters:write and routes:read across acme.
    let owner = join(
        &db,
        &admin(),
        invitation(
            "acme",
            "owner@acme.example",
            "admin",
            &[],
            &["clusters:write", "routes:read"],
        ),
    )
    .await;

    // Bad grants name their fields: unknown role, admin:all, a team of another organization,
    // a scope beyond the owner's own.
    let refused = membership::create_invitation(
        &db.ctx,
        &owner,
        invitation(
            "acme",
            "x@acme.example",
            "owner",
            &["beta-default"],
            &["admin:all", "routes:write"],
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(fields(refused), ["/role", "/scopes/0"]);
    let refused = membership::create_invitation(
        &db.ctx,
        &owner,
        invitation(
            "acme",
            "x@acme.example",
            "member",
            &["beta-default"],
            &["routes:write"],
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(fields(refused), ["/teams/0", "/scopes/0"]);

    // Within its reach it invites a member of one team.
    let dev = join(
        &db,
        &owner,
        invitation(
            "acme",
            "dev@acme.example",
            "member",
            &["acme-payments"],
            &["clusters:write"],
        ),
    )
    .await;
    let dev_id = dev.user_id.unwrap().to_string();
    let listed = membership::list_members(&db.ctx, &owner, "acme")
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);

    // A member administers nothing (403 in its org); another org's admin sees nothing (404).
    let as_member = membership::list_members(&db.ctx, &dev, "acme").await;
    assert!(matches!(as_member, Err(ServiceError::Forbidden(_))));
    let beta_owner = join(
        &db,
        &admin(),
        invitation(
            "beta",
            "owner@beta.example",
            "admin",
            &[],
            &["clusters:write"],
        ),
    )
    .await;
    let foreign = membership::list_members(&db.ctx, &beta_owner, "acme").await;
    assert!(matches!(foreign, Err(ServiceError::NotFound(_))));

    // Changing a member: never beyond the caller's scopes.
    let update = |by: Caller, scopes: &[&str]| {
        let ctx = db.ctx.clone();
        let request = pb::UpdateMemberRequest {
            org: "acme".into(),
            user_id: dev_id.clone(),
            replace_scopes: true,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        async move { membership::update_member(&ctx, &by, request).await }
    };
    assert_eq!(
        fields(update(owner.clone(), &["routes:write"]).await.unwrap_err()),
        ["/scopes/0"]
    );
    let mut notices = db.ctx.notices.subscribe().await.unwrap();
    let updated = update(owner.clone(), &["routes:read"]).await.unwrap();
    assert_eq!(updated.scopes, ["routes:read"]);
    // The member's live session is evicted and picks up the new scopes.
    assert_eq!(
        notices.next().await.unwrap().id,
        dev.session_id.unwrap().to_string()
    );
    let dev_again = session_of(&db, "dev@acme.example").await;
    assert_eq!(
        dev_again
            .grants
            .scopes()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["team:acme-payments:routes:read"]
    );

    // A narrower admin cannot strip or take over a broader one.
    let narrow = join(
        &db,
        &owner,
        invitation(
            "acme",
            "narrow@acme.example",
            "admin",
            &[],
            &["clusters:write"],
        ),
    )
    .await;
    let remove_owner = membership::remove_member(
        &db.ctx,
        &narrow,
        pb::RemoveMemberRequest {
            org: "acme".into(),
            user_id: owner.user_id.unwrap().to_string(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(remove_owner, Err(ServiceError::Forbidden(ref m)) if m.contains("beyond")),
        "{remove_owner:?}"
    );

    // Removing a member ends its sessions and revokes its tokens.
    let token_id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO tokens (id, user_id, name, scopes, secret_hash) \
         VALUES (gen_random_uuid(), $1, 'dev-token', '{}', 'unused') RETURNING id",
    )
    .bind(dev.user_id.unwrap())
    .fetch_one(&db.ctx.pool)
    .await
    .unwrap();
    membership::remove_member(
        &db.ctx,
        &owner,
        pb::RemoveMemberRequest {
            org: "acme".into(),
            user_id: dev_id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM tokens WHERE id = $1")
        .bind(token_id)
        .fetch_one(&db.ctx.pool)
        .await
        .unwrap();
    assert_eq!(status, "revoked");
    let login_again = login(&db, "dev@acme.example", PASSWORD).await.unwrap();
    let after = caller(&db, &login_again.session_token).await;
    assert!(after.grants.scopes().is_empty(), "no membership, no scopes");
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2::uuid",
    )
    .bind(dev.user_id.unwrap())
    .bind(&login_again.session_id)
    .fetch_one(&db.ctx.pool)
    .await
    .unwrap();
    assert_eq!(live, 0, "the member's earlier sessions ended");
    db.drop_db().await;
}

#[tokio::test]
async fn a_members_tokens_never_hold_more_than_the_member_does_now() {
    let db = TestDb::new().await;
    bootstrap(&db).await;
    let owner = join(
        &db,
        &admin(),
        invitation(
            "acme",
            "owner@acme.example",
            "admin",
            &[],
            &["clusters:write", "routes:write", "tokens:write"],
        ),
    )
    .await;
    let dev = join(
        &db,
        &owner,
        invitation(
            "acme",
            "dev@acme.example",
            "member",
            &["acme-payments"],
            &["clusters:write", "routes:read", "tokens:write"],
        ),
    )
    .await;
    let created = identity::create_token(
        &db.ctx,
        &dev,
        pb::CreateTokenRequest {
            name: "ci".into(),
            scopes: vec![
                "team:acme-payments:clusters:write".into(),
                "team:acme-payments:routes:read".into(),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let scopes_now = || async {
        authenticate(&db, &created.token_secret)
            .await
            .unwrap()
            .principal
            .unwrap()
            .scopes
    };
    assert_eq!(
        scopes_now().await,
        [
            "team:acme-payments:clusters:write",
            "team:acme-payments:routes:read"
        ]
    );

    // The owner takes clusters away from the member: its token loses them too, at once
    // (cached principals of its tokens are evicted), while the token's record is unchanged.
    let mut notices = db.ctx.notices.subscribe().await.unwrap();
    membership::update_member(
        &db.ctx,
        &owner,
        pb::UpdateMemberRequest {
            org: "acme".into(),
            user_id: dev.user_id.unwrap().to_string(),
            replace_scopes: true,
            scopes: vec!["routes:read".into(), "tokens:write".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let token_id = created.token.as_ref().unwrap().id.clone();
    let mut evicted = Vec::new();
    while let Ok(Some(id)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), notices.next()).await
    {
        evicted.push(id.id);
    }
    assert!(evicted.contains(&token_id), "{evicted:?}");
    assert_eq!(scopes_now().await, ["team:acme-payments:routes:read"]);
    db.drop_db().await;
}
