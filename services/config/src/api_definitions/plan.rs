//! From "what the definitions generate now" and "what is stored" to the ordered writes that
//! turn one into the other, and the change report callers see. No IO.

use std::collections::BTreeMap;

use flowplane_domain::api_definition::ApiDefinitionSpec;
use flowplane_domain::api_definition::generate::Generated;
use flowplane_domain::{AnySpec, ResourceKind, ValidationErrors};
use flowplane_proto::resources::v1::PlannedChange;

use crate::resources::dry_translate;
use crate::store::StoredResource;

/// A generated resource after native validation and a dry translation.
#[derive(Debug, Clone)]
pub struct Desired {
    pub kind: ResourceKind,
    pub name: String,
    pub spec: AnySpec,
    /// Canonical JSON, as stored.
    pub json: serde_json::Value,
    pub owner: String,
}

/// Validates every generated body exactly as a native create would. A failure here means the
/// definition asked for something the native model refuses; its errors name the generated
/// resource (`/generated/<kind>/<name>/...`).
pub fn validate(team: &str, generated: Vec<Generated>) -> Result<Vec<Desired>, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let mut out = Vec::new();
    for g in generated {
        let prefix = format!("/generated/{}/{}", g.kind.collection(), g.name);
        let checked = AnySpec::parse(g.kind, &g.body.to_string())
            .and_then(|parsed| dry_translate(team, &g.name, &parsed.spec).map(|()| parsed.spec));
        match checked {
            Ok(spec) => out.push(Desired {
                kind: g.kind,
                json: spec.to_json(),
                name: g.name,
                spec,
                owner: g.owner,
            }),
            Err(e) => {
                for error in e.into_errors() {
                    errors.add(format!("{prefix}{}", error.field), error.message);
                }
            }
        }
    }
    errors.into_result()?;
    Ok(out)
}

#[derive(Debug)]
pub enum Step<'a> {
    Insert(&'a Desired),
    Update(&'a Desired, &'a StoredResource),
    Delete(&'a StoredResource),
}

/// Writes in an order every intermediate state survives the reference checks: clusters, then
/// route configs, then listeners are written; then listeners, route configs and clusters that
/// are no longer wanted go, referrers first.
pub fn steps<'a>(desired: &'a [Desired], current: &'a [StoredResource]) -> Vec<Step<'a>> {
    let stored: BTreeMap<(ResourceKind, &str), &StoredResource> = current
        .iter()
        .map(|r| ((r.kind, r.name.as_str()), r))
        .collect();
    let wanted: BTreeMap<(ResourceKind, &str), &Desired> = desired
        .iter()
        .map(|d| ((d.kind, d.name.as_str()), d))
        .collect();
    let mut out = Vec::new();
    for kind in [
        ResourceKind::Cluster,
        ResourceKind::RouteConfig,
        ResourceKind::Listener,
    ] {
        for ((_, name), d) in wanted.iter().filter(|((k, _), _)| *k == kind) {
            match stored.get(&(kind, name)) {
                None => out.push(Step::Insert(d)),
                Some(r) if r.spec != d.json || r.managed_by.as_deref() != Some(&d.owner) => {
                    out.push(Step::Update(d, r))
                }
                Some(_) => {}
            }
        }
    }
    for kind in [
        ResourceKind::Listener,
        ResourceKind::RouteConfig,
        ResourceKind::Cluster,
    ] {
        for ((_, name), r) in stored.iter().filter(|((k, _), _)| *k == kind) {
            if !wanted.contains_key(&(kind, name)) {
                out.push(Step::Delete(r));
            }
        }
    }
    out
}

/// The report of `steps`, plus the definition's own routes that were added, changed or
/// removed (by route name).
pub fn report(
    steps: &[Step<'_>],
    before: Option<&ApiDefinitionSpec>,
    after: Option<&ApiDefinitionSpec>,
) -> Vec<PlannedChange> {
    let change = |op: &str, kind: &str, name: &str| PlannedChange {
        op: op.into(),
        kind: kind.into(),
        name: name.into(),
    };
    let mut out: Vec<PlannedChange> = steps
        .iter()
        .map(|step| match step {
            Step::Insert(d) => change("added", d.kind.collection(), &d.name),
            Step::Update(d, _) => change("changed", d.kind.collection(), &d.name),
            Step::Delete(r) => change("removed", r.kind.collection(), &r.name),
        })
        .collect();
    let routes = |spec: Option<&ApiDefinitionSpec>| -> BTreeMap<String, serde_json::Value> {
        spec.map(|s| {
            s.routes
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    (
                        r.display_name(i),
                        serde_json::to_value(r).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let (old, new) = (routes(before), routes(after));
    for (name, route) in &new {
        match old.get(name) {
            None => out.push(change("added", "routes", name)),
            Some(previous) if previous != route => out.push(change("changed", "routes", name)),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|name| !new.contains_key(*name)) {
        out.push(change("removed", "routes", name));
    }
    out
}
