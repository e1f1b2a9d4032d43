//! Secret change events carry only a secret's summary: its material is never written to the
//! outbox or the bus. Before such an event is applied, the material is fetched from config
//! (`GetSecrets`, on the authenticated internal service) and put in place of the summary.

use std::collections::BTreeMap;

use flowplane_proto::resources::v1::ResourceKind;
use flowplane_proto::state::v1::{ChangeEvent, ChangeOp, GetSecretsRequest};

use crate::sync::StateClient;

/// Completes every secret upsert in `event` with its material. A secret that no longer exists
/// (deleted after this event, before the fetch) is dropped from the event: its delete event
/// follows, and until then the last good version keeps being served.
pub async fn fill(client: &mut StateClient, event: &mut ChangeEvent) -> anyhow::Result<()> {
    let batched = event.op == ChangeOp::Unspecified as i32;
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for change in changes(event, batched) {
        if is_secret_upsert(change) {
            wanted
                .entry(change.team.clone())
                .or_default()
                .push(change.name.clone());
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let mut material: BTreeMap<(String, String), String> = BTreeMap::new();
    for (team, names) in wanted {
        let answer = client
            .get_secrets(GetSecretsRequest {
                team: team.clone(),
                names,
            })
            .await?
            .into_inner();
        for secret in answer.secrets {
            material.insert((team.clone(), secret.name), secret.spec_json);
        }
    }
    let complete = |change: &mut ChangeEvent| -> bool {
        if !is_secret_upsert(change) {
            return true;
        }
        let key = (change.team.clone(), change.name.clone());
        match (material.get(&key), change.resource.as_mut()) {
            (Some(spec), Some(resource)) => {
                resource.spec_json.clone_from(spec);
                true
            }
            _ => false,
        }
    };
    if batched {
        event.changes.retain_mut(complete);
    } else if !complete(event) {
        // Nothing left to apply at this revision; an empty batch only moves the revision.
        *event = ChangeEvent {
            revision: event.revision,
            team: event.team.clone(),
            ..Default::default()
        };
    }
    Ok(())
}

fn changes(event: &ChangeEvent, batched: bool) -> &[ChangeEvent] {
    if batched {
        &event.changes
    } else {
        std::slice::from_ref(event)
    }
}

fn is_secret_upsert(change: &ChangeEvent) -> bool {
    change.kind == ResourceKind::Secret as i32 && change.op == ChangeOp::Upsert as i32
}
