//! Resource changes: parse, authorize, validate (domain rules, references, and a dry
//! translation to Envoy protos), then one transaction with the row, its audit entry and its
//! change event.

use flowplane_domain::preflight::Affected;
use flowplane_domain::scopes::Action;
use flowplane_domain::{AnySpec, FieldError, Needs, RefTarget, ResourceKind, ValidationErrors};
use flowplane_proto::resources::v1 as pb;
use flowplane_proto::state::v1::{ChangeEvent, ChangeOp};
use prost::Message;
use sqlx::PgConnection;

use crate::Context;
use crate::authz::{Caller, TeamAccess, authorize_team};
use crate::error::{ServiceError, violated_constraint};
use crate::store::{self, AuditEntry, StoredResource};
use crate::{learning, secret_material};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

pub async fn create(
    ctx: &Context,
    caller: &Caller,
    kind: ResourceKind,
    path_team: &str,
    body: &str,
) -> Result<pb::Resource, ServiceError> {
    let parsed = AnySpec::parse(kind, body)?;
    let team = match (non_empty(path_team), parsed.team.as_deref()) {
        (Some(path), Some(body)) if path != body => {
            return Err(ServiceError::validation(
                "/team",
                format!("must match the team in the path ('{path}')"),
            ));
        }
        (Some(team), _) | (None, Some(team)) => team.to_string(),
        (None, None) => return Err(ServiceError::validation("/team", "is required")),
    };
    let name = parsed
        .name
        .ok_or_else(|| ServiceError::validation("/name", "is required"))?;
    let access = authorize_team(
        &ctx.pool,
        caller,
        &team,
        kind.scope_resource(),
        Action::Write,
        || format!("team '{team}' not found"),
    )
    .await?;
    dry_translate(access.name(), &name, &parsed.spec)?;
    // A secret's row, audit entry and event carry its summary; the material is sealed apart.
    let spec_json = parsed.spec.public_json();

    let mut tx = ctx.pool.begin().await?;
    let revision = store::next_revision(&mut tx).await?;
    check_references(&mut tx, &access, &parsed.spec).await?;
    learning::check_slot_free(&mut tx, &access, &name, &parsed.spec).await?;
    let stored =
        match store::insert_resource(&mut tx, &access, kind, &name, &spec_json, revision).await {
            Err(e) if violated_constraint(&e) == Some("resources_team_kind_name_key") => {
                return Err(ServiceError::AlreadyExists(format!(
                    "{} '{name}' already exists in team '{team}'",
                    kind.singular()
                )));
            }
            other => other?,
        };
    secret_material::seal_into(&mut tx, &ctx.secrets_key, &access, &stored, &parsed.spec).await?;
    record_change(
        &mut tx,
        caller,
        &access,
        "created",
        &stored,
        None,
        Some(&spec_json),
    )
    .await?;
    tx.commit().await?;
    ctx.outbox_ready.notify_one();
    Ok(to_proto(&stored, Vec::new()))
}

pub async fn update(
    ctx: &Context,
    caller: &Caller,
    kind: ResourceKind,
    team: &str,
    name: &str,
    body: &str,
    if_revision: i64,
) -> Result<pb::Resource, ServiceError> {
    let parsed = AnySpec::parse(kind, body)?;
    let team = &resolve_team(ctx, caller, kind, team, name).await?;
    let mut errors = ValidationErrors::new();
    if parsed.team.as_deref().is_some_and(|t| t != team) {
        errors.add("/team", "a resource cannot move between teams");
    }
    if parsed.name.as_deref().is_some_and(|n| n != name) {
        errors.add("/name", "a resource cannot be renamed; create a new one");
    }
    errors.into_result()?;
    let access = authorize_team(
        &ctx.pool,
        caller,
        team,
        kind.scope_resource(),
        Action::Write,
        || not_found(kind, name),
    )
    .await?;
    dry_translate(access.name(), name, &parsed.spec)?;
    let spec_json = parsed.spec.public_json();

    let mut tx = ctx.pool.begin().await?;
    let revision = store::next_revision(&mut tx).await?;
    let current = locked_current(&mut tx, &access, kind, name, if_revision).await?;
    refuse_generated(&current)?;
    let material_changed = secret_material::material_changed(
        &mut tx,
        &ctx.secrets_key,
        &access,
        &current,
        &parsed.spec,
    )
    .await?;
    if current.spec == spec_json && !material_changed {
        // Nothing changed: no revision is spent, nothing is pushed.
        tx.rollback().await?;
        return Ok(to_proto(&current, Vec::new()));
    }
    check_references(&mut tx, &access, &parsed.spec).await?;
    learning::check_slot_free(&mut tx, &access, name, &parsed.spec).await?;
    let stored = store::update_resource(&mut tx, &current, &spec_json, revision).await?;
    secret_material::seal_into(&mut tx, &ctx.secrets_key, &access, &stored, &parsed.spec).await?;
    record_change(
        &mut tx,
        caller,
        &access,
        "updated",
        &stored,
        Some(&current.spec),
        Some(&spec_json),
    )
    .await?;
    tx.commit().await?;
    ctx.outbox_ready.notify_one();
    Ok(to_proto(&stored, Vec::new()))
}

pub async fn delete(
    ctx: &Context,
    caller: &Caller,
    kind: ResourceKind,
    team: &str,
    name: &str,
    if_revision: i64,
) -> Result<i64, ServiceError> {
    let team = &resolve_team(ctx, caller, kind, team, name).await?;
    let access = authorize_team(
        &ctx.pool,
        caller,
        team,
        kind.scope_resource(),
        Action::Write,
        || not_found(kind, name),
    )
    .await?;
    let mut tx = ctx.pool.begin().await?;
    let revision = store::next_revision(&mut tx).await?;
    let current = locked_current(&mut tx, &access, kind, name, if_revision).await?;
    refuse_generated(&current)?;
    let referrers = find_referrers(&mut tx, &access, &current).await?;
    if !referrers.is_empty() {
        return Err(ServiceError::Conflict {
            message: format!(
                "{} '{name}' is still referenced by {} resource(s); change or delete them first",
                kind.singular(),
                referrers.len()
            ),
            referrers,
        });
    }
    store::delete_resource(&mut tx, &current).await?;
    let gone = StoredResource {
        revision,
        ..current.clone()
    };
    record_change(
        &mut tx,
        caller,
        &access,
        "deleted",
        &gone,
        Some(&current.spec),
        None,
    )
    .await?;
    tx.commit().await?;
    ctx.outbox_ready.notify_one();
    Ok(revision)
}

pub async fn get(
    ctx: &Context,
    caller: &Caller,
    kind: ResourceKind,
    team: &str,
    name: &str,
) -> Result<pb::Resource, ServiceError> {
    read(ctx, caller, kind, team, name, Action::Read).await
}

/// Reads a resource its caller is about to deploy: a dataplane's bootstrap carries the
/// dataplane's credential, with which an Envoy receives everything the team serves (secret
/// material included), so handing it out takes write access to dataplanes, not read.
pub async fn get_for_deployment(
    ctx: &Context,
    caller: &Caller,
    kind: ResourceKind,
    team: &str,
    name: &str,
) -> Result<pb::Resource, ServiceError> {
    let mut resource = read(ctx, caller, kind, team, name, Action::Write).await?;
    if kind == ResourceKind::Dataplane {
        resource.deployment_token =
            crate::dataplane_tokens::issue(ctx, &resource.team, &resource.id);
    }
    Ok(resource)
}

async fn read(
    ctx: &Context,
    caller: &Caller,
    kind: ResourceKind,
    team: &str,
    name: &str,
    action: Action,
) -> Result<pb::Resource, ServiceError> {
    let team = resolve_team(ctx, caller, kind, team, name).await?;
    let access = authorize_team(
        &ctx.pool,
        caller,
        &team,
        kind.scope_resource(),
        action,
        || not_found(kind, name),
    )
    .await?;
    let mut conn = ctx.pool.acquire().await?;
    let stored = store::get_resource(&mut conn, &access, kind, name, false)
        .await?
        .ok_or_else(|| ServiceError::NotFound(not_found(kind, name)))?;
    drop(conn);
    let status = store::resource_status(&ctx.pool, &stored).await?;
    let quarantine = store::quarantine(&ctx.pool, stored.id).await?;
    Ok(pb::Resource {
        quarantine,
        ..to_proto(&stored, status)
    })
}

pub async fn list(
    ctx: &Context,
    caller: &Caller,
    kind: ResourceKind,
    team: &str,
    limit: u32,
    cursor: &str,
) -> Result<pb::ListResourcesResponse, ServiceError> {
    let team = non_empty(team);
    let limit = if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    };
    let after = non_empty(cursor).map(decode_cursor).transpose()?;
    let filter = caller
        .list_scope(&ctx.pool, kind.scope_resource(), team)
        .await?;
    // One extra row tells whether another page exists.
    let mut rows = store::list_resources(
        &ctx.pool,
        kind,
        &filter,
        team,
        None,
        after,
        i64::from(limit) + 1,
    )
    .await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| encode_cursor(&r.team, &r.name))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListResourcesResponse {
        items: rows.iter().map(|r| to_proto(r, Vec::new())).collect(),
        next_cursor,
    })
}

/// The team an item request addresses: the one given, or else the only team the caller can
/// read that holds `name` (the canonical `/api/v1/{kind}/{name}` path without `?team=`).
async fn resolve_team(
    ctx: &Context,
    caller: &Caller,
    kind: ResourceKind,
    team: &str,
    name: &str,
) -> Result<String, ServiceError> {
    if let Some(team) = non_empty(team) {
        return Ok(team.to_string());
    }
    // Only finds the team; authorize_team decides (and audits) the access itself.
    let filter = caller.grants.readable_teams(kind.scope_resource());
    let found = store::find_by_name(&ctx.pool, kind, &filter, name).await?;
    match found.as_slice() {
        [] => Err(ServiceError::NotFound(not_found(kind, name))),
        [one] => Ok(one.team.clone()),
        several => {
            let teams: Vec<&str> = several.iter().map(|r| r.team.as_str()).collect();
            Err(ServiceError::validation(
                "/team",
                format!(
                    "'{name}' exists in several of your teams ({}); pass ?team=",
                    teams.join(", ")
                ),
            ))
        }
    }
}

/// A resource an API definition generated changes only through the definition, so a direct
/// edit cannot be silently overwritten, nor a delete break the definition.
pub(crate) fn refuse_generated(current: &StoredResource) -> Result<(), ServiceError> {
    let Some(owner) = &current.managed_by else {
        return Ok(());
    };
    let by = if owner == flowplane_domain::api_definition::generate::SHARED_OWNER {
        "the team's shared API definitions".to_string()
    } else {
        format!("API definition '{owner}'")
    };
    Err(ServiceError::Conflict {
        message: format!(
            "{} '{}' is generated by {by}; change or delete the API definition instead",
            current.kind.singular(),
            current.name
        ),
        referrers: vec![FieldError {
            field: String::new(),
            message: format!("managed by {by}"),
        }],
    })
}

/// Translates the spec exactly as xds-server will, so anything Envoy would be handed but
/// could not be expressed fails here as a 400 instead of a NACK later.
pub(crate) fn dry_translate(
    team: &str,
    name: &str,
    spec: &AnySpec,
) -> Result<(), ValidationErrors> {
    flowplane_xds::translate_any(team, name, spec)
        .map(|_| ())
        .map_err(ValidationErrors::from)
}

/// Every reference must name a resource of the same team that exists now. Runs inside the
/// write transaction, after the revision lock, so a concurrent delete cannot slip between.
pub(crate) async fn check_references(
    conn: &mut PgConnection,
    team: &TeamAccess,
    spec: &AnySpec,
) -> Result<(), ServiceError> {
    let mut errors = ValidationErrors::new();
    let mut existing: std::collections::HashMap<ResourceKind, Vec<StoredResource>> =
        Default::default();
    for reference in spec.references() {
        let candidates = match existing.entry(reference.kind) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(store::resources_of_kind(conn, team, reference.kind).await?)
            }
        };
        let found = candidates.iter().find(|r| match &reference.target {
            RefTarget::Name(name) => &r.name == name,
            RefTarget::Id(id) => r.id.to_string() == *id || &r.name == id,
        });
        match (found, reference.needs) {
            // A secret's stored summary carries its `type`; a field needs one particular type.
            (Some(secret), Some(Needs::SecretType(required))) => {
                let actual = secret.spec["type"].as_str().unwrap_or_default();
                if actual != required {
                    errors.add(
                        reference.field,
                        format!(
                            "secret '{}' is a {actual}; this field needs a {required}",
                            secret.name
                        ),
                    );
                }
                continue;
            }
            (Some(cluster), Some(Needs::Http2)) => {
                let protocol = cluster.spec["protocolType"].as_str().unwrap_or("HTTP1");
                if !matches!(protocol, "HTTP2" | "AUTO") {
                    errors.add(
                        reference.field,
                        format!(
                            "cluster '{}' speaks {protocol}; this field calls it over gRPC, \
                             which needs protocolType HTTP2",
                            cluster.name
                        ),
                    );
                }
                continue;
            }
            _ => {}
        }
        if found.is_none() {
            let target = match &reference.target {
                RefTarget::Name(n) | RefTarget::Id(n) => n,
            };
            errors.add(
                reference.field,
                format!(
                    "{} '{target}' does not exist in team '{}'",
                    reference.kind.singular(),
                    team.name()
                ),
            );
        }
    }
    Ok(errors.into_result()?)
}

/// Resources of the same team that reference `target`.
/// The resources of the team that point at `target`, and where.
pub(crate) async fn referrers(
    conn: &mut PgConnection,
    team: &TeamAccess,
    target: &StoredResource,
) -> Result<Vec<Affected>, ServiceError> {
    let mut referrers = Vec::new();
    for kind in [
        ResourceKind::Cluster,
        ResourceKind::RouteConfig,
        ResourceKind::Listener,
        ResourceKind::LearningSession,
    ] {
        for candidate in store::resources_of_kind(conn, team, kind).await? {
            let Ok(spec) = AnySpec::from_stored(kind, &candidate.spec.to_string()) else {
                continue;
            };
            for reference in spec.references() {
                let hit = reference.kind == target.kind
                    && match &reference.target {
                        RefTarget::Name(n) => *n == target.name,
                        RefTarget::Id(id) => *id == target.id.to_string() || *id == target.name,
                    };
                if hit {
                    referrers.push(Affected {
                        kind: kind.collection().to_string(),
                        name: candidate.name.clone(),
                        field: reference.field,
                    });
                }
            }
        }
    }
    Ok(referrers)
}

/// [`referrers`] as the field errors that refuse a delete.
pub(crate) async fn find_referrers(
    conn: &mut PgConnection,
    team: &TeamAccess,
    target: &StoredResource,
) -> Result<Vec<FieldError>, ServiceError> {
    Ok(referrer_errors(&referrers(conn, team, target).await?))
}

pub(crate) fn referrer_errors(referrers: &[Affected]) -> Vec<FieldError> {
    referrers
        .iter()
        .map(|a| FieldError {
            message: format!(
                "{} '{}' references it",
                ResourceKind::from_collection(&a.kind).map_or("resource", ResourceKind::singular),
                a.name
            ),
            field: format!("/{}/{}{}", a.kind, a.name, a.field),
        })
        .collect()
}

async fn locked_current(
    conn: &mut PgConnection,
    team: &TeamAccess,
    kind: ResourceKind,
    name: &str,
    if_revision: i64,
) -> Result<StoredResource, ServiceError> {
    let current = store::get_resource(conn, team, kind, name, true)
        .await?
        .ok_or_else(|| ServiceError::NotFound(not_found(kind, name)))?;
    if if_revision != 0 && current.revision != if_revision {
        return Err(ServiceError::RevisionMismatch {
            expected: if_revision,
            current: current.revision,
        });
    }
    Ok(current)
}

/// The audit row and the outbox event of one change, in the caller's transaction.
async fn record_change(
    conn: &mut PgConnection,
    caller: &Caller,
    team: &TeamAccess,
    verb: &str,
    resource: &StoredResource,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Result<(), ServiceError> {
    let event = audit_change(conn, caller, team, verb, resource, before, after).await?;
    store::enqueue_event(conn, resource.revision, &event.encode_to_vec()).await?;
    Ok(())
}

/// The audit action of a change to a resource of `kind`: `listener.updated`, ….
pub(crate) fn audit_action(kind: ResourceKind, verb: &str) -> String {
    format!("{}.{verb}", kind.collection().trim_end_matches('s'))
}

/// Writes the audit row of one resource change (`after` is `None` for a delete) and returns
/// the change event that tells the xds-servers about it.
pub(crate) async fn audit_change(
    conn: &mut PgConnection,
    caller: &Caller,
    team: &TeamAccess,
    verb: &str,
    resource: &StoredResource,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Result<ChangeEvent, ServiceError> {
    store::audit(
        conn,
        AuditEntry {
            action: &audit_action(resource.kind, verb),
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id: Some(team.org_id()),
            team: Some(team.name()),
            resource_kind: Some(resource.kind.collection()),
            resource_name: Some(&resource.name),
            revision: Some(resource.revision),
            before,
            after,
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
        },
    )
    .await?;
    let deleted = after.is_none();
    Ok(ChangeEvent {
        revision: resource.revision,
        op: if deleted {
            ChangeOp::Delete
        } else {
            ChangeOp::Upsert
        } as i32,
        kind: kind_to_proto(resource.kind) as i32,
        team: team.name().to_string(),
        name: resource.name.clone(),
        resource: (!deleted).then(|| to_proto(resource, Vec::new())),
        changes: Vec::new(),
    })
}

pub fn to_proto(resource: &StoredResource, status: Vec<store::StatusRow>) -> pb::Resource {
    pb::Resource {
        kind: kind_to_proto(resource.kind) as i32,
        id: resource.id.to_string(),
        team: resource.team.clone(),
        name: resource.name.clone(),
        revision: resource.revision,
        spec_json: resource.spec.to_string(),
        created_at: resource.created_at.to_rfc3339(),
        updated_at: resource.updated_at.to_rfc3339(),
        status: status
            .into_iter()
            .map(|s| pb::DataplaneStatus {
                dataplane: s.dataplane,
                state: s.state,
                version: s.version,
                error: s.error,
                updated_at: s.updated_at.to_rfc3339(),
            })
            .collect(),
        deployment_token: String::new(),
        quarantine: None,
    }
}

pub fn kind_to_proto(kind: ResourceKind) -> pb::ResourceKind {
    match kind {
        ResourceKind::Cluster => pb::ResourceKind::Cluster,
        ResourceKind::RouteConfig => pb::ResourceKind::RouteConfig,
        ResourceKind::Listener => pb::ResourceKind::Listener,
        ResourceKind::Dataplane => pb::ResourceKind::Dataplane,
        ResourceKind::Secret => pb::ResourceKind::Secret,
        ResourceKind::LearningSession => pb::ResourceKind::LearningSession,
    }
}

pub fn kind_from_proto(kind: i32) -> Result<ResourceKind, ServiceError> {
    match pb::ResourceKind::try_from(kind) {
        Ok(pb::ResourceKind::Cluster) => Ok(ResourceKind::Cluster),
        Ok(pb::ResourceKind::RouteConfig) => Ok(ResourceKind::RouteConfig),
        Ok(pb::ResourceKind::Listener) => Ok(ResourceKind::Listener),
        Ok(pb::ResourceKind::Dataplane) => Ok(ResourceKind::Dataplane),
        Ok(pb::ResourceKind::Secret) => Ok(ResourceKind::Secret),
        Ok(pb::ResourceKind::LearningSession) => Ok(ResourceKind::LearningSession),
        _ => Err(ServiceError::validation("/kind", "unknown resource kind")),
    }
}

fn not_found(kind: ResourceKind, name: &str) -> String {
    format!("{} '{name}' not found", kind.singular())
}

pub(crate) fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

pub(crate) fn encode_cursor(team: &str, name: &str) -> String {
    hex::encode(format!("{team}\n{name}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<(String, String), ServiceError> {
    let invalid = || ServiceError::validation("/cursor", "is not a cursor this API returned");
    let raw = hex::decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let (team, name) = text.split_once('\n').ok_or_else(invalid)?;
    Ok((team.to_string(), name.to_string()))
}
