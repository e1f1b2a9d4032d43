//! The audit trail, newest first, scoped to what the caller may see.

use axum::Json;
use axum::extract::State;
use flowplane_proto::identity::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::extract::QueryParams;
use crate::paging;
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct AuditLogQuery {
    /// Exact action, e.g. `auth.token.rotated` or `cluster.created`.
    pub action: Option<String>,
    /// Only rows of this team.
    pub team: Option<String>,
    /// Only rows about this kind of resource (`clusters`, `tokens`, `teams`, …).
    pub resource_kind: Option<String>,
    /// RFC 3339; rows at or after this instant.
    pub since: Option<String>,
    /// RFC 3339; rows before this instant.
    pub until: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `nextCursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: i64,
    pub occurred_at: String,
    pub action: String,
    pub actor_user_id: Option<String>,
    pub actor_token_id: Option<String>,
    pub org_id: Option<String>,
    pub team: Option<String>,
    pub resource_kind: Option<String>,
    pub resource_name: Option<String>,
    pub revision: Option<i64>,
    /// The resource before the change (secrets are never recorded).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The resource after the change (secrets are never recorded).
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
    pub client_address: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventList {
    pub items: Vec<AuditEvent>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn json(raw: String) -> Option<serde_json::Value> {
    super::non_empty(raw).and_then(|r| serde_json::from_str(&r).ok())
}

impl From<pb::AuditEvent> for AuditEvent {
    fn from(e: pb::AuditEvent) -> Self {
        use super::non_empty;
        Self {
            id: e.id,
            occurred_at: e.occurred_at,
            action: e.action,
            actor_user_id: non_empty(e.actor_user_id),
            actor_token_id: non_empty(e.actor_token_id),
            org_id: non_empty(e.org_id),
            team: non_empty(e.team),
            resource_kind: non_empty(e.resource_kind),
            resource_name: non_empty(e.resource_name),
            revision: (e.revision != 0).then_some(e.revision),
            before: json(e.before_json),
            after: json(e.after_json),
            request_id: non_empty(e.request_id),
            client_address: non_empty(e.client_address),
        }
    }
}

/// Lists audit events: every row for `admin:all`; otherwise the rows of the teams the caller
/// holds any scope on (every team of its organization for resource-level scopes), plus its own
/// authentication events.
#[utoipa::path(
    get,
    path = "/api/v1/audit-logs",
    tag = "audit",
    operation_id = "listAuditLogs",
    params(AuditLogQuery),
    responses(
        (status = 200, description = "One page of audit events, newest first", body = AuditEventList),
        (status = 400, description = "A bad filter or cursor", body = ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditLogQuery>,
) -> Result<Json<AuditEventList>, Problem> {
    let limit = paging::limit(query.limit.as_deref())?;
    let answer = state
        .config
        .identity
        .clone()
        .list_audit_logs(pb::ListAuditLogsRequest {
            context: Some(caller.context()),
            action: query.action.unwrap_or_default(),
            team: query.team.unwrap_or_default(),
            resource_kind: query.resource_kind.unwrap_or_default(),
            since: query.since.unwrap_or_default(),
            until: query.until.unwrap_or_default(),
            limit,
            cursor: query.cursor.unwrap_or_default(),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(AuditEventList {
        items: answer.items.into_iter().map(Into::into).collect(),
        next_cursor: super::non_empty(answer.next_cursor),
    }))
}
