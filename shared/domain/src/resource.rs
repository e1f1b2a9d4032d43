//! The envelope every team-owned resource shares, and parsing a request body into a spec with
//! field-path errors.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::ClusterSpec;
use crate::dataplane::DataplaneSpec;
use crate::error::{Path, ValidationErrors};
use crate::learning_session::LearningSessionSpec;
use crate::listener::{ListenerSpec, NetworkFilter};
use crate::names::check_name;
use crate::route_config::{RouteAction, RouteConfigSpec};
use crate::scopes::ScopeResource;
use crate::secret::SecretSpec;

/// The kinds of team-owned resource the native API manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Cluster,
    RouteConfig,
    Listener,
    Dataplane,
    Secret,
    LearningSession,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 6] = [
        ResourceKind::Cluster,
        ResourceKind::RouteConfig,
        ResourceKind::Listener,
        ResourceKind::Dataplane,
        ResourceKind::Secret,
        ResourceKind::LearningSession,
    ];

    /// The collection name used in URLs, audit events and storage.
    pub fn collection(self) -> &'static str {
        match self {
            Self::Cluster => "clusters",
            Self::RouteConfig => "route-configs",
            Self::Listener => "listeners",
            Self::Dataplane => "dataplanes",
            Self::Secret => "secrets",
            Self::LearningSession => "learning-sessions",
        }
    }

    /// Singular, for messages ("cluster 'x' not found").
    pub fn singular(self) -> &'static str {
        match self {
            Self::Cluster => "cluster",
            Self::RouteConfig => "route config",
            Self::Listener => "listener",
            Self::Dataplane => "dataplane",
            Self::Secret => "secret",
            Self::LearningSession => "learning session",
        }
    }

    pub fn from_collection(collection: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.collection() == collection)
    }

    /// The scope resource that governs this kind (route-configs are governed by `routes`).
    pub fn scope_resource(self) -> ScopeResource {
        match self {
            Self::Cluster => ScopeResource::Clusters,
            Self::RouteConfig => ScopeResource::Routes,
            Self::Listener => ScopeResource::Listeners,
            Self::Dataplane => ScopeResource::Dataplanes,
            Self::Secret => ScopeResource::Secrets,
            Self::LearningSession => ScopeResource::LearningSessions,
        }
    }
}

/// A resource spec: the body of a resource without its envelope.
pub trait Spec: Serialize + DeserializeOwned {
    /// Checks domain rules, recording every problem with its path from the body root.
    fn validate(&self, errors: &mut ValidationErrors);
}

/// A parsed create/update body.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    pub team: Option<String>,
    pub name: Option<String>,
    pub spec: T,
}

/// Fields a client may echo back from a GET; they are output-only and ignored on input, so a
/// GET → edit → PUT round trip works.
const OUTPUT_ONLY: [&str; 5] = ["id", "revision", "createdAt", "updatedAt", "status"];

/// Parses and validates a body. Unknown fields are errors (a typo must not be silently
/// dropped); every error carries the JSON-pointer path of the offending field.
pub fn parse_spec<T: Spec>(body: &str) -> Result<Parsed<T>, ValidationErrors> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ValidationErrors::single("", format!("body is not valid JSON: {e}")))?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(ValidationErrors::single("", "body must be a JSON object"));
    };
    let mut errors = ValidationErrors::new();
    let mut take_string = |key: &str, errors: &mut ValidationErrors| match object.remove(key) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => {
            errors.add(format!("/{key}"), "must be a string");
            None
        }
    };
    let team = take_string("team", &mut errors);
    let name = take_string("name", &mut errors);
    for key in OUTPUT_ONLY {
        object.remove(key);
    }
    if let Some(name) = &name {
        check_name(name, &Path::root().field("name"), &mut errors);
    }
    let spec: T = match serde_path_to_error::deserialize(serde_json::Value::Object(object)) {
        Ok(spec) => spec,
        Err(e) => {
            errors.add(pointer(e.path()), e.inner().to_string());
            return Err(errors);
        }
    };
    spec.validate(&mut errors);
    errors.into_result()?;
    Ok(Parsed { team, name, spec })
}

/// Parses a request body that is not a resource (no team or name envelope): JSON errors come
/// back at the field path they name.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ValidationErrors> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ValidationErrors::single("", format!("body is not valid JSON: {e}")))?;
    serde_path_to_error::deserialize(value)
        .map_err(|e| ValidationErrors::single(pointer(e.path()), e.inner().to_string()))
}

fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{key}")),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// A spec of any kind, for code that handles every kind alike (storage, events, translation).
#[derive(Debug, Clone, PartialEq)]
pub enum AnySpec {
    Cluster(ClusterSpec),
    RouteConfig(RouteConfigSpec),
    Listener(ListenerSpec),
    Dataplane(DataplaneSpec),
    Secret(SecretSpec),
    LearningSession(LearningSessionSpec),
}

/// What one resource points at, and where in its body it says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub kind: ResourceKind,
    pub target: RefTarget,
    /// JSON pointer of the referring field.
    pub field: String,
    /// What the referring field needs of the target beyond existing.
    pub needs: Option<Needs>,
}

/// A requirement a reference places on what it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A secret of this `type`.
    SecretType(&'static str),
    /// A cluster that speaks HTTP/2 (`protocolType` `HTTP2` or `AUTO`): the field calls it
    /// over gRPC.
    Http2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    Name(String),
    /// Dataplanes are referenced by id, as the API hands ids out on create.
    Id(String),
}

impl AnySpec {
    /// Parses and validates a request body of the given kind.
    pub fn parse(kind: ResourceKind, body: &str) -> Result<Parsed<AnySpec>, ValidationErrors> {
        fn wrap<T: Spec>(
            body: &str,
            f: fn(T) -> AnySpec,
        ) -> Result<Parsed<AnySpec>, ValidationErrors> {
            let parsed = parse_spec::<T>(body)?;
            Ok(Parsed {
                team: parsed.team,
                name: parsed.name,
                spec: f(parsed.spec),
            })
        }
        match kind {
            ResourceKind::Cluster => wrap(body, AnySpec::Cluster),
            ResourceKind::RouteConfig => wrap(body, AnySpec::RouteConfig),
            ResourceKind::Listener => wrap(body, AnySpec::Listener),
            ResourceKind::Dataplane => wrap(body, AnySpec::Dataplane),
            ResourceKind::Secret => wrap(body, AnySpec::Secret),
            ResourceKind::LearningSession => wrap(body, AnySpec::LearningSession),
        }
    }

    /// Reads a stored spec back (stored specs were validated on the way in).
    pub fn from_stored(kind: ResourceKind, json: &str) -> Result<AnySpec, serde_json::Error> {
        Ok(match kind {
            ResourceKind::Cluster => AnySpec::Cluster(serde_json::from_str(json)?),
            ResourceKind::RouteConfig => AnySpec::RouteConfig(serde_json::from_str(json)?),
            ResourceKind::Listener => AnySpec::Listener(serde_json::from_str(json)?),
            ResourceKind::Dataplane => AnySpec::Dataplane(serde_json::from_str(json)?),
            ResourceKind::Secret => AnySpec::Secret(serde_json::from_str(json)?),
            ResourceKind::LearningSession => AnySpec::LearningSession(serde_json::from_str(json)?),
        })
    }

    pub fn kind(&self) -> ResourceKind {
        match self {
            AnySpec::Cluster(_) => ResourceKind::Cluster,
            AnySpec::RouteConfig(_) => ResourceKind::RouteConfig,
            AnySpec::Listener(_) => ResourceKind::Listener,
            AnySpec::Dataplane(_) => ResourceKind::Dataplane,
            AnySpec::Secret(_) => ResourceKind::Secret,
            AnySpec::LearningSession(_) => ResourceKind::LearningSession,
        }
    }

    /// The canonical JSON (defaults filled in) that storage and events carry.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            AnySpec::Cluster(s) => serde_json::to_value(s),
            AnySpec::RouteConfig(s) => serde_json::to_value(s),
            AnySpec::Listener(s) => serde_json::to_value(s),
            AnySpec::Dataplane(s) => serde_json::to_value(s),
            AnySpec::Secret(s) => serde_json::to_value(s),
            AnySpec::LearningSession(s) => serde_json::to_value(s),
        };
        // Plain data structs with string keys always serialize.
        value.unwrap_or(serde_json::Value::Null)
    }

    /// What may be stored in the clear, audited and shown: the canonical JSON, except that a
    /// secret is reduced to its summary (its material is sealed separately).
    pub fn public_json(&self) -> serde_json::Value {
        match self {
            AnySpec::Secret(s) => serde_json::to_value(s.summary()).unwrap_or_default(),
            other => other.to_json(),
        }
    }

    /// Every other resource this one needs, with the field that names it.
    pub fn references(&self) -> Vec<Reference> {
        let mut refs = Vec::new();
        let mut push = |kind, target, field: Path| {
            refs.push(Reference {
                kind,
                target,
                field: field.as_str().to_string(),
                needs: None,
            })
        };
        let mut grpc_clusters = Vec::new();
        let mut secrets = Vec::new();
        match self {
            AnySpec::RouteConfig(rc) => {
                let hosts = Path::root().field("virtualHosts");
                for (i, vh) in rc.virtual_hosts.iter().enumerate() {
                    for (j, route) in vh.routes.iter().enumerate() {
                        let action = hosts.index(i).field("routes").index(j).field("action");
                        match &route.action {
                            RouteAction::Forward(f) => {
                                push(
                                    ResourceKind::Cluster,
                                    RefTarget::Name(f.cluster.clone()),
                                    action.field("cluster"),
                                );
                                if let Some(mirror) = &f.request_mirror {
                                    push(
                                        ResourceKind::Cluster,
                                        RefTarget::Name(mirror.cluster.clone()),
                                        action.field("requestMirror").field("cluster"),
                                    );
                                }
                            }
                            RouteAction::Weighted(w) => {
                                for (k, c) in w.clusters.iter().enumerate() {
                                    push(
                                        ResourceKind::Cluster,
                                        RefTarget::Name(c.name.clone()),
                                        action.field("clusters").index(k).field("name"),
                                    );
                                }
                            }
                            RouteAction::Redirect(_) | RouteAction::DirectResponse(_) => {}
                        }
                    }
                }
            }
            AnySpec::Listener(l) => {
                if let Some(id) = &l.dataplane_id {
                    push(
                        ResourceKind::Dataplane,
                        RefTarget::Id(id.clone()),
                        Path::root().field("dataplaneId"),
                    );
                }
                let chains = Path::root().field("filterChains");
                for (i, chain) in l.filter_chains.iter().enumerate() {
                    for (j, filter) in chain.filters.iter().enumerate() {
                        if let NetworkFilter::HttpConnectionManager(h) = filter {
                            push(
                                ResourceKind::RouteConfig,
                                RefTarget::Name(h.route_config_name.clone()),
                                chains
                                    .index(i)
                                    .field("filters")
                                    .index(j)
                                    .field("routeConfigName"),
                            );
                        }
                    }
                }
                let grpc_fields: Vec<Path> = l.grpc_cluster_fields();
                for (cluster, field) in l.cluster_references() {
                    if grpc_fields.iter().any(|g| g.as_str() == field.as_str()) {
                        grpc_clusters.push((cluster, field));
                    } else {
                        push(
                            ResourceKind::Cluster,
                            RefTarget::Name(cluster.to_string()),
                            field,
                        );
                    }
                }
                secrets = l.secret_references();
            }
            AnySpec::Cluster(c) => {
                secrets = c.secret_references();
            }
            AnySpec::LearningSession(session) => push(
                ResourceKind::Listener,
                RefTarget::Name(session.listener.clone()),
                Path::root().field("listener"),
            ),
            AnySpec::Dataplane(_) | AnySpec::Secret(_) => {}
        }
        refs.extend(grpc_clusters.into_iter().map(|(name, field)| Reference {
            kind: ResourceKind::Cluster,
            target: RefTarget::Name(name.to_string()),
            field: field.as_str().to_string(),
            needs: Some(Needs::Http2),
        }));
        refs.extend(secrets.into_iter().map(|(name, field, used_as)| Reference {
            kind: ResourceKind::Secret,
            target: RefTarget::Name(name.to_string()),
            field: field.as_str().to_string(),
            needs: Some(Needs::SecretType(used_as.required_type())),
        }));
        refs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn references(kind: ResourceKind, body: &str) -> Vec<(String, String)> {
        let parsed = AnySpec::parse(kind, body).unwrap_or_else(|e| panic!("{e}"));
        parsed
            .spec
            .references()
            .into_iter()
            .map(|r| match r.target {
                RefTarget::Name(name) | RefTarget::Id(name) => (name, r.field),
            })
            .collect()
    }

    #[test]
    fn a_request_mirror_references_its_cluster() {
        let refs = references(
            ResourceKind::RouteConfig,
            r#"{"virtualHosts":[{"name":"v","domains":["*"],"routes":[{"match":{"path":{"type":"prefix","value":"/"}},
                "action":{"type":"forward","cluster":"main","requestMirror":{"cluster":"shadow","percent":10}}}]}]}"#,
        );
        assert_eq!(
            refs,
            [
                (
                    "main".into(),
                    "/virtualHosts/0/routes/0/action/cluster".into()
                ),
                (
                    "shadow".into(),
                    "/virtualHosts/0/routes/0/action/requestMirror/cluster".into()
                )
            ]
        );
    }

    #[test]
    fn a_remote_jwks_references_its_cluster() {
        let refs = references(
            ResourceKind::Listener,
            r#"{"port":10000,"filterChains":[{"filters":[{"type":"httpConnectionManager","routeConfigName":"r",
                "httpFilters":[{"filter":{"type":"jwtAuth","providers":[{"name":"idp",
                "jwks":{"type":"remote","cluster":"idp-cluster","uri":"https://idp/jwks"}}],
                "rules":[{"pathPrefix":"/","providers":["idp"]}]}}]}]}]}"#,
        );
        assert_eq!(
            refs,
            [
                (
                    "r".into(),
                    "/filterChains/0/filters/0/routeConfigName".into()
                ),
                (
                    "idp-cluster".into(),
                    "/filterChains/0/filters/0/httpFilters/0/filter/providers/0/jwks/cluster"
                        .into()
                )
            ]
        );
    }
}
