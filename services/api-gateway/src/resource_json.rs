//! How a stored resource looks on the wire: one JSON object, the envelope (`id`, `team`,
//! `name`, `revision`, timestamps) with the spec's fields merged in and the dataplanes'
//! `status` last. The spec's shape is the domain type's; this module adds only the envelope.

use flowplane_proto::resources::v1::{DataplaneStatus, Quarantine, Resource};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::problem::Problem;

// Documentation only: `render` builds the object, so that the spec's fields sit at the top
// level beside these.
/// The fields every resource carries besides its spec.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ResourceEnvelope {
    /// Stable identifier (dataplanes are referenced by it).
    pub id: String,
    pub team: String,
    pub name: String,
    /// Position in the global change sequence at which this version was written; the `ETag`.
    pub revision: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// What each dataplane's Envoy said about this resource the last time it was pushed.
    pub status: Vec<DataplaneStatusView>,
    /// Present (on reads) while this version is held back because an Envoy rejected it.
    pub quarantine: Option<QuarantineView>,
}

/// A version an Envoy rejected, held back from every Envoy of the team: they are served the
/// last version an Envoy accepted (or nothing, if none ever was) until a write changes it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Quarantine)]
pub struct QuarantineView {
    /// The revision whose version was rejected (this one).
    pub rejected_revision: i64,
    /// The revision of the version Envoys are served instead; absent when none was ever
    /// accepted, so the resource is withheld.
    pub serving_revision: Option<i64>,
    /// The dataplane and Envoy node whose rejection started it.
    pub dataplane: String,
    pub node_id: String,
    /// Envoy's message.
    pub error: String,
    /// RFC 3339.
    pub since: String,
}

impl From<&Quarantine> for QuarantineView {
    fn from(q: &Quarantine) -> Self {
        Self {
            rejected_revision: q.rejected_revision,
            serving_revision: (q.serving_revision > 0).then_some(q.serving_revision),
            dataplane: q.dataplane.clone(),
            node_id: q.node_id.clone(),
            error: q.error.clone(),
            since: q.since.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DataplaneStatus)]
pub struct DataplaneStatusView {
    pub dataplane: String,
    /// `programmed` (Envoy accepted it), `rejected` (Envoy refused it; see `error`) or
    /// `quarantined` (running the last accepted version while this one is held back).
    pub state: String,
    pub version: String,
    /// Envoy's reason for a rejection.
    pub error: Option<String>,
    pub updated_at: String,
}

impl From<&DataplaneStatus> for DataplaneStatusView {
    fn from(s: &DataplaneStatus) -> Self {
        Self {
            dataplane: s.dataplane.clone(),
            state: s.state.clone(),
            version: s.version.clone(),
            error: (!s.error.is_empty()).then(|| s.error.clone()),
            updated_at: s.updated_at.clone(),
        }
    }
}

const ENVELOPE_KEYS: [&str; 8] = [
    "id",
    "team",
    "name",
    "revision",
    "createdAt",
    "updatedAt",
    "status",
    "quarantine",
];

/// The resource as one JSON object. The envelope wins over a spec field of the same name: the
/// envelope is what config stored, and a spec never legitimately carries those keys.
pub fn render(resource: &Resource) -> Result<Value, Problem> {
    let spec = if resource.spec_json.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(&resource.spec_json) {
            Ok(Value::Object(spec)) => spec,
            Ok(_) => {
                return Err(Problem::internal(format!(
                    "config returned a non-object spec for {}/{}",
                    resource.team, resource.name
                )));
            }
            Err(e) => {
                return Err(Problem::internal(format!(
                    "config returned unparsable spec JSON for {}/{}: {e}",
                    resource.team, resource.name
                )));
            }
        }
    };
    let status: Vec<DataplaneStatusView> = resource.status.iter().map(Into::into).collect();
    let mut object = Map::new();
    object.insert("id".into(), Value::from(resource.id.clone()));
    object.insert("team".into(), Value::from(resource.team.clone()));
    object.insert("name".into(), Value::from(resource.name.clone()));
    object.insert("revision".into(), Value::from(resource.revision));
    object.insert("createdAt".into(), Value::from(resource.created_at.clone()));
    object.insert("updatedAt".into(), Value::from(resource.updated_at.clone()));
    for (key, value) in spec {
        if !ENVELOPE_KEYS.contains(&key.as_str()) {
            object.insert(key, value);
        }
    }
    object.insert(
        "status".into(),
        serde_json::to_value(status).map_err(Problem::internal)?,
    );
    if let Some(quarantine) = &resource.quarantine {
        object.insert(
            "quarantine".into(),
            serde_json::to_value(QuarantineView::from(quarantine)).map_err(Problem::internal)?,
        );
    }
    Ok(Value::Object(object))
}

/// The strong entity tag of a revision: `"<revision>"`.
pub fn etag(revision: i64) -> String {
    format!("\"{revision}\"")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> Resource {
        Resource {
            kind: 1,
            id: "c-1".into(),
            team: "my-org-default".into(),
            name: "httpbin-cluster".into(),
            revision: 42,
            spec_json: r#"{"serviceName":"httpbin-service","endpoints":[{"host":"httpbin.org","port":443}],"connectTimeoutSeconds":5,"useTls":true,"lbPolicy":"ROUND_ROBIN"}"#.into(),
            created_at: "2025-01-01T00:00:00Z".into(),
            updated_at: "2025-01-02T00:00:00Z".into(),
            status: vec![
                DataplaneStatus {
                    dataplane: "edge".into(),
                    state: "programmed".into(),
                    version: "v1".into(),
                    error: String::new(),
                    updated_at: "2025-01-02T00:00:01Z".into(),
                },
                DataplaneStatus {
                    dataplane: "edge-2".into(),
                    state: "rejected".into(),
                    version: "v2".into(),
                    error: "bad port".into(),
                    updated_at: "2025-01-02T00:00:02Z".into(),
                },
            ],
            deployment_token: String::new(),
            quarantine: None,
        }
    }

    #[test]
    fn the_envelope_and_the_spec_form_one_object() {
        let rendered = render(&cluster()).unwrap();
        assert_eq!(
            rendered,
            json!({
                "id": "c-1",
                "team": "my-org-default",
                "name": "httpbin-cluster",
                "revision": 42,
                "createdAt": "2025-01-01T00:00:00Z",
                "updatedAt": "2025-01-02T00:00:00Z",
                "serviceName": "httpbin-service",
                "endpoints": [{"host": "httpbin.org", "port": 443}],
                "connectTimeoutSeconds": 5,
                "useTls": true,
                "lbPolicy": "ROUND_ROBIN",
                "status": [
                    {"dataplane": "edge", "state": "programmed", "version": "v1", "error": null,
                     "updatedAt": "2025-01-02T00:00:01Z"},
                    {"dataplane": "edge-2", "state": "rejected", "version": "v2", "error": "bad port",
                     "updatedAt": "2025-01-02T00:00:02Z"}
                ]
            })
        );
    }

    #[test]
    fn the_envelope_wins_over_spec_fields_of_the_same_name() {
        let mut resource = cluster();
        resource.spec_json = r#"{"name":"spoofed","revision":1,"status":"x","port":1}"#.into();
        let rendered = render(&resource).unwrap();
        assert_eq!(rendered["name"], "httpbin-cluster");
        assert_eq!(rendered["revision"], 42);
        assert!(rendered["status"].is_array());
        assert_eq!(rendered["port"], 1);
    }

    #[test]
    fn an_empty_spec_renders_the_envelope_alone() {
        let mut resource = cluster();
        resource.spec_json = String::new();
        resource.status.clear();
        let rendered = render(&resource).unwrap();
        assert_eq!(rendered.as_object().unwrap().len(), 7);
        assert_eq!(rendered["status"], json!([]));
    }

    #[test]
    fn a_broken_spec_is_an_internal_error() {
        for spec in ["[1,2]", "{not json"] {
            let mut resource = cluster();
            resource.spec_json = spec.into();
            let problem = render(&resource).unwrap_err();
            assert_eq!(problem.status().as_u16(), 500);
            assert!(
                !problem.detail().contains("httpbin"),
                "the cause stays in the log"
            );
        }
    }

    #[test]
    fn etags_are_quoted_revisions() {
        assert_eq!(etag(7), "\"7\"");
    }
}
