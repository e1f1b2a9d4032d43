//! The Platform API: API definitions and what they generate. A change to a definition is one
//! transaction at one revision: the definition row, every generated cluster, route config and
//! listener it adds, changes or removes (validated and dry-translated exactly like native
//! writes), one audit row per row touched, and one outbox event carrying every resource change.
//!
//! Ownership: generated resources carry `managed_by` (the definition's name, or
//! [`SHARED_OWNER`] for the team's shared gateway listener and route config, which every shared
//! definition of the team contributes a virtual host to). Native updates and deletes of them are
//! refused with 409; deleting a definition removes exactly what it owned, and rebuilds the
//! shared gateway from the definitions that remain.

mod plan;
mod rows;

use std::sync::OnceLock;

use flowplane_domain::api_definition::expose::ExposeRequest;
use flowplane_domain::api_definition::generate::{self, DEFAULT_SHARED_PORT, SHARED_OWNER};
use flowplane_domain::api_definition::openapi::{self, ImportOptions};
use flowplane_domain::api_definition::{ApiDefinitionSpec, ListenerIsolation};
use flowplane_domain::scopes::{Action, ScopeResource};
use flowplane_domain::{ResourceKind, parse_spec};
use flowplane_proto::resources::v1 as pb;
use flowplane_proto::state::v1::{ChangeEvent, ChangeOp};
use prost::Message;
use sqlx::PgConnection;

use crate::Context;
use crate::authz::{Caller, TeamAccess, authorize_team};
use crate::error::{ServiceError, violated_constraint};
use crate::resources::{
    DEFAULT_PAGE, MAX_PAGE, audit_change, check_references, decode_cursor, encode_cursor,
    find_referrers, kind_to_proto, non_empty, to_proto,
};
use crate::store::{self, AuditEntry, StoredResource};
use plan::{Desired, Step};
use rows::DefinitionRow;

static SHARED_GATEWAY_PORT: OnceLock<u32> = OnceLock::new();

/// Sets the shared gateway listener's port once, at start (`FLOWPLANE_SHARED_GATEWAY_PORT`);
/// unset, it is 10000.
pub fn set_shared_gateway_port(port: u32) {
    let _ = SHARED_GATEWAY_PORT.set(port);
}

fn shared_gateway_port() -> u32 {
    SHARED_GATEWAY_PORT
        .get()
        .copied()
        .unwrap_or(DEFAULT_SHARED_PORT)
}

const SCOPE: ScopeResource = ScopeResource::ApiDefinitions;

/// A parsed write: which definition, in which team, becoming what.
struct Input {
    team: Option<String>,
    name: String,
    spec: ApiDefinitionSpec,
}

pub async fn apply(
    ctx: &Context,
    caller: &Caller,
    request: pb::ApplyApiDefinitionRequest,
) -> Result<pb::ApplyApiDefinitionResponse, ServiceError> {
    let mode = pb::ApplyMode::try_from(request.mode).unwrap_or(pb::ApplyMode::Unspecified);
    let missing = |team: &str| {
        if mode == pb::ApplyMode::Update {
            not_found(&request.name)
        } else {
            format!("team '{team}' not found")
        }
    };
    // Authorized before the body is read whenever the team is known from the path or query
    // (always, for an OpenAPI import): a caller without write access to the team never makes
    // config parse a document.
    let early = match non_empty(&request.team) {
        Some(team) => Some(
            authorize_team(&ctx.pool, caller, team, SCOPE, Action::Write, || {
                missing(team)
            })
            .await?,
        ),
        None if request.source == pb::ApiDefinitionSource::Openapi as i32 => {
            return Err(ServiceError::validation("/team", "is required (?team=)"));
        }
        None => None,
    };
    // Parsing a large document is CPU work: off the async workers, so other requests go on.
    let (request, input) = tokio::task::spawn_blocking(move || {
        let input = parse_input(&request);
        (request, input)
    })
    .await
    .map_err(|e| ServiceError::Internal(anyhow::anyhow!("parsing the definition: {e}")))?;
    let input = input?;
    let team = match (non_empty(&request.team), input.team.as_deref()) {
        (Some(path), Some(body)) if path != body => {
            return Err(ServiceError::validation(
                "/team",
                format!("must match the team in the path ('{path}')"),
            ));
        }
        (Some(team), _) | (None, Some(team)) => team.to_string(),
        (None, None) if mode == pb::ApplyMode::Update => {
            resolve_team(ctx, caller, &input.name).await?
        }
        (None, None) => return Err(ServiceError::validation("/team", "is required")),
    };
    let access = match early {
        Some(access) => access,
        None => {
            authorize_team(&ctx.pool, caller, &team, SCOPE, Action::Write, || {
                if mode == pb::ApplyMode::Update {
                    not_found(&input.name)
                } else {
                    format!("team '{team}' not found")
                }
            })
            .await?
        }
    };
    let spec_json = serde_json::to_value(&input.spec)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("definition spec: {e}")))?;

    let mut tx = ctx.pool.begin().await?;
    // Taken first: the revision row lock serializes every writer, so the team's definitions
    // and generated resources cannot change under this transaction.
    let revision = store::next_revision(&mut tx).await?;
    let current = rows::get(&mut tx, &access, &input.name, true).await?;
    match (&current, mode) {
        (Some(_), pb::ApplyMode::Create) => {
            return Err(ServiceError::AlreadyExists(format!(
                "API definition '{}' already exists in team '{team}'",
                input.name
            )));
        }
        (None, pb::ApplyMode::Update) => {
            return Err(ServiceError::NotFound(not_found(&input.name)));
        }
        (Some(c), _) if request.if_revision != 0 && c.revision != request.if_revision => {
            return Err(ServiceError::RevisionMismatch {
                expected: request.if_revision,
                current: c.revision,
            });
        }
        _ => {}
    }
    if let Some(c) = current.as_ref().filter(|c| c.spec == spec_json) {
        // Nothing changed: no revision is spent, nothing is pushed.
        tx.rollback().await?;
        let generated = generated_of(ctx, &access, c, false).await?;
        return Ok(pb::ApplyApiDefinitionResponse {
            definition: Some(definition_proto(c, generated)),
            changed: false,
            created: false,
            dry_run: request.dry_run,
            changes: Vec::new(),
        });
    }

    let others: Vec<(String, ApiDefinitionSpec)> = rows::of_team(&mut tx, &access)
        .await?
        .into_iter()
        .filter(|d| d.name != input.name)
        .filter_map(|d| Some((d.name, serde_json::from_value(d.spec).ok()?)))
        .collect();
    check_catch_all(&input, &others)?;
    let before: Option<ApiDefinitionSpec> = current
        .as_ref()
        .and_then(|c| serde_json::from_value(c.spec.clone()).ok());

    let mut all: Vec<(&str, &ApiDefinitionSpec)> =
        others.iter().map(|(n, s)| (n.as_str(), s)).collect();
    all.push((input.name.as_str(), &input.spec));
    let mut generated = generate::owned_resources(&input.name, &input.spec);
    generated.extend(generate::shared_gateway(&all, shared_gateway_port()));
    let desired = plan::validate(access.name(), generated)?;
    let managed = store::managed_resources(
        &mut tx,
        &access,
        &[input.name.clone(), SHARED_OWNER.to_string()],
    )
    .await?;
    let steps = plan::steps(&desired, &managed);
    let changes = plan::report(&steps, before.as_ref(), Some(&input.spec));

    let mut events = Vec::new();
    write_steps(&mut tx, caller, &access, &steps, revision, &mut events).await?;
    let domain = input.spec.domain.as_deref();
    let written = match &current {
        None => rows::insert(&mut tx, &access, &input.name, domain, &spec_json, revision).await,
        Some(c) => rows::update(&mut tx, c, domain, &spec_json, revision).await,
    };
    let row = match written {
        Err(e) if violated_constraint(&e) == Some("api_definitions_domain_key") => {
            return Err(domain_taken(domain.unwrap_or_default()));
        }
        other => other?,
    };
    let verb = if current.is_some() {
        "updated"
    } else {
        "created"
    };
    audit_definition(
        &mut tx,
        caller,
        &access,
        verb,
        &row,
        current.as_ref().map(|c| &c.spec),
        Some(&spec_json),
    )
    .await?;
    let generated = desired
        .iter()
        .map(|d| generated_proto(d.kind, &d.name, d.owner == SHARED_OWNER, Vec::new()))
        .collect();
    let definition = definition_proto(&row, generated);
    if request.dry_run {
        tx.rollback().await?;
    } else {
        enqueue(&mut tx, &access, revision, events).await?;
        tx.commit().await?;
        ctx.outbox_ready.notify_one();
    }
    Ok(pb::ApplyApiDefinitionResponse {
        definition: Some(definition),
        changed: true,
        created: current.is_none(),
        dry_run: request.dry_run,
        changes,
    })
}

pub async fn delete(
    ctx: &Context,
    caller: &Caller,
    team: &str,
    name: &str,
    if_revision: i64,
) -> Result<i64, ServiceError> {
    let team = match non_empty(team) {
        Some(team) => team.to_string(),
        None => resolve_team(ctx, caller, name).await?,
    };
    let access = authorize_team(&ctx.pool, caller, &team, SCOPE, Action::Write, || {
        not_found(name)
    })
    .await?;
    let mut tx = ctx.pool.begin().await?;
    let revision = store::next_revision(&mut tx).await?;
    let current = rows::get(&mut tx, &access, name, true)
        .await?
        .ok_or_else(|| ServiceError::NotFound(not_found(name)))?;
    if if_revision != 0 && current.revision != if_revision {
        return Err(ServiceError::RevisionMismatch {
            expected: if_revision,
            current: current.revision,
        });
    }
    let others: Vec<(String, ApiDefinitionSpec)> = rows::of_team(&mut tx, &access)
        .await?
        .into_iter()
        .filter(|d| d.name != name)
        .filter_map(|d| Some((d.name, serde_json::from_value(d.spec).ok()?)))
        .collect();
    let remaining: Vec<(&str, &ApiDefinitionSpec)> =
        others.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let desired = plan::validate(
        access.name(),
        generate::shared_gateway(&remaining, shared_gateway_port()),
    )?;
    let managed = store::managed_resources(
        &mut tx,
        &access,
        &[name.to_string(), SHARED_OWNER.to_string()],
    )
    .await?;
    let steps = plan::steps(&desired, &managed);
    let mut events = Vec::new();
    write_steps(&mut tx, caller, &access, &steps, revision, &mut events).await?;
    rows::delete(&mut tx, current.id).await?;
    let gone = DefinitionRow {
        revision,
        ..current.clone()
    };
    audit_definition(
        &mut tx,
        caller,
        &access,
        "deleted",
        &gone,
        Some(&current.spec),
        None,
    )
    .await?;
    enqueue(&mut tx, &access, revision, events).await?;
    tx.commit().await?;
    ctx.outbox_ready.notify_one();
    Ok(revision)
}

pub async fn get(
    ctx: &Context,
    caller: &Caller,
    team: &str,
    name: &str,
) -> Result<pb::ApiDefinition, ServiceError> {
    let team = match non_empty(team) {
        Some(team) => team.to_string(),
        None => resolve_team(ctx, caller, name).await?,
    };
    let access = authorize_team(&ctx.pool, caller, &team, SCOPE, Action::Read, || {
        not_found(name)
    })
    .await?;
    let mut conn = ctx.pool.acquire().await?;
    let row = rows::get(&mut conn, &access, name, false)
        .await?
        .ok_or_else(|| ServiceError::NotFound(not_found(name)))?;
    drop(conn);
    let generated = generated_of(ctx, &access, &row, true).await?;
    Ok(definition_proto(&row, generated))
}

pub async fn list(
    ctx: &Context,
    caller: &Caller,
    team: &str,
    limit: u32,
    cursor: &str,
) -> Result<pb::ListApiDefinitionsResponse, ServiceError> {
    let team = non_empty(team);
    let limit = if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    };
    let after = non_empty(cursor).map(decode_cursor).transpose()?;
    let filter = caller.list_scope(&ctx.pool, SCOPE, team).await?;
    let mut found = rows::list(&ctx.pool, &filter, team, None, after, i64::from(limit) + 1).await?;
    let next_cursor = if found.len() > limit as usize {
        found.truncate(limit as usize);
        found
            .last()
            .map(|r| encode_cursor(&r.team, &r.name))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListApiDefinitionsResponse {
        items: found
            .iter()
            .map(|row| definition_proto(row, generated_names(row)))
            .collect(),
        next_cursor,
    })
}

fn parse_input(request: &pb::ApplyApiDefinitionRequest) -> Result<Input, ServiceError> {
    let source = pb::ApiDefinitionSource::try_from(request.source)
        .unwrap_or(pb::ApiDefinitionSource::Unspecified);
    let path_name = non_empty(&request.name).map(str::to_string);
    let named = |body_name: Option<String>| -> Result<String, ServiceError> {
        match (path_name.clone(), body_name) {
            (Some(path), Some(body)) if path != body => Err(ServiceError::validation(
                "/name",
                "an API definition cannot be renamed; create a new one",
            )),
            (Some(name), _) | (None, Some(name)) => Ok(name),
            (None, None) => Err(ServiceError::validation("/name", "is required")),
        }
    };
    match source {
        pb::ApiDefinitionSource::Definition => {
            let parsed = parse_spec::<ApiDefinitionSpec>(&without_output_fields(&request.body))?;
            Ok(Input {
                team: parsed.team,
                name: named(parsed.name)?,
                spec: parsed.spec,
            })
        }
        pb::ApiDefinitionSource::Expose => {
            let parsed = parse_spec::<ExposeRequest>(&request.body)?;
            Ok(Input {
                team: parsed.team,
                name: named(parsed.name)?,
                spec: parsed.spec.into_definition()?,
            })
        }
        pb::ApiDefinitionSource::Openapi => {
            let listener_isolation = match non_empty(&request.import_isolation) {
                None => None,
                Some("shared") => Some(ListenerIsolation::Shared),
                Some("dedicated") => Some(ListenerIsolation::Dedicated),
                Some(_) => {
                    return Err(ServiceError::validation(
                        "listenerIsolation",
                        "must be 'shared' or 'dedicated'",
                    ));
                }
            };
            let options = ImportOptions {
                name: non_empty(&request.import_name).map(str::to_string),
                domain: non_empty(&request.import_domain).map(str::to_string),
                listener_isolation,
                port: Some(request.import_port).filter(|p| *p != 0),
            };
            let doc = openapi::parse_document(&request.body)?;
            let (name, spec) = openapi::to_definition(&doc, &options)?;
            Ok(Input {
                team: None,
                name,
                spec,
            })
        }
        pb::ApiDefinitionSource::Unspecified => {
            Err(ServiceError::validation("/source", "is required"))
        }
    }
}

/// A GET → edit → PUT round trip sends `generatedResources` back; it is output only.
fn without_output_fields(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut object)) => {
            object.remove("generatedResources");
            serde_json::Value::Object(object).to_string()
        }
        // Let the parser report what is wrong with it.
        _ => body.to_string(),
    }
}

/// The catch-all host (`*`) of a team's shared gateway can belong to one definition only;
/// explicit domains are unique across Flowplane (a database constraint).
fn check_catch_all(
    input: &Input,
    others: &[(String, ApiDefinitionSpec)],
) -> Result<(), ServiceError> {
    let catch_all = |spec: &ApiDefinitionSpec| {
        spec.domain.is_none() && spec.listener_isolation == ListenerIsolation::Shared
    };
    if !catch_all(&input.spec) {
        return Ok(());
    }
    match others.iter().find(|(_, spec)| catch_all(spec)) {
        Some((holder, _)) => Err(ServiceError::Conflict {
            message: format!(
                "API definition '{holder}' already serves every host ('*') on the team's shared gateway; give this one a domain or a dedicated port"
            ),
            referrers: vec![flowplane_domain::FieldError {
                field: "/domain".into(),
                message: format!("'*' is taken by API definition '{holder}'"),
            }],
        }),
        None => Ok(()),
    }
}

fn domain_taken(domain: &str) -> ServiceError {
    ServiceError::Conflict {
        message: format!("domain '{domain}' already belongs to another API definition"),
        referrers: vec![flowplane_domain::FieldError {
            field: "/domain".into(),
            message: format!("'{domain}' is taken"),
        }],
    }
}

/// Applies the planned writes with the native checks (references, referrers), recording an
/// audit row and an event entry for each.
async fn write_steps(
    conn: &mut PgConnection,
    caller: &Caller,
    access: &TeamAccess,
    steps: &[Step<'_>],
    revision: i64,
    events: &mut Vec<ChangeEvent>,
) -> Result<(), ServiceError> {
    for step in steps {
        match step {
            Step::Insert(d) => {
                check_references(conn, access, &d.spec).await?;
                let inserted = store::insert_managed_resource(
                    conn,
                    access,
                    d.kind,
                    &d.name,
                    &d.json,
                    revision,
                    Some(&d.owner),
                )
                .await;
                let stored = match inserted {
                    Err(e) if violated_constraint(&e) == Some("resources_team_kind_name_key") => {
                        return Err(name_taken(d));
                    }
                    other => other?,
                };
                record(conn, caller, access, "created", &stored, None, events).await?;
            }
            Step::Update(d, current) => {
                check_references(conn, access, &d.spec).await?;
                let stored = store::update_resource(conn, current, &d.json, revision).await?;
                record(
                    conn,
                    caller,
                    access,
                    "updated",
                    &stored,
                    Some(&current.spec),
                    events,
                )
                .await?;
            }
            Step::Delete(current) => {
                let referrers = find_referrers(conn, access, current).await?;
                if !referrers.is_empty() {
                    return Err(ServiceError::Conflict {
                        message: format!(
                            "{} '{}' is still referenced by {} other resource(s); change them first",
                            current.kind.singular(),
                            current.name,
                            referrers.len()
                        ),
                        referrers,
                    });
                }
                store::delete_resource(conn, current).await?;
                let gone = StoredResource {
                    revision,
                    ..(*current).clone()
                };
                record(
                    conn,
                    caller,
                    access,
                    "deleted",
                    &gone,
                    Some(&current.spec),
                    events,
                )
                .await?;
            }
        }
    }
    Ok(())
}

fn name_taken(d: &Desired) -> ServiceError {
    ServiceError::Conflict {
        message: format!(
            "{} '{}' already exists in the team and was not generated by this definition",
            d.kind.singular(),
            d.name
        ),
        referrers: vec![flowplane_domain::FieldError {
            field: format!("/generated/{}/{}", d.kind.collection(), d.name),
            message: "the name is taken by another resource".into(),
        }],
    }
}

/// The audit row of one generated resource change, and its entry in the revision's event.
async fn record(
    conn: &mut PgConnection,
    caller: &Caller,
    access: &TeamAccess,
    verb: &str,
    resource: &StoredResource,
    before: Option<&serde_json::Value>,
    events: &mut Vec<ChangeEvent>,
) -> Result<(), ServiceError> {
    let after = (verb != "deleted").then_some(&resource.spec);
    let event = audit_change(conn, caller, access, verb, resource, before, after).await?;
    events.push(event);
    Ok(())
}

async fn audit_definition(
    conn: &mut PgConnection,
    caller: &Caller,
    access: &TeamAccess,
    verb: &str,
    row: &DefinitionRow,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Result<(), ServiceError> {
    store::audit(
        conn,
        AuditEntry {
            action: &format!("api-definition.{verb}"),
            actor_user_id: caller.user_id,
            actor_token_id: caller.token_id,
            org_id: Some(access.org_id()),
            team: Some(access.name()),
            resource_kind: Some("api-definitions"),
            resource_name: Some(&row.name),
            revision: Some(row.revision),
            before,
            after,
            request_id: Some(&caller.request_id),
            client_address: Some(&caller.client_address),
        },
    )
    .await?;
    Ok(())
}

/// One outbox row for the whole revision (revisions stay gap-free and one-event-each), even
/// when no generated resource changed.
async fn enqueue(
    conn: &mut PgConnection,
    access: &TeamAccess,
    revision: i64,
    changes: Vec<ChangeEvent>,
) -> Result<(), ServiceError> {
    let event = ChangeEvent {
        revision,
        op: ChangeOp::Unspecified as i32,
        team: access.name().to_string(),
        changes,
        ..Default::default()
    };
    store::enqueue_event(conn, revision, &event.encode_to_vec()).await?;
    Ok(())
}

/// The definition's generated resources as stored, with each one's dataplane status when
/// `with_status`.
async fn generated_of(
    ctx: &Context,
    access: &TeamAccess,
    row: &DefinitionRow,
    with_status: bool,
) -> Result<Vec<pb::GeneratedResource>, ServiceError> {
    let mut owners = vec![row.name.clone()];
    let shared = serde_json::from_value::<ApiDefinitionSpec>(row.spec.clone())
        .is_ok_and(|s| s.listener_isolation == ListenerIsolation::Shared);
    if shared {
        owners.push(SHARED_OWNER.to_string());
    }
    let mut conn = ctx.pool.acquire().await?;
    let resources = store::managed_resources(&mut conn, access, &owners).await?;
    drop(conn);
    let mut out = Vec::new();
    for resource in &resources {
        let status = if with_status {
            store::resource_status(&ctx.pool, resource).await?
        } else {
            Vec::new()
        };
        let status = to_proto(resource, status).status;
        out.push(generated_proto(
            resource.kind,
            &resource.name,
            resource.managed_by.as_deref() == Some(SHARED_OWNER),
            status,
        ));
    }
    Ok(out)
}

/// What a stored definition generates, by name only (lists do not read the resources).
fn generated_names(row: &DefinitionRow) -> Vec<pb::GeneratedResource> {
    let Ok(spec) = serde_json::from_value::<ApiDefinitionSpec>(row.spec.clone()) else {
        return Vec::new();
    };
    let mut out: Vec<pb::GeneratedResource> = generate::owned_resources(&row.name, &spec)
        .into_iter()
        .map(|g| generated_proto(g.kind, &g.name, false, Vec::new()))
        .collect();
    if spec.listener_isolation == ListenerIsolation::Shared {
        out.push(generated_proto(
            ResourceKind::RouteConfig,
            generate::SHARED_ROUTE_CONFIG,
            true,
            Vec::new(),
        ));
        out.push(generated_proto(
            ResourceKind::Listener,
            generate::SHARED_LISTENER,
            true,
            Vec::new(),
        ));
    }
    out
}

fn generated_proto(
    kind: ResourceKind,
    name: &str,
    shared: bool,
    status: Vec<pb::DataplaneStatus>,
) -> pb::GeneratedResource {
    pb::GeneratedResource {
        kind: kind_to_proto(kind) as i32,
        name: name.to_string(),
        shared,
        status,
    }
}

fn definition_proto(
    row: &DefinitionRow,
    generated: Vec<pb::GeneratedResource>,
) -> pb::ApiDefinition {
    pb::ApiDefinition {
        id: row.id.to_string(),
        team: row.team.clone(),
        name: row.name.clone(),
        revision: row.revision,
        spec_json: row.spec.to_string(),
        created_at: row.created_at.to_rfc3339(),
        updated_at: row.updated_at.to_rfc3339(),
        generated,
    }
}

/// The one team the caller can read that holds definition `name` (canonical paths without
/// `?team=`).
async fn resolve_team(ctx: &Context, caller: &Caller, name: &str) -> Result<String, ServiceError> {
    // Only finds the team; authorize_team decides (and audits) the access itself.
    let filter = caller.grants.readable_teams(SCOPE);
    let found = rows::list(&ctx.pool, &filter, None, Some(name), None, 2).await?;
    match found.as_slice() {
        [] => Err(ServiceError::NotFound(not_found(name))),
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

fn not_found(name: &str) -> String {
    format!("API definition '{name}' not found")
}
