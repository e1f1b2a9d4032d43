//! Sessions: log in with email and password (throttled), log out, and "who am I".
//!
//! Login answers the session credential in the body (usable as `Authorization: Bearer`) and
//! sets it as the `fp_session` cookie (HttpOnly, SameSite=Strict, Secure over HTTPS), with a
//! `csrfToken` that every state-changing request of the session must echo in `x-csrf-token`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowplane_domain::ErrorCode;
use flowplane_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::SESSION_COOKIE;
use crate::caller::{Caller, RequestMeta};
use crate::config::CookieSecure;
use crate::extract::JsonBody;
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginBody {
    #[serde(default)]
    #[schema(required = true, example = "admin@example.com")]
    pub email: String,
    #[serde(default)]
    #[schema(required = true)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub is_platform_admin: bool,
}

impl From<pb::User> for User {
    fn from(u: pb::User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            is_platform_admin: u.is_platform_admin,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// `fp_session_<id>.<secret>`: usable as `Authorization: Bearer`, and also set as the
    /// `fp_session` cookie. Returned only in this response.
    pub session_token: String,
    /// Send as `x-csrf-token` on every POST, PUT, PATCH and DELETE made with this session.
    pub csrf_token: String,
    pub session_id: String,
    /// RFC 3339.
    pub expires_at: String,
    pub user: User,
}

fn missing(what: &str) -> Problem {
    Problem::internal(format!("config answered without {what}"))
}

/// Logs in with email and password. Failed logins are counted per account and per client
/// address across every api-gateway; past the limit the answer is 429 with `Retry-After`.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in; the session is also set as the `fp_session` cookie", body = Session),
        (status = 401, description = "Wrong email or password", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins for this account or address; see `Retry-After`", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, Problem> {
    let mut errors = Vec::new();
    if body.email.trim().is_empty() {
        errors.push(("/email", "is required"));
    }
    if body.password.is_empty() {
        errors.push(("/password", "is required"));
    }
    if let Some((field, message)) = errors.first() {
        return Err(
            Problem::field(ErrorCode::ValidationFailed, *field, *message).with_errors(
                errors
                    .iter()
                    .map(|(f, m)| flowplane_domain::FieldError {
                        field: (*f).into(),
                        message: (*m).into(),
                    })
                    .collect(),
            ),
        );
    }
    let throttle = &state.login_throttle;
    throttle.attempt(&body.email, &meta.client_address).await?;
    let answer = state
        .config
        .identity
        .clone()
        .login(pb::LoginRequest {
            email: body.email.clone(),
            password: body.password,
            request_id: meta.request_id.clone(),
            client_address: meta.client_address.clone(),
        })
        .await;
    let answer = match answer {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            let problem = Problem::from_status(&status);
            // A wrong password stays counted; anything else was not a guess.
            if problem.status() != StatusCode::UNAUTHORIZED {
                throttle.refund(&body.email, &meta.client_address).await?;
            }
            return Err(problem);
        }
    };
    throttle
        .succeeded(&body.email, &meta.client_address)
        .await?;
    let cookie = session_cookie(
        &answer.session_token,
        answer.ttl_seconds,
        secure(state.cookie_secure, &headers),
    )?;
    let session = Session {
        session_token: answer.session_token,
        csrf_token: answer.csrf_token,
        session_id: answer.session_id,
        expires_at: answer.expires_at,
        user: answer.user.ok_or_else(|| missing("a user"))?.into(),
    };
    let mut response = Json(session).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    // The body holds a credential: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `Secure` when configured, or (auto) when a proxy in front says the request came over HTTPS.
fn secure(mode: CookieSecure, headers: &HeaderMap) -> bool {
    match mode {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https")),
    }
}

fn session_cookie(value: &str, max_age: u32, secure: bool) -> Result<HeaderValue, Problem> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .map_err(|e| Problem::internal(format!("session cookie: {e}")))
}

/// Ends the caller's session on every api-gateway at once and clears the cookie. Sessions
/// only: a token is revoked with `DELETE /api/v1/tokens/{id}`.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    operation_id = "logout",
    responses(
        (status = 204, description = "The session ended; the cookie is cleared"),
        (status = 400, description = "The credential is a token, not a session", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "`x-csrf-token` is missing or wrong", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []), ("sessionCookie" = []))
)]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let ended = state
        .config
        .identity
        .clone()
        .logout(pb::LogoutRequest {
            context: Some(caller.context()),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    state.auth.evict_token(&ended.session_id);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", 0, secure(state.cookie_secure, &headers))?,
    );
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub org_id: String,
    pub org: String,
    /// `admin` or `member`.
    pub role: String,
    pub teams: Vec<String>,
    /// As granted; a member's resource-level scopes apply to its teams only.
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub user: User,
    /// `session` or `token`.
    pub auth_method: String,
    /// The session or token id.
    pub credential_id: String,
    /// What this credential may do.
    pub scopes: Vec<String>,
    pub orgs: Vec<Membership>,
    /// The teams this credential reaches.
    pub teams: Vec<String>,
    /// RFC 3339; null for none.
    pub expires_at: Option<String>,
}

/// Who the caller is: user, organizations, the teams it reaches and its scopes. Works for
/// sessions and tokens.
#[utoipa::path(
    get,
    path = "/api/v1/auth/session",
    tag = "auth",
    operation_id = "getSession",
    responses((status = 200, description = "The caller", body = WhoAmI)),
    security(("bearerAuth" = []), ("sessionCookie" = []))
)]
pub async fn session(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WhoAmI>, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .who_am_i(pb::WhoAmIRequest {
            context: Some(caller.context()),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(WhoAmI {
        user: answer.user.ok_or_else(|| missing("a user"))?.into(),
        auth_method: answer.auth_method,
        credential_id: answer.credential_id,
        scopes: answer.scopes,
        orgs: answer
            .memberships
            .into_iter()
            .map(|m| Membership {
                org_id: m.org_id,
                org: m.org_name,
                role: m.role,
                teams: m.teams,
                scopes: m.scopes,
            })
            .collect(),
        teams: answer.teams,
        expires_at: super::non_empty(answer.expires_at),
    }))
}
