//! Personal access tokens: create and rotate (the secret is shown once), list, read, update,
//! revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flowplane_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::paging;
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenBody {
    #[serde(default)]
    #[schema(required = true, example = "ci-deployer")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Scopes within the caller's own: `admin:all`, `{resource}:read|write` or
    /// `team:{team}:{resource}:read|write`.
    #[serde(default)]
    #[schema(required = true, example = json!(["team:my-org-default:clusters:write"]))]
    pub scopes: Vec<String>,
    /// RFC 3339; omit or null for no expiry.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    /// RFC 3339; null for no expiry.
    pub expires_at: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// The user who created the token.
    pub created_by: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token_info: Token,
    /// The bearer credential `fp_pat_<id>.<secret>`. Returned only in this response.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<Token>,
    /// How many tokens the caller may see in all.
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenListQuery {
    /// Page size, 1-500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// How many tokens to skip.
    #[param(value_type = Option<u32>)]
    pub offset: Option<String>,
}

impl From<pb::Token> for Token {
    fn from(t: pb::Token) -> Self {
        Self {
            id: t.id,
            name: t.name,
            description: t.description,
            scopes: t.scopes,
            status: t.status,
            expires_at: super::non_empty(t.expires_at),
            created_at: t.created_at,
            last_used_at: super::non_empty(t.last_used_at),
            created_by: t.created_by,
        }
    }
}

fn missing_token() -> Problem {
    Problem::internal("config answered without a token")
}

/// Creates a personal access token for the caller.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "createToken",
    request_body = CreateTokenBody,
    responses(
        (status = 201, description = "Created; `token` is the secret, shown only now", body = CreatedToken),
        (status = 403, description = "The scopes exceed the caller's own", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateTokenBody>,
) -> Result<impl IntoResponse, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .create_token(pb::CreateTokenRequest {
            context: Some(caller.context()),
            name: body.name,
            description: body.description,
            scopes: body.scopes,
            expires_at: body.expires_at.unwrap_or_default(),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    let token = answer.token.ok_or_else(missing_token)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token_info: token.into(),
            token: answer.token_secret,
        }),
    ))
}

/// Lists the tokens the caller may see.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "listTokens",
    params(TokenListQuery),
    responses((status = 200, description = "One page of tokens", body = TokenList)),
    security(("bearerAuth" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<TokenListQuery>,
) -> Result<Json<TokenList>, Problem> {
    let limit = paging::limit(query.limit.as_deref())?;
    let offset = paging::offset(query.offset.as_deref())?;
    let answer = state
        .config
        .identity
        .clone()
        .list_tokens(pb::ListTokensRequest {
            context: Some(caller.context()),
            limit,
            offset,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(TokenList {
        items: answer.items.into_iter().map(Into::into).collect(),
        total: answer.total,
        limit,
        offset,
    }))
}

/// Reads one token (never its secret).
#[utoipa::path(
    get,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    operation_id = "getToken",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, description = "The token", body = Token)),
    security(("bearerAuth" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<Token>, Problem> {
    let token = state
        .config
        .identity
        .clone()
        .get_token(pb::GetTokenRequest {
            context: Some(caller.context()),
            id,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(token.into()))
}

/// Revokes a token. It stops working at once on this gateway and, through config's notices,
/// on every other gateway (at the latest when its cache entry expires, at most 60 s).
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    operation_id = "revokeToken",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked")),
    security(("bearerAuth" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, Problem> {
    let revoked = state
        .config
        .identity
        .clone()
        .revoke_token(pb::RevokeTokenRequest {
            context: Some(caller.context()),
            id: id.clone(),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    state.auth.evict_token(&id);
    if !revoked.id.is_empty() && revoked.id != id {
        state.auth.evict_token(&revoked.id);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTokenBody {
    /// Omit to keep.
    pub name: Option<String>,
    /// Omit to keep.
    pub description: Option<String>,
    /// Replaces the scopes; each must be within the caller's own. Omit to keep.
    pub scopes: Option<Vec<String>>,
    /// RFC 3339 in the future; `null` removes the expiry; omit to keep.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
}

/// Tells `"expiresAt": null` (remove) apart from a missing field (keep).
fn present<'de, D>(deserializer: D) -> Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Changes a token's name, description, scopes or expiry. Scope and expiry changes take
/// effect on every gateway at once.
#[utoipa::path(
    patch,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    operation_id = "updateToken",
    params(("id" = String, Path, description = "Token id")),
    request_body = UpdateTokenBody,
    responses(
        (status = 200, description = "The updated token", body = Token),
        (status = 400, description = "Invalid, or scopes beyond the caller's own", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The token holds scopes beyond the caller's own", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such token visible to the caller", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The token is revoked or expired", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<UpdateTokenBody>,
) -> Result<Json<Token>, Problem> {
    let replace_scopes = body.scopes.is_some();
    let token = state
        .config
        .identity
        .clone()
        .update_token(pb::UpdateTokenRequest {
            context: Some(caller.context()),
            id: id.clone(),
            name: body.name,
            description: body.description,
            replace_scopes,
            scopes: body.scopes.unwrap_or_default(),
            expires_at: body.expires_at.map(Option::unwrap_or_default),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    state.auth.evict_token(&id);
    Ok(Json(token.into()))
}

/// Gives a token a new secret, returned only in this response. The old secret stops working
/// at once, on every gateway.
#[utoipa::path(
    post,
    path = "/api/v1/tokens/{id}/rotate",
    tag = "tokens",
    operation_id = "rotateToken",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "Rotated; `token` is the new secret, shown only now", body = CreatedToken),
        (status = 403, description = "The token holds scopes beyond the caller's own", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such token visible to the caller", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The token is revoked or expired", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<CreatedToken>, Problem> {
    let answer = state
        .config
        .identity
        .clone()
        .rotate_token(pb::RotateTokenRequest {
            context: Some(caller.context()),
            id: id.clone(),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    state.auth.evict_token(&id);
    let token = answer.token.ok_or_else(missing_token)?;
    Ok(Json(CreatedToken {
        token_info: token.into(),
        token: answer.token_secret,
    }))
}
