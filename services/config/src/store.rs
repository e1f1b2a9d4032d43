//! SQL for organizations, teams and resources. Functions that touch resources take a [`TeamAccess`] or a
//! [`TeamFilter`], never a bare team name.

use chrono::{DateTime, Utc};
use flowplane_domain::ResourceKind;
use flowplane_domain::scopes::TeamFilter;
use flowplane_proto::resources::v1 as resources_pb;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::authz::TeamAccess;

#[derive(Debug, Clone)]
pub struct TeamRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
}

pub async fn team_by_name(pool: &PgPool, name: &str) -> Result<Option<TeamRow>, sqlx::Error> {
    sqlx::query("SELECT id, org_id, name FROM teams WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?
        .map(|row| {
            Ok(TeamRow {
                id: row.try_get("id")?,
                org_id: row.try_get("org_id")?,
                name: row.try_get("name")?,
            })
        })
        .transpose()
}

pub async fn org_id_by_name(pool: &PgPool, name: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM organizations WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// Which of `names` are teams of the organization.
pub async fn teams_in_org(
    pool: &PgPool,
    org_id: Uuid,
    names: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM teams WHERE org_id = $1 AND name = ANY($2) ORDER BY name")
        .bind(org_id)
        .bind(names)
        .fetch_all(pool)
        .await
}

pub async fn is_platform_admin(pool: &PgPool, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let flag: Option<bool> =
        sqlx::query_scalar("SELECT is_platform_admin FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    Ok(flag == Some(true))
}

#[derive(Debug, Clone)]
pub struct StoredResource {
    pub id: Uuid,
    pub kind: ResourceKind,
    pub team: String,
    pub name: String,
    pub spec: serde_json::Value,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The API definition that generated this resource ([`SHARED_OWNER`] for the team's shared
    /// gateway); such a resource changes only through its definition.
    ///
    /// [`SHARED_OWNER`]: flowplane_domain::api_definition::generate::SHARED_OWNER
    pub managed_by: Option<String>,
}

const SELECT_RESOURCE: &str = "SELECT r.id, r.kind, t.name AS team, r.name, r.spec, r.revision, \
     r.created_at, r.updated_at, r.managed_by FROM resources r JOIN teams t ON t.id = r.team_id";

fn resource_from_row(row: &PgRow) -> Result<StoredResource, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    Ok(StoredResource {
        id: row.try_get("id")?,
        kind: ResourceKind::from_collection(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown resource kind '{kind}'").into()))?,
        team: row.try_get("team")?,
        name: row.try_get("name")?,
        spec: row.try_get("spec")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        managed_by: row.try_get("managed_by")?,
    })
}

/// A read-only transaction that sees one consistent snapshot (reports, exports).
pub async fn read_only(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// One resource; `for_update` locks the row for the rest of the transaction.
pub async fn get_resource(
    conn: &mut PgConnection,
    team: &TeamAccess,
    kind: ResourceKind,
    name: &str,
    for_update: bool,
) -> Result<Option<StoredResource>, sqlx::Error> {
    let lock = if for_update { " FOR UPDATE OF r" } else { "" };
    let sql =
        format!("{SELECT_RESOURCE} WHERE r.team_id = $1 AND r.kind = $2 AND r.name = $3{lock}");
    sqlx::query(&sql)
        .bind(team.id())
        .bind(kind.collection())
        .bind(name)
        .fetch_optional(conn)
        .await?
        .map(|row| resource_from_row(&row))
        .transpose()
}

/// Every resource of `kind` in one team (reference checks).
pub async fn resources_of_kind(
    conn: &mut PgConnection,
    team: &TeamAccess,
    kind: ResourceKind,
) -> Result<Vec<StoredResource>, sqlx::Error> {
    let sql = format!("{SELECT_RESOURCE} WHERE r.team_id = $1 AND r.kind = $2 ORDER BY r.name");
    sqlx::query(&sql)
        .bind(team.id())
        .bind(kind.collection())
        .fetch_all(conn)
        .await?
        .iter()
        .map(resource_from_row)
        .collect()
}

/// The bind values of a [`TeamFilter`] for the SQL condition [`team_filter_sql`].
pub(crate) struct TeamFilterBinds {
    pub all: bool,
    pub org_id: Option<Uuid>,
    pub whole_org: bool,
    pub names: Vec<String>,
}

pub(crate) fn team_filter_binds(filter: &TeamFilter) -> TeamFilterBinds {
    match filter {
        TeamFilter::All => TeamFilterBinds {
            all: true,
            org_id: None,
            whole_org: false,
            names: Vec::new(),
        },
        TeamFilter::InOrg {
            org_id,
            whole_org,
            names,
        } => TeamFilterBinds {
            all: false,
            // An unparsable organization id matches no row.
            org_id: Uuid::parse_str(org_id).ok(),
            whole_org: *whole_org,
            names: names.clone(),
        },
        TeamFilter::None => TeamFilterBinds {
            all: false,
            org_id: None,
            whole_org: false,
            names: Vec::new(),
        },
    }
}

/// The condition on team alias `t` for [`TeamFilterBinds`] bound from parameter `$first`:
/// every team, or teams of one organization (all of them, or the named ones). A named team is
/// always also required to be in the organization.
pub(crate) fn team_filter_sql(first: usize) -> String {
    format!(
        "(${first} OR (t.org_id = ${} AND (${} OR t.name = ANY(${}))))",
        first + 1,
        first + 2,
        first + 3
    )
}

/// A page of resources in the teams `filter` allows (of `team` and named `name` when given),
/// ordered by (team, name), starting after `after` when given.
pub async fn list_resources(
    pool: &PgPool,
    kind: ResourceKind,
    filter: &TeamFilter,
    team: Option<&str>,
    name: Option<&str>,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<Vec<StoredResource>, sqlx::Error> {
    let binds = team_filter_binds(filter);
    let (after_team, after_name) = after.unwrap_or_default();
    let sql = format!(
        "{SELECT_RESOURCE} WHERE r.kind = $1 AND {} \
         AND ($6::text IS NULL OR t.name = $6) \
         AND ($7::text IS NULL OR r.name = $7) \
         AND (t.name, r.name) > ($8, $9) \
         ORDER BY t.name, r.name LIMIT $10",
        team_filter_sql(2)
    );
    sqlx::query(&sql)
        .bind(kind.collection())
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
        .map(resource_from_row)
        .collect()
}

/// The resources named `name` in the teams `filter` allows; at most two, which is enough to
/// tell "one" from "several".
pub async fn find_by_name(
    pool: &PgPool,
    kind: ResourceKind,
    filter: &TeamFilter,
    name: &str,
) -> Result<Vec<StoredResource>, sqlx::Error> {
    list_resources(pool, kind, filter, None, Some(name), None, 2).await
}

/// Takes the next revision. The row lock it holds until commit serializes all writers.
pub async fn next_revision(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("UPDATE revision_counter SET value = value + 1 RETURNING value")
        .fetch_one(conn)
        .await
}

pub async fn current_revision(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM revision_counter")
        .fetch_one(conn)
        .await
}

pub async fn insert_resource(
    conn: &mut PgConnection,
    team: &TeamAccess,
    kind: ResourceKind,
    name: &str,
    spec: &serde_json::Value,
    revision: i64,
) -> Result<StoredResource, sqlx::Error> {
    insert_managed_resource(conn, team, kind, name, spec, revision, None).await
}

/// [`insert_resource`], recording the API definition that generated it.
pub async fn insert_managed_resource(
    conn: &mut PgConnection,
    team: &TeamAccess,
    kind: ResourceKind,
    name: &str,
    spec: &serde_json::Value,
    revision: i64,
    managed_by: Option<&str>,
) -> Result<StoredResource, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO resources (id, kind, team_id, name, spec, revision, managed_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, created_at, updated_at",
    )
    .bind(Uuid::new_v4())
    .bind(kind.collection())
    .bind(team.id())
    .bind(name)
    .bind(spec)
    .bind(revision)
    .bind(managed_by)
    .fetch_one(conn)
    .await?;
    Ok(StoredResource {
        id: row.try_get("id")?,
        kind,
        team: team.name().to_string(),
        name: name.to_string(),
        spec: spec.clone(),
        revision,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        managed_by: managed_by.map(str::to_string),
    })
}

pub async fn update_resource(
    conn: &mut PgConnection,
    current: &StoredResource,
    spec: &serde_json::Value,
    revision: i64,
) -> Result<StoredResource, sqlx::Error> {
    let updated_at: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE resources SET spec = $2, revision = $3, updated_at = now() WHERE id = $1 RETURNING updated_at",
    )
    .bind(current.id)
    .bind(spec)
    .bind(revision)
    .fetch_one(&mut *conn)
    .await?;
    // A write is the correction of a quarantined version: the new one is served.
    sqlx::query("DELETE FROM quarantines WHERE resource_id = $1")
        .bind(current.id)
        .execute(conn)
        .await?;
    Ok(StoredResource {
        spec: spec.clone(),
        revision,
        updated_at,
        ..current.clone()
    })
}

pub async fn delete_resource(
    conn: &mut PgConnection,
    current: &StoredResource,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM resource_status WHERE team_id = (SELECT team_id FROM resources WHERE id = $1) \
         AND kind = $2 AND name = $3",
    )
    .bind(current.id)
    .bind(current.kind.collection())
    .bind(&current.name)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM resources WHERE id = $1")
        .bind(current.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// One audit row. `before`/`after` are resource specs; secrets never reach them.
#[derive(Debug, Default)]
pub struct AuditEntry<'a> {
    pub action: &'a str,
    pub actor_user_id: Option<Uuid>,
    pub actor_token_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub team: Option<&'a str>,
    pub resource_kind: Option<&'a str>,
    pub resource_name: Option<&'a str>,
    pub revision: Option<i64>,
    pub before: Option<&'a serde_json::Value>,
    pub after: Option<&'a serde_json::Value>,
    pub request_id: Option<&'a str>,
    pub client_address: Option<&'a str>,
}

pub async fn audit(conn: &mut PgConnection, entry: AuditEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (action, actor_user_id, actor_token_id, org_id, team, resource_kind, \
         resource_name, revision, before, after, request_id, client_address) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(entry.action)
    .bind(entry.actor_user_id)
    .bind(entry.actor_token_id)
    .bind(entry.org_id)
    .bind(entry.team)
    .bind(entry.resource_kind)
    .bind(entry.resource_name)
    .bind(entry.revision)
    .bind(entry.before)
    .bind(entry.after)
    .bind(entry.request_id.filter(|s| !s.is_empty()))
    .bind(entry.client_address.filter(|s| !s.is_empty()))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn enqueue_event(
    conn: &mut PgConnection,
    revision: i64,
    payload: &[u8],
) -> Result<(), sqlx::Error> {
    // The writing request's trace context, so the change's publish and apply join its trace.
    sqlx::query("INSERT INTO outbox (revision, payload, traceparent) VALUES ($1, $2, $3)")
        .bind(revision)
        .bind(payload)
        .bind(flowplane_runtime::telemetry::current_traceparent())
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct StatusRow {
    pub dataplane: String,
    pub state: String,
    pub version: String,
    pub error: String,
    pub updated_at: DateTime<Utc>,
}

pub async fn resource_status(
    pool: &PgPool,
    resource: &StoredResource,
) -> Result<Vec<StatusRow>, sqlx::Error> {
    sqlx::query(
        "SELECT s.dataplane, s.state, s.version, s.error, s.updated_at FROM resource_status s \
         JOIN teams t ON t.id = s.team_id WHERE t.name = $1 AND s.kind = $2 AND s.name = $3 \
         ORDER BY s.dataplane",
    )
    .bind(&resource.team)
    .bind(resource.kind.collection())
    .bind(&resource.name)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(StatusRow {
            dataplane: row.try_get("dataplane")?,
            state: row.try_get("state")?,
            version: row.try_get("version")?,
            error: row.try_get("error")?,
            updated_at: row.try_get("updated_at")?,
        })
    })
    .collect()
}

/// The quarantine of a resource's current version, if one holds it back.
pub async fn quarantine(
    pool: &PgPool,
    resource_id: Uuid,
) -> Result<Option<resources_pb::Quarantine>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT q.rejected_revision, a.revision AS serving_revision, q.dataplane, q.node_id, \
         q.error, q.quarantined_at FROM quarantines q \
         LEFT JOIN accepted_versions a ON a.resource_id = q.resource_id WHERE q.resource_id = $1",
    )
    .bind(resource_id)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        let since: DateTime<Utc> = row.try_get("quarantined_at")?;
        Ok(resources_pb::Quarantine {
            rejected_revision: row.try_get("rejected_revision")?,
            serving_revision: row
                .try_get::<Option<i64>, _>("serving_revision")?
                .unwrap_or(0),
            dataplane: row.try_get("dataplane")?,
            node_id: row.try_get("node_id")?,
            error: row.try_get("error")?,
            since: since.to_rfc3339(),
        })
    })
    .transpose()
}

/// The resources of one team that the given owners (API definitions, or the shared gateway)
/// generated, in (kind, name) order.
pub async fn managed_resources(
    conn: &mut PgConnection,
    team: &TeamAccess,
    owners: &[String],
) -> Result<Vec<StoredResource>, sqlx::Error> {
    let sql = format!(
        "{SELECT_RESOURCE} WHERE r.team_id = $1 AND r.managed_by = ANY($2) ORDER BY r.kind, r.name"
    );
    sqlx::query(&sql)
        .bind(team.id())
        .bind(owners)
        .fetch_all(conn)
        .await?
        .iter()
        .map(resource_from_row)
        .collect()
}
