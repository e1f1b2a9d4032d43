//! What xds-server replicas read: the full state at a revision and the current revision.
//! (What they report back is [`crate::status`].)

use std::collections::HashMap;

use flowplane_domain::ResourceKind;
use flowplane_proto::resources::v1 as resources_pb;
use flowplane_proto::state::v1 as pb;
use flowplane_runtime::bus::Origin;
use futures::TryStreamExt;
use sqlx::Row;
use tokio::sync::mpsc;
use tonic::Status;
use uuid::Uuid;

use crate::Context;
use crate::error::ServiceError;
use crate::resources::kind_to_proto;
use crate::store;

/// Every resource as replicas serve it: a quarantined one at its last accepted version
/// ([`crate::status`]), or not at all when none was accepted. With [`SERVED_WHERE`].
pub(crate) const SERVED_SELECT: &str = "SELECT r.id, r.kind, t.name AS team, r.name, \
     COALESCE(a.spec, r.spec)::text AS spec, COALESCE(a.revision, r.revision) AS revision \
     FROM resources r JOIN teams t ON t.id = r.team_id \
     LEFT JOIN quarantines q ON q.resource_id = r.id \
     LEFT JOIN accepted_versions a ON a.resource_id = r.id AND q.resource_id IS NOT NULL";
pub(crate) const SERVED_WHERE: &str = "(q.resource_id IS NULL OR a.resource_id IS NOT NULL)";

/// Resources per part of a state stream: parts stay far below any message limit, and a
/// replica translates one part while the next is on its way.
const PART_RESOURCES: usize = 4_096;
/// A part is also closed once its specs reach this many bytes (route configs can be large).
const PART_BYTES: usize = 4 * 1024 * 1024;

/// Streams every resource, and the revision they reflect, to `parts`: all read in one
/// repeatable-read snapshot, so every part carries the same revision and together they are
/// exactly the state at it. At least one part is sent, even for an empty state. Rows are
/// streamed from PostgreSQL as they come (no sort, no full result in memory); parts carry
/// what replicas translate (no timestamps or status). Stops early, without error, when the
/// receiver is gone.
pub async fn stream_state(
    ctx: &Context,
    parts: &mpsc::Sender<Result<pb::State, Status>>,
) -> Result<(), ServiceError> {
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let revision = store::current_revision(&mut tx).await?;
    let Origin {
        installation,
        epoch,
    } = origin(&mut tx).await?;
    let secret_material = crate::secret_material::open_all(&mut tx, &ctx.secrets_key).await?;
    let mut part = pb::State {
        revision,
        resources: Vec::new(),
        installation_id: installation.clone(),
        epoch: epoch.clone(),
    };
    let mut part_bytes = 0;
    let mut sent_any = false;
    {
        let sql = format!("{SERVED_SELECT} WHERE {SERVED_WHERE}");
        let mut rows = sqlx::query(&sql).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let Some(resource) = served_resource(&row, &secret_material)? else {
                continue;
            };
            part_bytes += resource.spec_json.len();
            part.resources.push(resource);
            if part.resources.len() >= PART_RESOURCES || part_bytes >= PART_BYTES {
                let full = std::mem::replace(
                    &mut part,
                    pb::State {
                        revision,
                        resources: Vec::with_capacity(PART_RESOURCES),
                        installation_id: installation.clone(),
                        epoch: epoch.clone(),
                    },
                );
                part_bytes = 0;
                sent_any = true;
                if parts.send(Ok(full)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    tx.commit().await?;
    if !part.resources.is_empty() || !sent_any {
        let _ = parts.send(Ok(part)).await;
    }
    Ok(())
}

/// One row as a replica gets it; `None` for a kind replicas do not serve or a secret
/// without material. Secrets carry their opened material as their spec (xds-server serves
/// it over SDS); everywhere else rows carry only the summary.
fn served_resource(
    row: &sqlx::postgres::PgRow,
    secret_material: &HashMap<Uuid, String>,
) -> Result<Option<resources_pb::Resource>, ServiceError> {
    let kind: String = row.try_get("kind")?;
    let Some(kind) = ResourceKind::from_collection(&kind) else {
        return Ok(None);
    };
    let id: Uuid = row.try_get("id")?;
    let spec_json = if kind == ResourceKind::Secret {
        match secret_material.get(&id) {
            Some(material) => material.clone(),
            None => return Ok(None),
        }
    } else {
        row.try_get("spec")?
    };
    Ok(Some(resources_pb::Resource {
        kind: kind_to_proto(kind) as i32,
        id: id.to_string(),
        team: row.try_get("team")?,
        name: row.try_get("name")?,
        revision: row.try_get("revision")?,
        spec_json,
        ..Default::default()
    }))
}

pub async fn get_revision(ctx: &Context) -> Result<(i64, Origin), ServiceError> {
    let mut conn = ctx.pool.acquire().await?;
    let revision = store::current_revision(&mut conn).await?;
    Ok((revision, origin(&mut conn).await?))
}

/// This database's installation and epoch, which every change event and state answer carries.
pub async fn origin(conn: &mut sqlx::PgConnection) -> Result<Origin, sqlx::Error> {
    let (installation, epoch): (String, String) =
        sqlx::query_as("SELECT id::text, epoch::text FROM installation")
            .fetch_one(conn)
            .await?;
    Ok(Origin {
        installation,
        epoch,
    })
}
