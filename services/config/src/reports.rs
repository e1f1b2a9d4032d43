//! Reports about a team: route flows computed from what config stores (the domain's pure
//! report functions over one read of the team's resources), and usage counts the learning
//! service records, kept per minute for [`USAGE_RETENTION`].

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use flowplane_domain::delivery::{Delivery, DeliveryQuery, ReplicaDelivery};
use flowplane_domain::findings::{Finding, TeamResources, findings};
use flowplane_domain::preflight::{Preflight, PreflightRequest, Problem};
use flowplane_domain::reports::{RouteFlow, UsageGroup, UsageRow, route_flows, usage_rows};
use flowplane_domain::request_trace::{Trace, TraceRequest};
use flowplane_domain::scopes::{Action, ScopeResource};
use flowplane_domain::secret::SecretSummary;
use flowplane_domain::topology::{NodeStatus, Stored, Topology, topology};
use flowplane_domain::{AnySpec, ResourceKind, ValidationErrors};
use flowplane_proto::reports::v1 as pb;
use flowplane_xds::explain::Snapshot;
use sqlx::Row;

use crate::Context;
use crate::authz::{Caller, TeamAccess, authorize_team};
use crate::error::ServiceError;
use crate::state::{SERVED_SELECT, SERVED_WHERE};
use crate::{resources, store};

/// The one authorization decision for a team's reports: `reports:read` on it.
async fn may_read_reports(
    ctx: &Context,
    caller: &Caller,
    team: &str,
) -> Result<TeamAccess, ServiceError> {
    authorize_team(
        &ctx.pool,
        caller,
        team,
        ScopeResource::Reports,
        Action::Read,
        || format!("team '{team}' not found"),
    )
    .await
}

/// Where each of the team's listeners sends traffic. Takes `reports:read` on the team, not
/// read access to each kind: the report shows structure (names, matches, endpoints), never a
/// secret.
pub async fn route_flows_of(
    ctx: &Context,
    caller: &Caller,
    team: &str,
) -> Result<Vec<RouteFlow>, ServiceError> {
    let access = may_read_reports(ctx, caller, team).await?;
    // One snapshot, so the three kinds agree with each other.
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let listeners: Vec<_> = specs(&mut tx, &access, ResourceKind::Listener, |s| match s {
        AnySpec::Listener(l) => Some(l),
        _ => None,
    })
    .await?;
    let route_configs = specs(&mut tx, &access, ResourceKind::RouteConfig, |s| match s {
        AnySpec::RouteConfig(r) => Some(r),
        _ => None,
    })
    .await?
    .into_iter()
    .collect();
    let clusters = specs(&mut tx, &access, ResourceKind::Cluster, |s| match s {
        AnySpec::Cluster(c) => Some(c),
        _ => None,
    })
    .await?
    .into_iter()
    .collect();
    tx.commit().await?;
    Ok(route_flows(&listeners, &route_configs, &clusters))
}

/// What is wrong with the team's resources taken together ([`flowplane_domain::findings`]),
/// from one read of them. Takes `reports:read`, like route flows.
pub async fn findings_of(
    ctx: &Context,
    caller: &Caller,
    team: &str,
) -> Result<Vec<Finding>, ServiceError> {
    let access = may_read_reports(ctx, caller, team).await?;
    let mut tx = store::read_only(&ctx.pool).await?;
    let state = TeamState::read(&mut tx, &access).await?;
    tx.commit().await?;
    Ok(state.findings())
}

/// What one change would do, tried without writing it: the same parsing, dry translation,
/// reference and ownership checks a write runs (their refusals become `problems` instead of
/// an error), the resources that use it, and the team's findings before and after. Takes
/// `reports:read`, like validate: it reads the team and writes nothing.
pub async fn preflight_of(
    ctx: &Context,
    caller: &Caller,
    team: &str,
    request: &PreflightRequest,
) -> Result<Preflight, ServiceError> {
    let kind = request.checked_kind()?;
    flowplane_domain::names::name_problem(&request.name)
        .map_err(|m| ServiceError::validation("/name", m))?;
    let access = may_read_reports(ctx, caller, team).await?;
    let name = request.name.as_str();
    let mut tx = store::read_only(&ctx.pool).await?;
    let mut state = TeamState::read(&mut tx, &access).await?;
    let before = state.findings();
    let current = store::get_resource(&mut tx, &access, kind, name, false).await?;
    let affected = match &current {
        Some(current) => resources::referrers(&mut tx, &access, current).await?,
        None => Vec::new(),
    };
    let mut problems = Vec::new();
    let mut refused = |error: ServiceError| -> Result<(), ServiceError> {
        match error {
            ServiceError::Validation(errors) => {
                problems.extend(errors.errors().iter().map(|e| Problem {
                    field: e.field.clone(),
                    message: e.message.clone(),
                }))
            }
            ServiceError::Conflict { message, referrers } => {
                problems.extend(referrers.into_iter().map(|r| Problem {
                    field: r.field,
                    message: format!("{message}: {}", r.message),
                }));
            }
            other => return Err(other),
        }
        Ok(())
    };
    let operation = match (&request.resource, &current) {
        (None, None) => {
            return Err(ServiceError::NotFound(format!(
                "{} '{name}' not found",
                kind.singular()
            )));
        }
        (None, Some(current)) => {
            if let Err(e) = resources::refuse_generated(current) {
                refused(e)?;
            }
            if !affected.is_empty() {
                refused(ServiceError::Conflict {
                    message: format!("{} '{name}' is still referenced", kind.singular()),
                    referrers: resources::referrer_errors(&affected),
                })?;
            }
            state.remove(kind, name);
            "delete"
        }
        (Some(resource), current) => {
            let operation = if current.is_some() {
                "update"
            } else {
                "create"
            };
            match AnySpec::parse(kind, &resource.to_string()) {
                Err(errors) => {
                    refused(errors.into())?;
                    operation
                }
                Ok(parsed) => {
                    let mut errors = ValidationErrors::new();
                    if parsed.team.as_deref().is_some_and(|t| t != access.name()) {
                        errors.add("/team", "must be the team the preflight names");
                    }
                    if parsed.name.as_deref().is_some_and(|n| n != name) {
                        errors.add("/name", "must be the name the preflight names");
                    }
                    if let Err(e) = errors.into_result() {
                        refused(e.into())?;
                    }
                    if let Err(e) = resources::dry_translate(access.name(), name, &parsed.spec) {
                        refused(e.into())?;
                    }
                    if let Err(e) =
                        resources::check_references(&mut tx, &access, &parsed.spec).await
                    {
                        refused(e)?;
                    }
                    if let Some(current) = current
                        && let Err(e) = resources::refuse_generated(current)
                    {
                        refused(e)?;
                    }
                    let unchanged = current
                        .as_ref()
                        .is_some_and(|c| c.spec == parsed.spec.public_json())
                        && !matches!(parsed.spec, AnySpec::Secret(_));
                    state.put(name, parsed.spec);
                    if unchanged { "unchanged" } else { operation }
                }
            }
        }
    };
    tx.commit().await?;
    let after = state.findings();
    let (introduced, resolved) = flowplane_domain::preflight::compare(&before, &after);
    Ok(Preflight {
        accepted: problems.is_empty(),
        operation: operation.to_string(),
        problems,
        affected,
        introduced,
        resolved,
    })
}

/// The team's resources as a graph (references as edges) with each one's status per
/// dataplane, read in one snapshot. Takes `reports:read`.
pub async fn topology_of(
    ctx: &Context,
    caller: &Caller,
    team: &str,
) -> Result<Topology, ServiceError> {
    let access = may_read_reports(ctx, caller, team).await?;
    let mut tx = store::read_only(&ctx.pool).await?;
    let mut specs = Vec::new();
    for kind in [
        ResourceKind::Dataplane,
        ResourceKind::Listener,
        ResourceKind::RouteConfig,
        ResourceKind::Cluster,
    ] {
        for r in store::resources_of_kind(&mut tx, &access, kind).await? {
            let spec = AnySpec::from_stored(kind, &r.spec.to_string())
                .map_err(|e| ServiceError::Internal(e.into()))?;
            specs.push((r.id.to_string(), r.name, spec));
        }
    }
    let secrets: Vec<(String, String)> =
        store::resources_of_kind(&mut tx, &access, ResourceKind::Secret)
            .await?
            .into_iter()
            .map(|r| {
                let secret_type = r.spec["type"].as_str().unwrap_or_default().to_string();
                (r.name, secret_type)
            })
            .collect();
    let mut status: HashMap<(String, String), Vec<NodeStatus>> = HashMap::new();
    for row in sqlx::query(
        "SELECT kind, name, dataplane, state, error FROM resource_status \
         WHERE team_id = $1 ORDER BY dataplane",
    )
    .bind(access.id())
    .fetch_all(&mut *tx)
    .await?
    {
        status
            .entry((row.try_get("kind")?, row.try_get("name")?))
            .or_default()
            .push(NodeStatus {
                dataplane: row.try_get("dataplane")?,
                state: row.try_get("state")?,
                error: row.try_get("error")?,
            });
    }
    tx.commit().await?;
    let mut stored: Vec<Stored<'_>> = specs
        .iter()
        .map(|(id, name, spec)| Stored::Spec { id, name, spec })
        .collect();
    stored.extend(
        secrets
            .iter()
            .map(|(name, secret_type)| Stored::Secret { name, secret_type }),
    );
    Ok(topology(&stored, &status))
}

/// How long config waits for the replicas' answers about delivery.
const DELIVERY_WINDOW: std::time::Duration = std::time::Duration::from_millis(400);

/// Every Envoy of one of the team's dataplanes connected to any replica, what each was sent
/// and acknowledged per type, and the recent NACKs: asked of all replicas at once over the bus
/// (they hold it in memory, as the state of their streams) and merged. Takes `reports:read`.
pub async fn delivery_of(
    ctx: &Context,
    caller: &Caller,
    team: &str,
    dataplane: &str,
) -> Result<Delivery, ServiceError> {
    let access = may_read_reports(ctx, caller, team).await?;
    let mut conn = ctx.pool.acquire().await?;
    // By name or id, as the trace takes it; the report names it as the replicas do.
    let found = store::resources_of_kind(&mut conn, &access, ResourceKind::Dataplane)
        .await?
        .into_iter()
        .find(|r| r.name == dataplane || r.id.to_string() == dataplane)
        .ok_or_else(|| ServiceError::NotFound(format!("dataplane '{dataplane}' not found")))?;
    drop(conn);
    let question = serde_json::to_vec(&DeliveryQuery {
        team: access.name().to_string(),
        dataplane: found.name.clone(),
    })
    .map_err(|e| ServiceError::Internal(e.into()))?;
    let answers = ctx
        .gather
        .ask(question, DELIVERY_WINDOW)
        .await
        .map_err(|e| ServiceError::Unavailable(format!("the replicas cannot be asked: {e}")))?;
    let answers = answers
        .iter()
        .filter_map(|a| serde_json::from_slice::<ReplicaDelivery>(a).ok())
        .collect();
    Ok(flowplane_domain::delivery::merge(&found.name, answers))
}

/// One team's resources as the findings read them: every spec but secrets, and secrets as
/// their summaries (their material is never read for this).
struct TeamState {
    specs: Vec<(String, AnySpec)>,
    secrets: Vec<(String, SecretSummary)>,
}

impl TeamState {
    async fn read(conn: &mut sqlx::PgConnection, team: &TeamAccess) -> Result<Self, ServiceError> {
        let mut specs = Vec::new();
        for kind in [
            ResourceKind::Cluster,
            ResourceKind::RouteConfig,
            ResourceKind::Listener,
            ResourceKind::Dataplane,
            ResourceKind::LearningSession,
        ] {
            specs.extend(self::specs(conn, team, kind, Some).await?);
        }
        let secrets = store::resources_of_kind(conn, team, ResourceKind::Secret)
            .await?
            .into_iter()
            .filter_map(|r| {
                let summary = serde_json::from_value::<SecretSummary>(r.spec).ok()?;
                Some((r.name, summary))
            })
            .collect();
        Ok(Self { specs, secrets })
    }

    fn findings(&self) -> Vec<Finding> {
        let team = TeamResources {
            specs: &self.specs,
            secrets: &self.secrets,
        };
        findings(&team, Utc::now())
    }

    fn remove(&mut self, kind: ResourceKind, name: &str) {
        self.specs.retain(|(n, s)| !(n == name && s.kind() == kind));
        if kind == ResourceKind::Secret {
            self.secrets.retain(|(n, _)| n != name);
        }
    }

    fn put(&mut self, name: &str, spec: AnySpec) {
        self.remove(spec.kind(), name);
        match spec {
            AnySpec::Secret(secret) => self.secrets.push((name.to_string(), secret.summary())),
            spec => self.specs.push((name.to_string(), spec)),
        }
    }
}

/// Where `request` would go through the Envoys of one of the team's dataplanes: the team's
/// clusters, route configs and the dataplane's listeners, read as replicas serve them
/// (quarantine fallbacks included) and translated by the same code, then matched the way
/// Envoy matches ([`flowplane_xds::explain`]). Takes `reports:read`, like route flows.
pub async fn trace_of(
    ctx: &Context,
    caller: &Caller,
    team: &str,
    request: &TraceRequest,
) -> Result<Trace, ServiceError> {
    request.validate()?;
    let access = may_read_reports(ctx, caller, team).await?;
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let sql =
        format!("{SERVED_SELECT} WHERE {SERVED_WHERE} AND r.team_id = $1 AND r.kind = ANY($2)");
    let kinds = [
        ResourceKind::Dataplane,
        ResourceKind::Cluster,
        ResourceKind::RouteConfig,
        ResourceKind::Listener,
    ]
    .map(|k| k.collection().to_string());
    let rows = sqlx::query(&sql)
        .bind(access.id())
        .bind(&kinds[..])
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut specs = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        let kind = ResourceKind::from_collection(&kind)
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("stored kind {kind}")))?;
        let spec: String = row.try_get("spec")?;
        let spec =
            AnySpec::from_stored(kind, &spec).map_err(|e| ServiceError::Internal(e.into()))?;
        let id: uuid::Uuid = row.try_get("id")?;
        specs.push((row.try_get::<String, _>("name")?, id.to_string(), spec));
    }
    let dataplane = specs
        .iter()
        .find(|(name, id, spec)| {
            matches!(spec, AnySpec::Dataplane(_))
                && (*name == request.dataplane || *id == request.dataplane)
        })
        .map(|(name, id, _)| (name.clone(), id.clone()))
        .ok_or_else(|| {
            ServiceError::NotFound(format!("dataplane '{}' not found", request.dataplane))
        })?;
    let mut snapshot = Snapshot::default();
    for (name, _, spec) in &specs {
        if let AnySpec::Listener(l) = spec
            && l.dataplane_id
                .as_ref()
                .is_some_and(|d| *d != dataplane.0 && *d != dataplane.1)
        {
            continue;
        }
        // Stored resources passed the same translation when written; one that no longer
        // translates is not served by replicas either.
        let Ok(encoded) = flowplane_xds::translate_any(access.name(), name, spec) else {
            continue;
        };
        for resource in &encoded {
            snapshot
                .add(resource)
                .map_err(|e| ServiceError::Internal(e.into()))?;
        }
    }
    Ok(snapshot.trace(request))
}

/// The team's resources of `kind`, by name, read back into their specs (`pick` takes the
/// kind's own spec out of [`AnySpec`]).
async fn specs<T>(
    conn: &mut sqlx::PgConnection,
    team: &TeamAccess,
    kind: ResourceKind,
    pick: fn(AnySpec) -> Option<T>,
) -> Result<Vec<(String, T)>, ServiceError> {
    let mut specs = Vec::new();
    for r in store::resources_of_kind(conn, team, kind).await? {
        let spec = AnySpec::from_stored(kind, &r.spec.to_string())
            .map_err(|e| ServiceError::Internal(e.into()))?;
        if let Some(spec) = pick(spec) {
            specs.push((r.name, spec));
        }
    }
    Ok(specs)
}

/// How long per-minute usage counts are kept.
pub const USAGE_RETENTION: Duration = Duration::days(7);

/// The longest window one usage report covers.
const MAX_USAGE_WINDOW: Duration = Duration::days(7);

/// Adds counts from the learning service. Counts for a team that does not exist (any more)
/// are dropped.
pub async fn record_usage(
    ctx: &Context,
    request: pb::RecordUsageRequest,
) -> Result<(), ServiceError> {
    let Some(team) = store::team_by_name(&ctx.pool, &request.team).await? else {
        return Ok(());
    };
    let mut tx = ctx.pool.begin().await?;
    for count in &request.counts {
        let Some(minute) = DateTime::<Utc>::from_timestamp(count.minute, 0) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO usage_minutes \
             (team_id, minute, listener, route, cluster, status_class, requests, duration_ms_sum) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (team_id, minute, listener, route, cluster, status_class) DO UPDATE \
             SET requests = usage_minutes.requests + EXCLUDED.requests, \
                 duration_ms_sum = usage_minutes.duration_ms_sum + EXCLUDED.duration_ms_sum",
        )
        .bind(team.id)
        .bind(minute)
        .bind(&count.listener)
        .bind(&count.route)
        .bind(&count.cluster)
        .bind(i16::try_from(count.status_class).unwrap_or(0))
        .bind(i64::try_from(count.requests).unwrap_or(i64::MAX))
        .bind(i64::try_from(count.duration_ms_sum).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A usage window: `since` and `until` as given (RFC 3339), else the hour before now.
pub struct Window {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Window {
    pub fn parse(since: &str, until: &str) -> Result<Self, ServiceError> {
        let at = |field: &str, value: &str| {
            DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ServiceError::validation(field, "must be an RFC 3339 time"))
        };
        let until = if until.is_empty() {
            Utc::now()
        } else {
            at("until", until)?
        };
        let since = if since.is_empty() {
            until - Duration::hours(1)
        } else {
            at("since", since)?
        };
        if since >= until {
            return Err(ServiceError::validation("since", "must be before until"));
        }
        if until - since > MAX_USAGE_WINDOW {
            return Err(ServiceError::validation(
                "since",
                "the window is at most 7 days",
            ));
        }
        Ok(Self { since, until })
    }
}

/// What the team's listeners served in `window`, by listener, route and cluster.
pub async fn usage_of(
    ctx: &Context,
    caller: &Caller,
    team: &str,
    window: &Window,
) -> Result<Vec<UsageRow>, ServiceError> {
    let access = may_read_reports(ctx, caller, team).await?;
    let rows = sqlx::query(
        "SELECT listener, route, cluster, status_class, \
                sum(requests)::bigint AS requests, sum(duration_ms_sum)::bigint AS duration \
         FROM usage_minutes WHERE team_id = $1 AND minute >= $2 AND minute < $3 \
         GROUP BY listener, route, cluster, status_class \
         ORDER BY listener, route, cluster, status_class",
    )
    .bind(access.id())
    .bind(window.since)
    .bind(window.until)
    .fetch_all(&ctx.pool)
    .await?;
    let mut groups: Vec<UsageGroup> = Vec::with_capacity(rows.len());
    for row in rows {
        let count = |name: &str| -> Result<u64, sqlx::Error> {
            Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or_default())
        };
        groups.push((
            row.try_get("listener")?,
            row.try_get("route")?,
            row.try_get("cluster")?,
            u16::try_from(row.try_get::<i16, _>("status_class")?).unwrap_or_default(),
            count("requests")?,
            count("duration")?,
        ));
    }
    Ok(usage_rows(groups))
}

/// Deletes usage counts older than [`USAGE_RETENTION`]; returns how many minutes went.
pub async fn prune_usage(ctx: &Context) -> Result<u64, ServiceError> {
    let done = sqlx::query("DELETE FROM usage_minutes WHERE minute < $1")
        .bind(Utc::now() - USAGE_RETENTION)
        .execute(&ctx.pool)
        .await?;
    Ok(done.rows_affected())
}
