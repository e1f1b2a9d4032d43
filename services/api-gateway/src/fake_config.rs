//! A small in-process stand-in for the config service (identity + resources) for the
//! gateway's own tests: a real tonic server on a loopback port, checking the service
//! credential, keeping resources in memory and recording what the gateway sent. It decides
//! nothing the way config does; the end-to-end tests against the real config live elsewhere.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicUsize, Ordering};

use flowplane_proto::common::v1 as common;
use flowplane_proto::identity::v1 as id;
use flowplane_proto::identity::v1::identity_service_server::{
    IdentityService, IdentityServiceServer,
};
use flowplane_proto::resources::v1 as res;
use flowplane_proto::resources::v1::resource_service_server::{
    ResourceService, ResourceServiceServer,
};
use flowplane_runtime::credential::{Service, ServiceSecret};
use prost::Message;
use tonic::{Code, Request, Response, Status};

/// The service secret the fake derives credentials and dataplane tokens from, as config does.
pub const SERVICE_SECRET: &str = "test-service-secret-0123456789";

fn secret() -> ServiceSecret {
    ServiceSecret::new(SERVICE_SECRET).unwrap_or_else(|e| unreachable!("secret: {e}"))
}

/// The gateway's credential under [`SERVICE_SECRET`].
pub fn gateway_credential() -> String {
    secret().credential(Service::ApiGateway)
}

/// Refuses calls that do not carry the gateway's credential, as config does.
fn only_the_gateway(request: Request<()>) -> Result<Request<()>, Status> {
    let presented = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match secret().authenticate(presented) {
        Some(Service::ApiGateway) => Ok(request),
        _ => Err(Status::unauthenticated(
            "missing or invalid service credential",
        )),
    }
}

/// The principal "signed" as config would; the fake's MAC is empty (nothing checks it here).
fn signed(principal: &common::Principal) -> Option<common::SignedPrincipal> {
    Some(common::SignedPrincipal {
        claims: common::AssertedPrincipal {
            principal: Some(principal.clone()),
            expires_at_unix_ms: i64::MAX,
        }
        .encode_to_vec(),
        mac: Vec::new(),
    })
}
pub const SETUP_TOKEN: &str = "setup-secret";
/// A session credential the fake accepts, and its CSRF token.
pub const SESSION: &str = "fp_session_s1.ok";
pub const SESSION_CSRF: &str = "csrf-of-s1";
/// The installation the fake config answers for.
pub const INSTALLATION: &str = "fake-installation";

/// A credential the fake accepts: `fp_pat_<token id>.ok`.
pub fn credential(token_id: &str) -> String {
    format!("fp_pat_{token_id}.ok")
}

/// What the gateway sent, for assertions.
#[derive(Default)]
pub struct Calls {
    pub authenticate: AtomicUsize,
    pub cache_seconds: AtomicU32,
    pub contexts: Mutex<Vec<common::RequestContext>>,
    pub teams: Mutex<Vec<String>>,
    pub if_revisions: Mutex<Vec<i64>>,
    pub revoked: Mutex<HashSet<String>>,
    /// Tokens rotated: their `.ok` credential is refused, `.rotated` accepted.
    pub rotated: Mutex<HashSet<String>>,
    pub audit_requests: Mutex<Vec<id::ListAuditLogsRequest>>,
    pub token_updates: Mutex<Vec<id::UpdateTokenRequest>>,
    resources: Mutex<Vec<res::Resource>>,
    revision: AtomicI64,
}

impl Calls {
    fn record(&self, context: &Option<common::RequestContext>) {
        if let Some(context) = context {
            lock(&self.contexts).push(context.clone());
        }
    }

    pub fn last_context(&self) -> Option<common::RequestContext> {
        lock(&self.contexts).last().cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct FakeConfig {
    pub addr: SocketAddr,
    pub calls: Arc<Calls>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeConfig {
    pub async fn start() -> Self {
        let calls = Arc::new(Calls::default());
        calls.cache_seconds.store(30, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| unreachable!("binding a loopback port: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| unreachable!("local addr: {e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(IdentityServiceServer::with_interceptor(
                FakeIdentity(calls.clone()),
                only_the_gateway,
            ))
            .add_service(ResourceServiceServer::with_interceptor(
                FakeResources(calls.clone()),
                only_the_gateway,
            ))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move {
                    let _ = stopped.await;
                },
            );
        tokio::spawn(server);
        Self {
            addr,
            calls,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A refusal shaped like config's: a gRPC code plus an `ErrorDetail`.
fn refusal(code: Code, error_code: &str, message: &str, errors: &[(&str, &str)]) -> Status {
    let detail = common::ErrorDetail {
        code: error_code.into(),
        errors: errors
            .iter()
            .map(|(field, message)| common::FieldError {
                field: (*field).into(),
                message: (*message).into(),
            })
            .collect(),
    };
    Status::with_details(code, message, detail.encode_to_vec().into())
}

fn token(token_id: &str, name: &str, status: &str) -> id::Token {
    id::Token {
        id: token_id.into(),
        name: name.into(),
        description: String::new(),
        scopes: vec!["admin:all".into()],
        status: status.into(),
        expires_at: String::new(),
        created_at: "2025-01-01T00:00:00Z".into(),
        last_used_at: String::new(),
        created_by: "u-admin".into(),
    }
}

struct FakeIdentity(Arc<Calls>);

#[tonic::async_trait]
impl IdentityService for FakeIdentity {
    async fn bootstrap_status(
        &self,
        _: Request<id::BootstrapStatusRequest>,
    ) -> Result<Response<id::BootstrapStatusResponse>, Status> {
        Ok(Response::new(id::BootstrapStatusResponse {
            needs_initialization: true,
        }))
    }

    async fn initialize(
        &self,
        request: Request<id::InitializeRequest>,
    ) -> Result<Response<id::InitializeResponse>, Status> {
        let r = request.into_inner();
        if r.setup_token != SETUP_TOKEN {
            return Err(refusal(
                Code::Unauthenticated,
                "unauthenticated",
                "invalid setup token",
                &[],
            ));
        }
        if r.email.is_empty() {
            return Err(refusal(
                Code::InvalidArgument,
                "validation_failed",
                "the request is invalid",
                &[("/email", "must not be empty")],
            ));
        }
        Ok(Response::new(id::InitializeResponse {
            user_id: "u-admin".into(),
            token: Some(token("t-admin", "bootstrap", "active")),
            token_secret: credential("t-admin"),
        }))
    }

    async fn authenticate(
        &self,
        request: Request<id::AuthenticateRequest>,
    ) -> Result<Response<id::AuthenticateResponse>, Status> {
        self.0.authenticate.fetch_add(1, Ordering::SeqCst);
        let r = request.into_inner();
        if r.credential == SESSION {
            use sha2::Digest;
            let principal = common::Principal {
                user_id: "user-session".into(),
                scopes: vec!["admin:all".into()],
                email: "admin@example.com".into(),
                session_id: "s1".into(),
                ..Default::default()
            };
            return Ok(Response::new(id::AuthenticateResponse {
                signed_principal: signed(&principal),
                principal: Some(principal),
                cache_seconds: self.0.cache_seconds.load(Ordering::SeqCst),
                csrf_token_sha256: hex::encode(sha2::Sha256::digest(SESSION_CSRF.as_bytes())),
                installation_id: INSTALLATION.into(),
            }));
        }
        let rotated = lock(&self.0.rotated).clone();
        let token_id = r
            .credential
            .strip_prefix("fp_pat_")
            .and_then(|rest| match rest.rsplit_once('.') {
                Some((t, "ok")) if !rotated.contains(t) => Some(t),
                Some((t, "rotated")) if rotated.contains(t) => Some(t),
                _ => None,
            })
            .filter(|t| !lock(&self.0.revoked).contains(*t));
        match token_id {
            Some(token_id) => {
                let principal = common::Principal {
                    user_id: format!("user-{token_id}"),
                    token_id: token_id.into(),
                    scopes: vec!["admin:all".into()],
                    org_id: String::new(),
                    email: "admin@example.com".into(),
                    session_id: String::new(),
                };
                Ok(Response::new(id::AuthenticateResponse {
                    signed_principal: signed(&principal),
                    principal: Some(principal),
                    cache_seconds: self.0.cache_seconds.load(Ordering::SeqCst),
                    csrf_token_sha256: String::new(),
                    installation_id: INSTALLATION.into(),
                }))
            }
            None => Err(refusal(
                Code::Unauthenticated,
                "unauthenticated",
                "invalid credential",
                &[],
            )),
        }
    }

    async fn create_organization(
        &self,
        request: Request<id::CreateOrganizationRequest>,
    ) -> Result<Response<id::CreateOrganizationResponse>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        Ok(Response::new(id::CreateOrganizationResponse {
            organization: Some(id::Organization {
                id: "o-1".into(),
                name: r.name.clone(),
                display_name: r.display_name,
                created_at: "2025-01-01T00:00:00Z".into(),
            }),
            default_team: Some(id::Team {
                id: "team-1".into(),
                org_id: "o-1".into(),
                name: format!("{}-default", r.name),
                display_name: "Default".into(),
                created_at: "2025-01-01T00:00:00Z".into(),
            }),
        }))
    }

    async fn list_organizations(
        &self,
        request: Request<id::ListOrganizationsRequest>,
    ) -> Result<Response<id::ListOrganizationsResponse>, Status> {
        self.0.record(&request.into_inner().context);
        Ok(Response::new(id::ListOrganizationsResponse {
            items: vec![id::Organization {
                id: "o-1".into(),
                name: "my-org".into(),
                display_name: "My Organization".into(),
                created_at: "2025-01-01T00:00:00Z".into(),
            }],
        }))
    }

    async fn create_token(
        &self,
        request: Request<id::CreateTokenRequest>,
    ) -> Result<Response<id::CreateTokenResponse>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        let mut created = token("t-new", &r.name, "active");
        created.description = r.description;
        created.scopes = r.scopes;
        created.expires_at = r.expires_at;
        Ok(Response::new(id::CreateTokenResponse {
            token: Some(created),
            token_secret: credential("t-new"),
        }))
    }

    async fn get_token(
        &self,
        request: Request<id::GetTokenRequest>,
    ) -> Result<Response<id::Token>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        if r.id == "missing" {
            return Err(refusal(
                Code::NotFound,
                "not_found",
                "token 'missing' not found",
                &[],
            ));
        }
        Ok(Response::new(token(&r.id, "some-token", "active")))
    }

    async fn list_tokens(
        &self,
        request: Request<id::ListTokensRequest>,
    ) -> Result<Response<id::ListTokensResponse>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        let all: Vec<id::Token> = (0..3)
            .map(|i| token(&format!("t-{i}"), "t", "active"))
            .collect();
        let items = all
            .into_iter()
            .skip(r.offset as usize)
            .take(r.limit as usize)
            .collect();
        Ok(Response::new(id::ListTokensResponse { items, total: 3 }))
    }

    async fn revoke_token(
        &self,
        request: Request<id::RevokeTokenRequest>,
    ) -> Result<Response<id::Token>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        lock(&self.0.revoked).insert(r.id.clone());
        Ok(Response::new(token(&r.id, "t", "revoked")))
    }

    async fn update_token(
        &self,
        request: Request<id::UpdateTokenRequest>,
    ) -> Result<Response<id::Token>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        lock(&self.0.token_updates).push(r.clone());
        if r.scopes.iter().any(|s| s == "admin:all") {
            return Err(refusal(
                Code::InvalidArgument,
                "validation_failed",
                "the request is invalid",
                &[(
                    "/scopes/0",
                    "exceeds the scopes of the credential creating it",
                )],
            ));
        }
        let mut updated = token(&r.id, r.name.as_deref().unwrap_or("t"), "active");
        if r.replace_scopes {
            updated.scopes = r.scopes;
        }
        updated.expires_at = r.expires_at.unwrap_or_default();
        Ok(Response::new(updated))
    }

    async fn rotate_token(
        &self,
        request: Request<id::RotateTokenRequest>,
    ) -> Result<Response<id::RotateTokenResponse>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        if lock(&self.0.revoked).contains(&r.id) {
            return Err(refusal(
                Code::Aborted,
                "conflict",
                "only an active token can be rotated",
                &[],
            ));
        }
        lock(&self.0.rotated).insert(r.id.clone());
        Ok(Response::new(id::RotateTokenResponse {
            token: Some(token(&r.id, "t", "active")),
            token_secret: format!("fp_pat_{}.rotated", r.id),
        }))
    }

    async fn list_audit_logs(
        &self,
        request: Request<id::ListAuditLogsRequest>,
    ) -> Result<Response<id::ListAuditLogsResponse>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        lock(&self.0.audit_requests).push(r.clone());
        let item = id::AuditEvent {
            id: 7,
            occurred_at: "2025-01-01T00:00:00Z".into(),
            action: "cluster.created".into(),
            actor_user_id: "u-admin".into(),
            actor_token_id: "t-admin".into(),
            org_id: "o-1".into(),
            team: "my-org-default".into(),
            resource_kind: "clusters".into(),
            resource_name: "c1".into(),
            revision: 3,
            before_json: String::new(),
            after_json: r#"{"name":"c1"}"#.into(),
            request_id: "req-1".into(),
            client_address: String::new(),
        };
        Ok(Response::new(id::ListAuditLogsResponse {
            items: vec![item],
            next_cursor: if r.cursor.is_empty() {
                "7".into()
            } else {
                String::new()
            },
        }))
    }

    async fn list_teams(
        &self,
        request: Request<id::ListTeamsRequest>,
    ) -> Result<Response<id::ListTeamsResponse>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        if r.org != "my-org" {
            return Err(refusal(
                Code::NotFound,
                "not_found",
                "organization not found",
                &[],
            ));
        }
        Ok(Response::new(id::ListTeamsResponse {
            items: vec![id::Team {
                id: "team-1".into(),
                org_id: "o-1".into(),
                name: "my-org-default".into(),
                display_name: "Default".into(),
                created_at: "2025-01-01T00:00:00Z".into(),
            }],
        }))
    }

    async fn create_team(
        &self,
        request: Request<id::CreateTeamRequest>,
    ) -> Result<Response<id::Team>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        if r.name == "taken" {
            return Err(refusal(
                Code::AlreadyExists,
                "already_exists",
                "team 'taken' already exists",
                &[],
            ));
        }
        Ok(Response::new(id::Team {
            id: "team-2".into(),
            org_id: "o-1".into(),
            name: r.name,
            display_name: r.display_name,
            created_at: "2025-01-01T00:00:00Z".into(),
        }))
    }

    // Sessions and membership are proven against the real config service (services/config
    // tests and tests/e2e/tests/sessions.rs); the router tests here need only their routes.
    async fn login(
        &self,
        _: Request<id::LoginRequest>,
    ) -> Result<Response<id::LoginResponse>, Status> {
        Err(Status::unimplemented("login"))
    }

    async fn logout(
        &self,
        _: Request<id::LogoutRequest>,
    ) -> Result<Response<id::LogoutResponse>, Status> {
        Err(Status::unimplemented("logout"))
    }

    async fn who_am_i(
        &self,
        _: Request<id::WhoAmIRequest>,
    ) -> Result<Response<id::WhoAmIResponse>, Status> {
        Err(Status::unimplemented("who_am_i"))
    }

    async fn create_invitation(
        &self,
        _: Request<id::CreateInvitationRequest>,
    ) -> Result<Response<id::CreateInvitationResponse>, Status> {
        Err(Status::unimplemented("create_invitation"))
    }

    async fn register(
        &self,
        _: Request<id::RegisterRequest>,
    ) -> Result<Response<id::RegisterResponse>, Status> {
        Err(Status::unimplemented("register"))
    }

    async fn list_members(
        &self,
        _: Request<id::ListMembersRequest>,
    ) -> Result<Response<id::ListMembersResponse>, Status> {
        Err(Status::unimplemented("list_members"))
    }

    async fn update_member(
        &self,
        _: Request<id::UpdateMemberRequest>,
    ) -> Result<Response<id::Member>, Status> {
        Err(Status::unimplemented("update_member"))
    }

    async fn remove_member(
        &self,
        _: Request<id::RemoveMemberRequest>,
    ) -> Result<Response<id::RemoveMemberResponse>, Status> {
        Err(Status::unimplemented("remove_member"))
    }
}

struct FakeResources(Arc<Calls>);

fn invalid(field: &str, message: &str) -> Status {
    refusal(
        Code::InvalidArgument,
        "validation_failed",
        "the request is invalid",
        &[(field, message)],
    )
}

impl FakeResources {
    fn find(&self, kind: i32, team: &str, name: &str) -> Result<res::Resource, Status> {
        lock(&self.0.resources)
            .iter()
            .find(|r| r.kind == kind && r.name == name && (team.is_empty() || r.team == team))
            .cloned()
            .ok_or_else(|| {
                refusal(
                    Code::NotFound,
                    "not_found",
                    &format!("'{name}' not found"),
                    &[],
                )
            })
    }

    fn check_revision(&self, stored: &res::Resource, if_revision: i64) -> Result<(), Status> {
        lock(&self.0.if_revisions).push(if_revision);
        if if_revision != 0 && if_revision != stored.revision {
            return Err(refusal(
                Code::FailedPrecondition,
                "revision_mismatch",
                &format!(
                    "the resource is at revision {}, not {if_revision}",
                    stored.revision
                ),
                &[],
            ));
        }
        Ok(())
    }
}

fn parse_body(body: &str) -> Result<serde_json::Map<String, serde_json::Value>, Status> {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) => Err(invalid("", "body must be a JSON object")),
        Err(e) => Err(invalid("", &format!("body is not valid JSON: {e}"))),
    }
}

#[tonic::async_trait]
impl ResourceService for FakeResources {
    async fn create(
        &self,
        request: Request<res::CreateResourceRequest>,
    ) -> Result<Response<res::Resource>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        lock(&self.0.teams).push(r.team.clone());
        let mut body = parse_body(&r.body_json)?;
        let body_team = body
            .remove("team")
            .and_then(|v| v.as_str().map(str::to_string));
        let team = match (r.team.as_str(), body_team) {
            ("", Some(t)) => t,
            ("", None) => return Err(invalid("/team", "is required")),
            (path, Some(t)) if t != path => {
                return Err(invalid("/team", "does not match the path"));
            }
            (path, _) => path.to_string(),
        };
        let Some(name) = body
            .remove("name")
            .and_then(|v| v.as_str().map(str::to_string))
        else {
            return Err(invalid("/name", "is required"));
        };
        if r.kind == res::ResourceKind::Cluster as i32 && !body.contains_key("endpoints") {
            return Err(invalid("/endpoints", "is required"));
        }
        if self.find(r.kind, &team, &name).is_ok() {
            return Err(refusal(
                Code::AlreadyExists,
                "already_exists",
                "already exists",
                &[],
            ));
        }
        let revision = self.0.revision.fetch_add(1, Ordering::SeqCst) + 1;
        let resource = res::Resource {
            kind: r.kind,
            id: format!("id-{revision}"),
            team,
            name,
            revision,
            spec_json: serde_json::Value::Object(body).to_string(),
            created_at: "2025-01-01T00:00:00Z".into(),
            updated_at: "2025-01-01T00:00:00Z".into(),
            status: vec![],
            deployment_token: String::new(),
            quarantine: None,
        };
        lock(&self.0.resources).push(resource.clone());
        Ok(Response::new(resource))
    }

    async fn get(
        &self,
        request: Request<res::GetResourceRequest>,
    ) -> Result<Response<res::Resource>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        lock(&self.0.teams).push(r.team.clone());
        let mut found = self.find(r.kind, &r.team, &r.name)?;
        if r.for_deployment && r.kind == res::ResourceKind::Dataplane as i32 {
            found.deployment_token = secret().dataplane_tokens().issue(&found.team, &found.id);
        }
        Ok(Response::new(found))
    }

    async fn list(
        &self,
        request: Request<res::ListResourcesRequest>,
    ) -> Result<Response<res::ListResourcesResponse>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        lock(&self.0.teams).push(r.team.clone());
        let start: usize = r.cursor.parse().unwrap_or(0);
        let matching: Vec<res::Resource> = lock(&self.0.resources)
            .iter()
            .filter(|x| x.kind == r.kind && (r.team.is_empty() || x.team == r.team))
            .cloned()
            .collect();
        let end = (start + r.limit as usize).min(matching.len());
        let items = matching
            .get(start..end)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let next_cursor = if end < matching.len() {
            end.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(res::ListResourcesResponse {
            items,
            next_cursor,
        }))
    }

    async fn update(
        &self,
        request: Request<res::UpdateResourceRequest>,
    ) -> Result<Response<res::Resource>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        lock(&self.0.teams).push(r.team.clone());
        let stored = self.find(r.kind, &r.team, &r.name)?;
        self.check_revision(&stored, r.if_revision)?;
        let mut body = parse_body(&r.body_json)?;
        body.remove("team");
        body.remove("name");
        let revision = self.0.revision.fetch_add(1, Ordering::SeqCst) + 1;
        let mut resources = lock(&self.0.resources);
        let Some(slot) = resources.iter_mut().find(|x| x.id == stored.id) else {
            return Err(refusal(Code::NotFound, "not_found", "gone", &[]));
        };
        slot.revision = revision;
        slot.spec_json = serde_json::Value::Object(body).to_string();
        Ok(Response::new(slot.clone()))
    }

    async fn delete(
        &self,
        request: Request<res::DeleteResourceRequest>,
    ) -> Result<Response<res::DeleteResourceResponse>, Status> {
        let r = request.into_inner();
        self.0.record(&r.context);
        lock(&self.0.teams).push(r.team.clone());
        let stored = self.find(r.kind, &r.team, &r.name)?;
        self.check_revision(&stored, r.if_revision)?;
        lock(&self.0.resources).retain(|x| x.id != stored.id);
        let revision = self.0.revision.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Response::new(res::DeleteResourceResponse { revision }))
    }
}
