//! Envoy's answers, as replicas report them: each dataplane's status per resource, the last
//! version of each resource an Envoy accepted, and the quarantine of a version one rejected.
//!
//! A quarantine holds a rejected version back from every Envoy, those that connect later
//! included: the resource is served at the last version an Envoy accepted (or not at all when
//! none ever was) until a write changes it. It is a change like any other (a revision, an
//! audit row, an outbox event), so every replica serves the same fallback, and a replica that
//! starts later loads it with the state ([`crate::state::stream_state`]).
//!
//! Reports name the revision each resource was served at, so a late NACK of a version that a
//! write has since replaced quarantines nothing, and the fallback's own ACK does not count as
//! the rejected version being accepted.

use flowplane_domain::ResourceKind;
use flowplane_proto::resources::v1 as resources_pb;
use flowplane_proto::state::v1::{self as pb, ChangeEvent, ChangeOp};
use prost::Message;
use sqlx::Row;
use uuid::Uuid;

use crate::Context;
use crate::error::ServiceError;
use crate::resources::{audit_action, kind_to_proto};
use crate::store::{self, AuditEntry, TeamRow};

/// Records one ACK or NACK. Envoy reports a NACK for a whole response; when its message names
/// some of the resources, only those are marked rejected, otherwise all in the response are.
/// A rejected version that no Envoy accepted before is quarantined.
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
    // Learning slots are reported by slot; the status belongs to the session filling it.
    let targets: Vec<(&String, String, Option<i64>)> = if kind == ResourceKind::LearningSession {
        crate::learning::sessions_in_slots(&mut tx, team.id, &report.resource_names)
            .await?
            .into_iter()
            .map(|(slot, session)| (slot, session, None))
            .collect()
    } else {
        report
            .resource_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                // Replicas older than quarantine send no revisions: status only.
                let revision = report.resource_revisions.get(i).copied().filter(|r| *r > 0);
                (name, name.clone(), revision)
            })
            .collect()
    };
    let mut to_quarantine = Vec::new();
    for (reported, name, served) in &targets {
        let Some(current) = current_state(&mut tx, team.id, kind, name).await? else {
            continue;
        };
        let rejected = !report.accepted && (named.is_empty() || named.contains(reported));
        // The served version is the current one (not the fallback of a quarantine, nor a
        // version a write has replaced since).
        let current_version = *served == Some(current.revision);
        let (state, error) = if rejected {
            ("rejected", report.error_message.as_str())
        } else if current.quarantine_error.is_some() && !current_version {
            (
                "quarantined",
                current.quarantine_error.as_deref().unwrap_or_default(),
            )
        } else {
            ("programmed", "")
        };
        sqlx::query(
            "INSERT INTO resource_status (team_id, kind, name, dataplane, state, version, error, node_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
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
        if !quarantinable(kind) || !current_version || current.quarantine_error.is_some() {
            continue;
        }
        if report.accepted {
            remember_accepted(&mut tx, current.id, current.revision).await?;
        } else if rejected && current.accepted_revision != Some(current.revision) {
            to_quarantine.push((name.clone(), current.revision));
        }
    }
    tx.commit().await?;
    if !report.accepted {
        tracing::warn!(team = %report.team, dataplane = %report.dataplane, type_url = %report.type_url,
            error = %report.error_message, "Envoy rejected a configuration");
    }
    for (name, rejected_revision) in to_quarantine {
        quarantine(ctx, &team, kind, &name, rejected_revision, &report).await?;
    }
    Ok(())
}

/// What quarantine needs to know of a resource as config has it now.
struct Current {
    id: Uuid,
    revision: i64,
    accepted_revision: Option<i64>,
    /// Envoy's message, while the resource is quarantined.
    quarantine_error: Option<String>,
}

async fn current_state(
    conn: &mut sqlx::PgConnection,
    team_id: Uuid,
    kind: ResourceKind,
    name: &str,
) -> Result<Option<Current>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT r.id, r.revision, a.revision AS accepted_revision, q.error AS quarantine_error \
         FROM resources r LEFT JOIN accepted_versions a ON a.resource_id = r.id \
         LEFT JOIN quarantines q ON q.resource_id = r.id \
         WHERE r.team_id = $1 AND r.kind = $2 AND r.name = $3",
    )
    .bind(team_id)
    .bind(kind.collection())
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(Current {
            id: row.try_get("id")?,
            revision: row.try_get("revision")?,
            accepted_revision: row.try_get("accepted_revision")?,
            quarantine_error: row.try_get("quarantine_error")?,
        })
    })
    .transpose()
}

/// Keeps the resource's spec at `revision` as the last version an Envoy accepted (unless a
/// write has replaced it meanwhile, or it is what was kept already).
async fn remember_accepted(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    revision: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO accepted_versions (resource_id, revision, spec) \
         SELECT id, revision, spec FROM resources WHERE id = $1 AND revision = $2 \
         ON CONFLICT (resource_id) DO UPDATE SET revision = EXCLUDED.revision, \
         spec = EXCLUDED.spec, accepted_at = now() \
         WHERE accepted_versions.revision <> EXCLUDED.revision",
    )
    .bind(id)
    .bind(revision)
    .execute(conn)
    .await?;
    Ok(())
}

/// Holds the rejected version of one resource back from every Envoy, in one change: its
/// revision, an audit row, and the event that serves the last accepted version in its place
/// (or removes the resource from what Envoys get, when none was ever accepted).
async fn quarantine(
    ctx: &Context,
    team: &TeamRow,
    kind: ResourceKind,
    name: &str,
    rejected_revision: i64,
    report: &pb::ReportStatusRequest,
) -> Result<(), ServiceError> {
    let mut tx = ctx.pool.begin().await?;
    // The revision first, then the row: the order every writer takes its locks in.
    let revision = store::next_revision(&mut tx).await?;
    let row = sqlx::query(
        "SELECT r.id, r.spec, a.revision AS accepted_revision, a.spec AS accepted_spec, \
         r.created_at, r.updated_at \
         FROM resources r LEFT JOIN accepted_versions a ON a.resource_id = r.id \
         WHERE r.team_id = $1 AND r.kind = $2 AND r.name = $3 AND r.revision = $4 \
         AND NOT EXISTS (SELECT 1 FROM quarantines q WHERE q.resource_id = r.id) \
         FOR UPDATE OF r",
    )
    .bind(team.id)
    .bind(kind.collection())
    .bind(name)
    .bind(rejected_revision)
    .fetch_optional(&mut *tx)
    .await?;
    // Rewritten or quarantined meanwhile: nothing to hold back (the revision is given back).
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(());
    };
    let id: Uuid = row.try_get("id")?;
    let rejected_spec: serde_json::Value = row.try_get("spec")?;
    let accepted_revision: Option<i64> = row.try_get("accepted_revision")?;
    let accepted_spec: Option<serde_json::Value> = row.try_get("accepted_spec")?;
    let created_at: chrono::DateTime<chrono::Utc> = row.try_get("created_at")?;
    let updated_at: chrono::DateTime<chrono::Utc> = row.try_get("updated_at")?;
    sqlx::query(
        "INSERT INTO quarantines (resource_id, rejected_revision, revision, dataplane, node_id, \
         type_url, error) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(rejected_revision)
    .bind(revision)
    .bind(&report.dataplane)
    .bind(&report.node_id)
    .bind(&report.type_url)
    .bind(&report.error_message)
    .execute(&mut *tx)
    .await?;
    store::audit(
        &mut tx,
        AuditEntry {
            action: &audit_action(kind, "quarantined"),
            org_id: Some(team.org_id),
            team: Some(&team.name),
            resource_kind: Some(kind.collection()),
            resource_name: Some(name),
            revision: Some(revision),
            before: Some(&rejected_spec),
            after: accepted_spec.as_ref(),
            ..Default::default()
        },
    )
    .await?;
    let served = accepted_spec
        .as_ref()
        .zip(accepted_revision)
        .map(|(spec, spec_revision)| resources_pb::Resource {
            kind: kind_to_proto(kind) as i32,
            id: id.to_string(),
            team: team.name.clone(),
            name: name.to_string(),
            revision: spec_revision,
            spec_json: spec.to_string(),
            created_at: created_at.to_rfc3339(),
            updated_at: updated_at.to_rfc3339(),
            ..Default::default()
        });
    let event = ChangeEvent {
        revision,
        op: if served.is_some() {
            ChangeOp::Upsert
        } else {
            ChangeOp::Delete
        } as i32,
        kind: kind_to_proto(kind) as i32,
        team: team.name.clone(),
        name: name.to_string(),
        resource: served,
        changes: Vec::new(),
    };
    store::enqueue_event(&mut tx, revision, &event.encode_to_vec()).await?;
    tx.commit().await?;
    ctx.outbox_ready.notify_one();
    metrics::counter!("config_quarantines_total", "kind" => kind.collection()).increment(1);
    tracing::warn!(team = %team.name, kind = kind.collection(), name, rejected_revision,
        serving_revision = accepted_revision, dataplane = %report.dataplane,
        "quarantined a rejected version: Envoys get the last accepted one");
    Ok(())
}

/// The kinds whose rejected versions are quarantined. Secrets are not: their material is kept
/// sealed, not as a spec to fall back to, and config parses it before storing it. Learning
/// sessions fill a slot that always has an idle configuration.
fn quarantinable(kind: ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::Cluster | ResourceKind::RouteConfig | ResourceKind::Listener
    )
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
        flowplane_xds::resource::EXTENSION_CONFIG_TYPE => Some(ResourceKind::LearningSession),
        _ => None,
    }
}
