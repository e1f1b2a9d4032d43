//! Secret material at rest: sealed into its row's `sealed` column on every write, opened only
//! to hand xds-server what it serves over SDS (state loads and `GetSecrets`, both on the
//! authenticated internal service). Everything else (the row's `spec`, audit rows, change
//! events, API responses) sees the secret's summary.

use std::collections::HashMap;

use flowplane_domain::{AnySpec, ResourceKind};
use flowplane_proto::resources::v1 as pb;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::Context;
use crate::authz::TeamAccess;
use crate::error::ServiceError;
use crate::secrets_key::{OpenedWith, SecretsKey};
use crate::store::StoredResource;

/// Binds a sealed value to its row: the team id (stable across renames) and the secret name.
fn aad(team_id: Uuid, name: &str) -> String {
    format!("{team_id}/secrets/{name}")
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(anyhow::anyhow!("secret material: {e}"))
}

/// Seals `spec`'s material into the row just written, in the write's transaction. Other kinds
/// have nothing to seal.
pub(crate) async fn seal_into(
    conn: &mut PgConnection,
    key: &SecretsKey,
    team: &TeamAccess,
    row: &StoredResource,
    spec: &AnySpec,
) -> Result<(), ServiceError> {
    let AnySpec::Secret(secret) = spec else {
        return Ok(());
    };
    let plaintext = serde_json::to_vec(secret).map_err(internal)?;
    let sealed = key
        .seal(&aad(team.id(), &row.name), &plaintext)
        .map_err(internal)?;
    sqlx::query("UPDATE resources SET sealed = $2 WHERE id = $1")
        .bind(row.id)
        .bind(sealed)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether `spec` differs from the material stored for `current`. The summary alone cannot
/// tell (a new key for the same certificate has the same summary), so the stored material is
/// opened and compared. Other kinds compare by their public JSON, elsewhere.
pub(crate) async fn material_changed(
    conn: &mut PgConnection,
    key: &SecretsKey,
    team: &TeamAccess,
    current: &StoredResource,
    spec: &AnySpec,
) -> Result<bool, ServiceError> {
    let AnySpec::Secret(secret) = spec else {
        return Ok(false);
    };
    let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM resources WHERE id = $1")
        .bind(current.id)
        .fetch_one(conn)
        .await?;
    let Some(sealed) = sealed else {
        return Ok(true);
    };
    let stored = key
        .open(&aad(team.id(), &current.name), &sealed)
        .map_err(internal)?;
    let plaintext = serde_json::to_vec(secret).map_err(internal)?;
    Ok(stored != plaintext)
}

/// One stored secret's sealed material and what identifies it (its associated data).
struct Sealed {
    id: Uuid,
    team_id: Uuid,
    name: String,
    sealed: Vec<u8>,
}

/// Every secret that holds sealed material.
async fn sealed_secrets(db: impl sqlx::PgExecutor<'_>) -> Result<Vec<Sealed>, ServiceError> {
    let rows = sqlx::query(
        "SELECT id, team_id, name, sealed FROM resources WHERE kind = $1 AND sealed IS NOT NULL",
    )
    .bind(ResourceKind::Secret.collection())
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Sealed {
                id: row.try_get("id")?,
                team_id: row.try_get("team_id")?,
                name: row.try_get("name")?,
                sealed: row.try_get("sealed")?,
            })
        })
        .collect()
}

/// The full spec JSON of every secret, by row id, read in the caller's (snapshot) transaction
/// so it matches the rows it completes.
pub(crate) async fn open_all(
    conn: &mut PgConnection,
    key: &SecretsKey,
) -> Result<HashMap<Uuid, String>, ServiceError> {
    let rows = sealed_secrets(conn).await?;
    let mut opened = HashMap::with_capacity(rows.len());
    for Sealed {
        id,
        team_id,
        name,
        sealed,
    } in rows
    {
        let plaintext = key.open(&aad(team_id, &name), &sealed).map_err(internal)?;
        opened.insert(id, String::from_utf8(plaintext).map_err(internal)?);
    }
    Ok(opened)
}

/// Re-seals, under the current key, every secret that only a previous key opens, so the
/// previous key can be retired. Each row changes alone (its material and revision stay as
/// they were: nothing Envoy sees changes). Returns how many were re-sealed.
pub async fn reseal_with_current_key(
    pool: &sqlx::PgPool,
    key: &SecretsKey,
) -> Result<usize, ServiceError> {
    let mut resealed = 0;
    for Sealed {
        id,
        team_id,
        name,
        sealed,
    } in sealed_secrets(pool).await?
    {
        let aad = aad(team_id, &name);
        let (plaintext, opened_with) = key.open_telling(&aad, &sealed).map_err(internal)?;
        if opened_with == OpenedWith::Current {
            continue;
        }
        let fresh = key.seal(&aad, &plaintext).map_err(internal)?;
        // Only if the row still holds what was read: a concurrent write sealed it anew.
        let updated = sqlx::query("UPDATE resources SET sealed = $2 WHERE id = $1 AND sealed = $3")
            .bind(id)
            .bind(fresh)
            .bind(&sealed)
            .execute(pool)
            .await?;
        resealed += usize::try_from(updated.rows_affected()).unwrap_or(0);
    }
    Ok(resealed)
}

/// The named secrets of `team` that exist now, with their full specs, for a replica applying
/// a secret change event.
pub async fn get_secrets(
    ctx: &Context,
    team: &str,
    names: &[String],
) -> Result<Vec<pb::Resource>, ServiceError> {
    let rows = sqlx::query(
        "SELECT r.id, r.team_id, t.name AS team, r.name, r.revision, r.sealed, r.created_at, \
         r.updated_at FROM resources r JOIN teams t ON t.id = r.team_id \
         WHERE t.name = $1 AND r.kind = $2 AND r.name = ANY($3) AND r.sealed IS NOT NULL \
         ORDER BY r.name",
    )
    .bind(team)
    .bind(ResourceKind::Secret.collection())
    .bind(names)
    .fetch_all(&ctx.pool)
    .await?;
    let mut secrets = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("id")?;
        let team_id: Uuid = row.try_get("team_id")?;
        let name: String = row.try_get("name")?;
        let sealed: Vec<u8> = row.try_get("sealed")?;
        let plaintext = ctx
            .secrets_key
            .open(&aad(team_id, &name), &sealed)
            .map_err(internal)?;
        let created_at: chrono::DateTime<chrono::Utc> = row.try_get("created_at")?;
        let updated_at: chrono::DateTime<chrono::Utc> = row.try_get("updated_at")?;
        secrets.push(pb::Resource {
            kind: pb::ResourceKind::Secret as i32,
            id: id.to_string(),
            team: row.try_get("team")?,
            name,
            revision: row.try_get("revision")?,
            spec_json: String::from_utf8(plaintext).map_err(internal)?,
            created_at: created_at.to_rfc3339(),
            updated_at: updated_at.to_rfc3339(),
            status: Vec::new(),
            deployment_token: String::new(),
            quarantine: None,
        });
    }
    Ok(secrets)
}
