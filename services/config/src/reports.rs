//! Reports about a team, computed from what config stores: the rows come from the domain's
//! pure report functions, the data from one read of the team's resources.

use std::collections::BTreeMap;

use flowplane_domain::reports::{RouteFlow, route_flows};
use flowplane_domain::scopes::{Action, ScopeResource};
use flowplane_domain::{AnySpec, ResourceKind};

use crate::Context;
use crate::authz::{Caller, TeamAccess, authorize_team};
use crate::error::ServiceError;
use crate::store;

/// Where each of the team's listeners sends traffic. Takes `reports:read` on the team, not
/// read access to each kind: the report shows structure (names, matches, endpoints), never a
/// secret.
pub async fn route_flows_of(
    ctx: &Context,
    caller: &Caller,
    team: &str,
) -> Result<Vec<RouteFlow>, ServiceError> {
    let access = authorize_team(
        &ctx.pool,
        caller,
        team,
        ScopeResource::Reports,
        Action::Read,
        || format!("team '{team}' not found"),
    )
    .await?;
    // One snapshot, so the three kinds agree with each other.
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let listeners: Vec<_> = specs(&mut tx, &access, ResourceKind::Listener)
        .await?
        .into_iter()
        .filter_map(|(name, spec)| match spec {
            AnySpec::Listener(l) => Some((name, l)),
            _ => None,
        })
        .collect();
    let route_configs: BTreeMap<_, _> = specs(&mut tx, &access, ResourceKind::RouteConfig)
        .await?
        .into_iter()
        .filter_map(|(name, spec)| match spec {
            AnySpec::RouteConfig(r) => Some((name, r)),
            _ => None,
        })
        .collect();
    let clusters: BTreeMap<_, _> = specs(&mut tx, &access, ResourceKind::Cluster)
        .await?
        .into_iter()
        .filter_map(|(name, spec)| match spec {
            AnySpec::Cluster(c) => Some((name, c)),
            _ => None,
        })
        .collect();
    tx.commit().await?;
    Ok(route_flows(&listeners, &route_configs, &clusters))
}

/// The team's resources of `kind`, by name, read back into their specs.
async fn specs(
    conn: &mut sqlx::PgConnection,
    team: &TeamAccess,
    kind: ResourceKind,
) -> Result<Vec<(String, AnySpec)>, ServiceError> {
    store::resources_of_kind(conn, team, kind)
        .await?
        .into_iter()
        .map(|r| {
            let spec = AnySpec::from_stored(kind, &r.spec.to_string())
                .map_err(|e| ServiceError::Internal(e.into()))?;
            Ok((r.name, spec))
        })
        .collect()
}
