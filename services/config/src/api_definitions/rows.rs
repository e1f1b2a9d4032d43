//! SQL for the `api_definitions` table. Like `store`, every function takes a
//! [`TeamAccess`] or a [`TeamFilter`], never a bare team name.

use chrono::{DateTime, Utc};
use flowplane_domain::scopes::TeamFilter;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::authz::TeamAccess;

#[derive(Debug, Clone)]
pub struct DefinitionRow {
    pub id: Uuid,
    pub team: String,
    pub name: String,
    pub spec: serde_json::Value,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT d.id, t.name AS team, d.name, d.spec, d.revision, d.created_at, \
     d.updated_at FROM api_definitions d JOIN teams t ON t.id = d.team_id";

fn from_row(row: &PgRow) -> Result<DefinitionRow, sqlx::Error> {
    Ok(DefinitionRow {
        id: row.try_get("id")?,
        team: row.try_get("team")?,
        name: row.try_get("name")?,
        spec: row.try_get("spec")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// One definition; `for_update` locks its row for the rest of the transaction.
pub async fn get(
    conn: &mut PgConnection,
    team: &TeamAccess,
    name: &str,
    for_update: bool,
) -> Result<Option<DefinitionRow>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE OF d" } else { "" };
    let sql = format!("{SELECT} WHERE d.team_id = $1 AND d.name = $2{lock}");
    sqlx::query(&sql)
        .bind(team.id())
        .bind(name)
        .fetch_optional(conn)
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

/// Every definition of one team, by name.
pub async fn of_team(
    conn: &mut PgConnection,
    team: &TeamAccess,
) -> Result<Vec<DefinitionRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE d.team_id = $1 ORDER BY d.name");
    sqlx::query(&sql)
        .bind(team.id())
        .fetch_all(conn)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn insert(
    conn: &mut PgConnection,
    team: &TeamAccess,
    name: &str,
    domain: Option<&str>,
    spec: &serde_json::Value,
    revision: i64,
) -> Result<DefinitionRow, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO api_definitions (id, team_id, name, domain, spec, revision) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at, updated_at",
    )
    .bind(Uuid::new_v4())
    .bind(team.id())
    .bind(name)
    .bind(domain)
    .bind(spec)
    .bind(revision)
    .fetch_one(conn)
    .await?;
    Ok(DefinitionRow {
        id: row.try_get("id")?,
        team: team.name().to_string(),
        name: name.to_string(),
        spec: spec.clone(),
        revision,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn update(
    conn: &mut PgConnection,
    current: &DefinitionRow,
    domain: Option<&str>,
    spec: &serde_json::Value,
    revision: i64,
) -> Result<DefinitionRow, sqlx::Error> {
    let updated_at: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE api_definitions SET domain = $2, spec = $3, revision = $4, updated_at = now() \
         WHERE id = $1 RETURNING updated_at",
    )
    .bind(current.id)
    .bind(domain)
    .bind(spec)
    .bind(revision)
    .fetch_one(conn)
    .await?;
    Ok(DefinitionRow {
        spec: spec.clone(),
        revision,
        updated_at,
        ..current.clone()
    })
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM api_definitions WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A page of definitions in the teams `filter` allows, ordered by (team, name), after `after`.
pub async fn list(
    pool: &PgPool,
    filter: &TeamFilter,
    team: Option<&str>,
    name: Option<&str>,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<Vec<DefinitionRow>, sqlx::Error> {
    let binds = crate::store::team_filter_binds(filter);
    let (after_team, after_name) = after.unwrap_or_default();
    let sql = format!(
        "{SELECT} WHERE {} \
         AND ($5::text IS NULL OR t.name = $5) \
         AND ($6::text IS NULL OR d.name = $6) \
         AND (t.name, d.name) > ($7, $8) \
         ORDER BY t.name, d.name LIMIT $9",
        crate::store::team_filter_sql(1)
    );
    sqlx::query(&sql)
        .bind(binds.all)
        .bind(binds.org_id)
        .bind(binds.whole_org)
        .bind(binds.names)
        .bind(team)
        .bind(name)
        .bind(after_team)
        .bind(after_name)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}
