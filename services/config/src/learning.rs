//! What learning sessions learned: the aggregates the learning service flushes are merged
//! into one row per endpoint, and read back for callers who may read the session.

use std::collections::BTreeMap;

use flowplane_domain::learning::rewrite::upstream_path;
use flowplane_domain::learning::{LearnedEndpoint, MAX_ENDPOINTS_PER_SESSION, merge_into};
use flowplane_domain::learning_session::{LearningSessionSpec, SessionState};
use flowplane_domain::listener::ListenerSpec;
use flowplane_domain::route_config::RouteConfigSpec;
use flowplane_domain::scopes::{Action, ScopeResource};
use flowplane_domain::{AnySpec, ResourceKind};
use flowplane_proto::learning::v1 as pb;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::Context;
use crate::authz::{Caller, TeamAccess, authorize_team};
use crate::error::ServiceError;
use crate::store;

/// A listener has one learning slot: a second active session on it is refused, naming the
/// one that holds it. Runs inside the write transaction, after the revision lock.
pub(crate) async fn check_slot_free(
    conn: &mut PgConnection,
    team: &TeamAccess,
    name: &str,
    spec: &AnySpec,
) -> Result<(), ServiceError> {
    let AnySpec::LearningSession(session) = spec else {
        return Ok(());
    };
    if session.state != SessionState::Active {
        return Ok(());
    }
    let holder: Option<String> = sqlx::query_scalar(
        "SELECT name FROM resources WHERE team_id = $1 AND kind = $2 AND name <> $3 \
         AND spec->>'listener' = $4 AND spec->>'state' = 'active' LIMIT 1",
    )
    .bind(team.id())
    .bind(ResourceKind::LearningSession.collection())
    .bind(name)
    .bind(&session.listener)
    .fetch_optional(conn)
    .await?;
    match holder {
        Some(holder) => Err(ServiceError::validation(
            "/state",
            format!(
                "learning session '{holder}' is already active on listener '{}'; stop it first",
                session.listener
            ),
        )),
        None => Ok(()),
    }
}

/// The active session filling each of `slots` (ECDS names of listeners' learning slots), for
/// the slots an active session fills: Envoy's answers about a slot are the session's status.
pub(crate) async fn sessions_in_slots<'a>(
    conn: &mut PgConnection,
    team_id: Uuid,
    slots: &'a [String],
) -> Result<Vec<(&'a String, String)>, ServiceError> {
    let listeners: Vec<&str> = slots
        .iter()
        .filter_map(|slot| flowplane_xds::learning::slot_listener(slot))
        .collect();
    // One query for the whole report: an answer names every slot Envoy holds.
    let active: Vec<(String, String)> = sqlx::query_as(
        "SELECT spec->>'listener', name FROM resources WHERE team_id = $1 AND kind = $2 \
         AND spec->>'state' = 'active' AND spec->>'listener' = ANY($3)",
    )
    .bind(team_id)
    .bind(ResourceKind::LearningSession.collection())
    .bind(&listeners)
    .fetch_all(&mut *conn)
    .await?;
    let active: std::collections::HashMap<String, String> = active.into_iter().collect();
    Ok(slots
        .iter()
        .filter_map(|slot| {
            let listener = flowplane_xds::learning::slot_listener(slot)?;
            Some((slot, active.get(listener)?.clone()))
        })
        .collect())
}

/// Merges a flush from the learning service. Nothing is recorded for a session that is gone
/// or not active (a late flush after a stop); endpoints beyond the per-session cap are
/// dropped, so hostile traffic cannot grow a session without bound.
pub async fn record(ctx: &Context, request: pb::RecordRequest) -> Result<bool, ServiceError> {
    let mut incoming = Vec::with_capacity(request.endpoints_json.len());
    for (i, json) in request.endpoints_json.iter().enumerate() {
        let endpoint: LearnedEndpoint = serde_json::from_str(json)
            .map_err(|e| ServiceError::validation(format!("/endpointsJson/{i}"), e.to_string()))?;
        incoming.push(endpoint);
    }
    let mut tx = ctx.pool.begin().await?;
    let session = sqlx::query(
        "SELECT r.id, r.spec FROM resources r JOIN teams t ON t.id = r.team_id \
         WHERE t.name = $1 AND r.kind = $2 AND r.name = $3 FOR SHARE OF r",
    )
    .bind(&request.team)
    .bind(ResourceKind::LearningSession.collection())
    .bind(&request.session)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(session) = session else {
        return Ok(false);
    };
    let spec: LearningSessionSpec = serde_json::from_value(session.try_get("spec")?)
        .map_err(|e| ServiceError::Internal(e.into()))?;
    if spec.state != SessionState::Active {
        return Ok(false);
    }
    let session_id: Uuid = session.try_get("id")?;
    let mut stored = stored_endpoints(&mut tx, session_id, true).await?;
    let mut changed = std::collections::BTreeSet::new();
    for endpoint in incoming {
        let key = endpoint.key();
        if let Some(existing) = stored.get_mut(&key) {
            existing.merge(&endpoint);
        } else if stored.len() < MAX_ENDPOINTS_PER_SESSION {
            stored.insert(key.clone(), endpoint);
        } else {
            continue;
        }
        changed.insert(key);
    }
    for key in &changed {
        let Some(endpoint) = stored.get(key) else {
            continue;
        };
        let aggregate =
            serde_json::to_value(endpoint).map_err(|e| ServiceError::Internal(e.into()))?;
        sqlx::query(
            "INSERT INTO learned_endpoints (session_id, method, path, samples, aggregate) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id, path, method) DO UPDATE \
             SET samples = EXCLUDED.samples, aggregate = EXCLUDED.aggregate, updated_at = now()",
        )
        .bind(session_id)
        .bind(&endpoint.method)
        .bind(&endpoint.path)
        .bind(i64::try_from(endpoint.samples).unwrap_or(i64::MAX))
        .bind(aggregate)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// What `session` of `team` learned, ordered by path then method.
pub async fn list_learned(
    ctx: &Context,
    caller: &Caller,
    team: &str,
    session: &str,
    gateway_paths: bool,
) -> Result<Vec<LearnedEndpoint>, ServiceError> {
    let not_found = || format!("learning session '{session}' not found");
    let access = authorize_team(
        &ctx.pool,
        caller,
        team,
        ScopeResource::LearningSessions,
        Action::Read,
        not_found,
    )
    .await?;
    // One snapshot: the endpoints and the routes that rewrite them agree.
    let mut tx = store::read_only(&ctx.pool).await?;
    let stored = store::get_resource(
        &mut tx,
        &access,
        ResourceKind::LearningSession,
        session,
        false,
    )
    .await?
    .ok_or_else(|| ServiceError::NotFound(not_found()))?;
    // Stored as each path's own template; read with the evidence of all of them (siblings).
    let mut endpoints = flowplane_domain::learning::generalize(
        stored_endpoints(&mut tx, stored.id, false)
            .await?
            .into_values()
            .collect(),
    );
    if !gateway_paths {
        let spec: LearningSessionSpec =
            serde_json::from_value(stored.spec).map_err(|e| ServiceError::Internal(e.into()))?;
        let routes = listener_routes(&mut tx, &access, &spec.listener).await?;
        let mut upstream = BTreeMap::new();
        for mut endpoint in endpoints {
            if let Some(path) = upstream_path(&routes, &endpoint.method, &endpoint.path) {
                endpoint.path = path;
            }
            merge_into(&mut upstream, endpoint);
        }
        endpoints = upstream.into_values().collect();
    }
    tx.commit().await?;
    endpoints.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
    Ok(endpoints)
}

/// The route configs `listener` serves, in its filter chains' order; none when it is gone.
async fn listener_routes(
    conn: &mut PgConnection,
    access: &TeamAccess,
    listener: &str,
) -> Result<Vec<RouteConfigSpec>, ServiceError> {
    let Some(stored) =
        store::get_resource(conn, access, ResourceKind::Listener, listener, false).await?
    else {
        return Ok(Vec::new());
    };
    let listener: ListenerSpec =
        serde_json::from_value(stored.spec).map_err(|e| ServiceError::Internal(e.into()))?;
    let mut routes = Vec::new();
    for name in listener.referenced_route_configs() {
        if let Some(r) =
            store::get_resource(conn, access, ResourceKind::RouteConfig, name, false).await?
        {
            routes.push(
                serde_json::from_value(r.spec).map_err(|e| ServiceError::Internal(e.into()))?,
            );
        }
    }
    Ok(routes)
}

/// A session's endpoints by their key; `lock` holds their rows until the transaction
/// ends, so two flushes merge one after the other.
async fn stored_endpoints(
    conn: &mut PgConnection,
    session_id: Uuid,
    lock: bool,
) -> Result<BTreeMap<(String, String), LearnedEndpoint>, ServiceError> {
    let sql = if lock {
        "SELECT aggregate FROM learned_endpoints WHERE session_id = $1 FOR UPDATE"
    } else {
        "SELECT aggregate FROM learned_endpoints WHERE session_id = $1"
    };
    let rows = sqlx::query(sql).bind(session_id).fetch_all(conn).await?;
    let mut endpoints = BTreeMap::new();
    for row in rows {
        let endpoint: LearnedEndpoint = serde_json::from_value(row.try_get("aggregate")?)
            .map_err(|e| ServiceError::Internal(e.into()))?;
        endpoints.insert(endpoint.key(), endpoint);
    }
    Ok(endpoints)
}
