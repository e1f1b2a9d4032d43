//! Reading the audit trail. A caller sees the rows of the teams it holds any scope on (every
//! team of its organization for resource-level scopes, every row for `admin:all`), plus its own
//! authentication events that concern no team (a row about a team, such as a break-glass use
//! of `admin:all`, is visible only to those who see that team). Rows hold no secrets: writers store token ids and resource specs,
//! never credentials.

use chrono::{DateTime, Utc};
use flowplane_domain::ValidationErrors;
use flowplane_proto::identity::v1 as pb;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::Context;
use crate::authz::Caller;
use crate::error::ServiceError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

fn timestamp(raw: &str, field: &str, errors: &mut ValidationErrors) -> Option<DateTime<Utc>> {
    if raw.is_empty() {
        return None;
    }
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            errors.add(field, "must be an RFC 3339 timestamp");
            None
        }
    }
}

/// Newest first. The cursor is the id of the last row of the previous page.
pub async fn list(
    ctx: &Context,
    caller: &Caller,
    req: pb::ListAuditLogsRequest,
) -> Result<pb::ListAuditLogsResponse, ServiceError> {
    let mut errors = ValidationErrors::new();
    let since = timestamp(&req.since, "/since", &mut errors);
    let until = timestamp(&req.until, "/until", &mut errors);
    let cursor = match req.cursor.as_str() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                errors.add("/cursor", "is not a cursor from a previous page");
                None
            }
        },
    };
    errors.into_result()?;
    let limit = match req.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let filter = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    let seen = crate::store::team_filter_binds(&caller.grants.visible_teams());
    let sql = format!(
        "SELECT id, occurred_at, action, actor_user_id, actor_token_id, org_id, team, \
         resource_kind, resource_name, revision, before, after, request_id, client_address \
         FROM audit_log WHERE \
         ($1 OR team IN (SELECT t.name FROM teams t WHERE {}) \
          OR (actor_user_id = $5 AND action LIKE 'auth.%' AND team IS NULL)) \
         AND ($6::text IS NULL OR action = $6) \
         AND ($7::text IS NULL OR team = $7) \
         AND ($8::text IS NULL OR resource_kind = $8) \
         AND ($9::timestamptz IS NULL OR occurred_at >= $9) \
         AND ($10::timestamptz IS NULL OR occurred_at < $10) \
         AND ($11::bigint IS NULL OR id < $11) \
         ORDER BY id DESC LIMIT $12",
        crate::store::team_filter_sql(1)
    );
    let rows = sqlx::query(&sql)
        .bind(seen.all)
        .bind(seen.org_id)
        .bind(seen.whole_org)
        .bind(&seen.names)
        .bind(caller.user_id)
        .bind(filter(&req.action))
        .bind(filter(&req.team))
        .bind(filter(&req.resource_kind))
        .bind(since)
        .bind(until)
        .bind(cursor)
        .bind(i64::from(limit) + 1)
        .fetch_all(&ctx.pool)
        .await?;
    let more = rows.len() > limit as usize;
    let items = rows
        .iter()
        .take(limit as usize)
        .map(event_from_row)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let next_cursor = match items.last() {
        Some(last) if more => last.id.to_string(),
        _ => String::new(),
    };
    Ok(pb::ListAuditLogsResponse { items, next_cursor })
}

fn event_from_row(row: &PgRow) -> Result<pb::AuditEvent, sqlx::Error> {
    let uuid = |v: Option<Uuid>| v.map(|u| u.to_string()).unwrap_or_default();
    let json = |v: Option<serde_json::Value>| v.map(|j| j.to_string()).unwrap_or_default();
    Ok(pb::AuditEvent {
        id: row.try_get("id")?,
        occurred_at: row.try_get::<DateTime<Utc>, _>("occurred_at")?.to_rfc3339(),
        action: row.try_get("action")?,
        actor_user_id: uuid(row.try_get("actor_user_id")?),
        actor_token_id: uuid(row.try_get("actor_token_id")?),
        org_id: uuid(row.try_get("org_id")?),
        team: row
            .try_get::<Option<String>, _>("team")?
            .unwrap_or_default(),
        resource_kind: row
            .try_get::<Option<String>, _>("resource_kind")?
            .unwrap_or_default(),
        resource_name: row
            .try_get::<Option<String>, _>("resource_name")?
            .unwrap_or_default(),
        revision: row.try_get::<Option<i64>, _>("revision")?.unwrap_or(0),
        before_json: json(row.try_get("before")?),
        after_json: json(row.try_get("after")?),
        request_id: row
            .try_get::<Option<String>, _>("request_id")?
            .unwrap_or_default(),
        client_address: row
            .try_get::<Option<String>, _>("client_address")?
            .unwrap_or_default(),
    })
}
