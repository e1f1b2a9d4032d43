//! What xds-server replicas read: the full state at a revision, the current revision, and
//! their reports of what each Envoy accepted or rejected.

use flowplane_domain::ResourceKind;
use flowplane_proto::state::v1 as pb;
use sqlx::Row;

use crate::Context;
use crate::error::ServiceError;
use crate::resources::to_proto;
use crate::store::{self, StoredResource};

/// Every resource and the revision they reflect, read in one snapshot so the two agree.
pub async fn get_state(ctx: &Context) -> Result<pb::State, ServiceError> {
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let revision = store::current_revision(&mut tx).await?;
    let rows = sqlx::query(
        "SELECT r.id, r.kind, t.name AS team, r.name, r.spec, r.revision, r.created_at, r.updated_at \
         FROM resources r JOIN teams t ON t.id = r.team_id ORDER BY t.name, r.kind, r.name",
    )
    .fetch_all(&mut *tx)
    .await?;
    let secret_material = crate::secret_material::open_all(&mut tx, &ctx.secrets_key).await?;
    tx.commit().await?;
    let mut resources = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let Some(kind) = ResourceKind::from_collection(&kind) else {
            continue;
        };
        let stored = StoredResource {
            id: row.try_get("id")?,
            kind,
            team: row.try_get("team")?,
            name: row.try_get("name")?,
            spec: row.try_get("spec")?,
            revision: row.try_get("revision")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            managed_by: None,
        };
        let mut resource = to_proto(&stored, Vec::new());
        if kind == ResourceKind::Secret {
            // xds-server serves the material over SDS; rows carry only the summary.
            let Some(material) = secret_material.get(&stored.id) else {
                continue;
            };
            resource.spec_json.clone_from(material);
        }
        resources.push(resource);
    }
    Ok(pb::State {
        revision,
        resources,
    })
}

pub async fn get_revision(ctx: &Context) -> Result<i64, ServiceError> {
    let mut conn = ctx.pool.acquire().await?;
    Ok(store::current_revision(&mut conn).await?)
}

/// Records one ACK or NACK. Envoy reports a NACK for a whole response; when its message names
/// some of the resources, only those are marked rejected, otherwise all in the response are.
pub async fn report_status(
    ctx: &Context,
    report: pb::ReportStatusRequest,
) -> Result<(), ServiceError> {
    let Some(kind) = kind_of_type_url(&report.type_url, report.accepted) else {
        return Ok(());
    };
    let Some(team) = store::team_by_name(&ctx.pool, &report.team).await? else {
        return Ok(());
    };
    let named: Vec<&String> = report
        .resource_names
        .iter()
        .filter(|n| report.error_message.contains(n.as_str()))
        .collect();
    let mut tx = ctx.pool.begin().await?;
    for name in &report.resource_names {
        let rejected = !report.accepted && (named.is_empty() || named.contains(&name));
        let (state, error) = if rejected {
            ("rejected", report.error_message.as_str())
        } else {
            ("programmed", "")
        };
        sqlx::query(
            "INSERT INTO resource_status (team_id, kind, name, dataplane, state, version, error, node_id) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
             WHERE EXISTS (SELECT 1 FROM resources WHERE team_id = $1 AND kind = $2 AND name = $3) \
             ON CONFLICT (team_id, kind, name, dataplane) DO UPDATE SET state = $5, version = $6, \
             error = $7, node_id = $8, updated_at = now()",
        )
        .bind(team.id)
        .bind(kind.collection())
        .bind(name)
        .bind(&report.dataplane)
        .bind(state)
        .bind(&report.version)
        .bind(error)
        .bind(&report.node_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if !report.accepted {
        tracing::warn!(team = %report.team, dataplane = %report.dataplane, type_url = %report.type_url,
            error = %report.error_message, "Envoy rejected a configuration");
    }
    Ok(())
}

/// The resource kind a report is about. Endpoints (EDS) belong to their cluster: a rejection
/// marks the cluster rejected, while an acceptance says nothing the cluster's own ACK did not.
fn kind_of_type_url(type_url: &str, accepted: bool) -> Option<ResourceKind> {
    match type_url {
        flowplane_xds::resource::CLUSTER_TYPE => Some(ResourceKind::Cluster),
        flowplane_xds::resource::ENDPOINT_TYPE => (!accepted).then_some(ResourceKind::Cluster),
        flowplane_xds::resource::ROUTE_TYPE => Some(ResourceKind::RouteConfig),
        flowplane_xds::resource::LISTENER_TYPE => Some(ResourceKind::Listener),
        flowplane_xds::resource::SECRET_TYPE => Some(ResourceKind::Secret),
        _ => None,
    }
}
