//! The snapshot store: every team's resources, translated and encoded once when they change,
//! shared by every stream that serves them. It answers "what should this node have?" and
//! tells waiting streams when their team changed; it knows nothing about the ADS protocol.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use flowplane_domain::{AnySpec, ResourceKind};
use flowplane_proto::resources::v1 as resources_pb;
use flowplane_proto::state::v1::{self as state_pb, ChangeOp};
use flowplane_xds::learning::slot_listener;
use flowplane_xds::resource::{
    CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, EncodedResource, LISTENER_TYPE, ROUTE_TYPE,
    SECRET_TYPE, always_named, version_of,
};
use tokio::sync::watch;

/// The resources of one xDS type that one node should have, with their combined version.
#[derive(Debug, Clone)]
pub struct ResourceSet {
    pub version: String,
    pub resources: Vec<Arc<EncodedResource>>,
}

/// A full state from config, translated and placed off to the side as its parts arrive, then
/// installed at once by [`Store::install`]: streams keep the old state until the new one is
/// whole.
pub struct FullState {
    revision: i64,
    teams: HashMap<String, Team>,
    resources: usize,
}

impl FullState {
    pub fn new(revision: i64) -> Self {
        Self {
            revision,
            teams: HashMap::new(),
            resources: 0,
        }
    }

    /// The revision the state reflects.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// How many stored resources were added (including any that failed to translate).
    pub fn len(&self) -> usize {
        self.resources
    }

    pub fn is_empty(&self) -> bool {
        self.resources == 0
    }

    /// Translates `resources` on every core and places them. Resources that fail to
    /// translate are left out and logged; config validated them, so this means a version
    /// skew.
    pub fn add(&mut self, resources: &[resources_pb::Resource]) {
        let translated = translate_all(resources);
        for (resource, translated) in resources.iter().zip(translated) {
            let team = match self.teams.get_mut(&resource.team) {
                Some(team) => team,
                None => self.teams.entry(resource.team.clone()).or_default(),
            };
            if let Err(e) = translated.and_then(|t| place(team, t)) {
                tracing::error!(team = %resource.team, name = %resource.name, error = %e, "cannot translate stored resource");
            }
        }
        self.resources += resources.len();
    }
}

/// Which resources of a type a stream asks for.
#[derive(Debug, Clone, Copy)]
pub enum Interest<'a> {
    /// Every resource of the type the node may see (a wildcard subscription).
    All,
    /// Only these names (those that exist and the node may see).
    Named(&'a [String]),
}

/// A dataplane known to the store: Envoys identify as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataplane {
    pub id: String,
    pub name: String,
}

#[derive(Default)]
struct Team {
    clusters: BTreeMap<String, Arc<EncodedResource>>,
    /// EDS: the endpoints of clusters whose endpoints are IP addresses, named like the cluster.
    endpoints: BTreeMap<String, Arc<EncodedResource>>,
    routes: BTreeMap<String, Arc<EncodedResource>>,
    /// SDS secrets, material included; only this team's Envoys are ever served them.
    secrets: BTreeMap<String, Arc<EncodedResource>>,
    listeners: BTreeMap<String, Listener>,
    /// name → id
    dataplanes: BTreeMap<String, String>,
    /// Each listener's learning slot, idle (ECDS), by listener name.
    idle_slots: BTreeMap<String, Arc<EncodedResource>>,
    /// Active learning sessions by session name: each fills its listener's slot, in place of
    /// the idle configuration. Few per team, so found by scanning.
    learning: BTreeMap<String, Arc<EncodedResource>>,
}

struct Listener {
    /// The dataplane (id or name) it is bound to; `None` serves every dataplane of the team.
    dataplane: Option<String>,
    encoded: Arc<EncodedResource>,
}

#[derive(Default)]
struct State {
    revision: i64,
    teams: HashMap<String, Team>,
}

pub struct Store {
    state: RwLock<State>,
    /// Bumped, under the state's write lock, by every change of any team: a view computed
    /// at one generation is current for as long as the generation stays the same.
    generation: AtomicU64,
    /// One channel per team, so a change wakes only the streams that serve that team.
    watchers: Mutex<HashMap<String, watch::Sender<u64>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("event for revision {got} does not follow revision {have}")]
    Gap { have: i64, got: i64 },
    #[error("event is malformed: {0}")]
    Malformed(String),
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Self {
            state: RwLock::new(State::default()),
            generation: AtomicU64::new(1),
            watchers: Mutex::new(HashMap::new()),
        }
    }

    pub fn revision(&self) -> i64 {
        self.read().revision
    }

    /// Replaces everything with a full state from config, given at once.
    pub fn replace_all(&self, state: state_pb::State) {
        let mut full = FullState::new(state.revision);
        full.add(&state.resources);
        self.install(full);
    }

    /// Replaces everything with a full state assembled by [`FullState`].
    pub fn install(&self, full: FullState) {
        let changed: Vec<String> = {
            let mut current = self.write();
            let mut changed: Vec<String> = current.teams.keys().cloned().collect();
            changed.extend(full.teams.keys().cloned());
            current.teams = full.teams;
            current.revision = full.revision;
            self.generation.fetch_add(1, Ordering::Release);
            changed
        };
        self.notify(changed);
    }

    /// Applies the next change event. Events must arrive in revision order with no gap; an
    /// event at or below the current revision is a duplicate and ignored.
    pub fn apply(&self, event: &state_pb::ChangeEvent) -> Result<bool, ApplyError> {
        {
            let mut state = self.write();
            if event.revision <= state.revision {
                return Ok(false);
            }
            if event.revision != state.revision + 1 {
                return Err(ApplyError::Gap {
                    have: state.revision,
                    got: event.revision,
                });
            }
            // A batch (one revision, several resources) or a single change.
            let batched = event.op == ChangeOp::Unspecified as i32;
            let changes = if batched {
                event.changes.as_slice()
            } else {
                std::slice::from_ref(event)
            };
            // Check every entry before touching the state, so a malformed batch applies nothing.
            for change in changes {
                match ChangeOp::try_from(change.op) {
                    Ok(ChangeOp::Upsert) if change.resource.is_none() => {
                        return Err(ApplyError::Malformed("upsert without a resource".into()));
                    }
                    Ok(ChangeOp::Upsert | ChangeOp::Delete) => {}
                    _ => return Err(ApplyError::Malformed(format!("unknown op {}", change.op))),
                }
            }
            for change in changes {
                apply_one(&mut state, change);
            }
            state.revision = event.revision;
            self.generation.fetch_add(1, Ordering::Release);
        }
        let mut teams: Vec<String> = event.changes.iter().map(|c| c.team.clone()).collect();
        teams.push(event.team.clone());
        teams.sort_unstable();
        teams.dedup();
        self.notify(teams);
        Ok(true)
    }

    /// The current generation: it changes whenever any resource changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A receiver that changes whenever `team`'s resources change.
    pub fn watch(&self, team: &str) -> watch::Receiver<u64> {
        let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        watchers
            .entry(team.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// The dataplane of `team` with this id (or name).
    pub fn dataplane(&self, team: &str, id_or_name: &str) -> Option<Dataplane> {
        let state = self.read();
        let dataplanes = &state.teams.get(team)?.dataplanes;
        dataplanes
            .iter()
            .find(|(name, id)| *id == id_or_name || *name == id_or_name)
            .map(|(name, id)| Dataplane {
                id: id.clone(),
                name: name.clone(),
            })
    }

    /// What `dataplane` of `team` should have for `type_url`, the state-of-the-world way:
    /// `names` narrows the set (RDS always names what it wants; CDS and LDS are wildcard when
    /// `names` is empty).
    pub fn view(
        &self,
        team: &str,
        dataplane: &Dataplane,
        type_url: &str,
        names: &[String],
    ) -> ResourceSet {
        let interest = if names.is_empty() && !always_named(type_url) {
            Interest::All
        } else {
            Interest::Named(names)
        };
        let resources = self.select(team, dataplane, type_url, interest);
        let refs: Vec<&EncodedResource> = resources.iter().map(|r| r.as_ref()).collect();
        ResourceSet {
            version: version_of(&refs),
            resources,
        }
    }

    /// The resources of `type_url` that `dataplane` of `team` may see and `interest` covers,
    /// in name order.
    pub fn select(
        &self,
        team: &str,
        dataplane: &Dataplane,
        type_url: &str,
        interest: Interest<'_>,
    ) -> Vec<Arc<EncodedResource>> {
        self.select_at(team, dataplane, type_url, interest).1
    }

    /// [`Store::select`], with the generation the selection was read at.
    pub fn select_at(
        &self,
        team: &str,
        dataplane: &Dataplane,
        type_url: &str,
        interest: Interest<'_>,
    ) -> (u64, Vec<Arc<EncodedResource>>) {
        let state = self.read();
        // Read under the lock that guards the resources, so the pair is consistent.
        let generation = self.generation();
        let empty = Team::default();
        let team = state.teams.get(team).unwrap_or(&empty);
        let resources = match type_url {
            CLUSTER_TYPE => pick(&team.clusters, interest, |_| true, Arc::clone),
            LISTENER_TYPE => pick(
                &team.listeners,
                interest,
                |l| serves(l, dataplane),
                |l| l.encoded.clone(),
            ),
            ROUTE_TYPE => pick(&team.routes, interest, |_| true, Arc::clone),
            SECRET_TYPE => pick(&team.secrets, interest, |_| true, Arc::clone),
            ENDPOINT_TYPE => pick(&team.endpoints, interest, |_| true, Arc::clone),
            EXTENSION_CONFIG_TYPE => learning_slots(team, interest),
            _ => Vec::new(),
        };
        (generation, resources)
    }

    fn notify(&self, teams: impl IntoIterator<Item = String>) {
        let watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        for team in teams {
            if let Some(tx) = watchers.get(&team) {
                tx.send_modify(|generation| *generation += 1);
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The entries of `map` that `interest` covers and `visible` lets through, in name order.
/// Named interests are looked up, not scanned for, so a stream naming a few resources of a
/// large team costs a few lookups.
fn pick<T>(
    map: &BTreeMap<String, T>,
    interest: Interest<'_>,
    visible: impl Fn(&T) -> bool,
    encoded: impl Fn(&T) -> Arc<EncodedResource>,
) -> Vec<Arc<EncodedResource>> {
    match interest {
        Interest::All => map.values().filter(|v| visible(v)).map(encoded).collect(),
        Interest::Named(names) => {
            let names: BTreeSet<&str> = names.iter().map(String::as_str).collect();
            names
                .into_iter()
                .filter_map(|n| map.get(n))
                .filter(|v| visible(v))
                .map(encoded)
                .collect()
        }
    }
}

/// The learning slots `interest` covers, in slot name order: an active session's capturing
/// configuration where there is one, else the listener's idle one.
fn learning_slots(team: &Team, interest: Interest<'_>) -> Vec<Arc<EncodedResource>> {
    let active: BTreeMap<&str, &Arc<EncodedResource>> = team
        .learning
        .values()
        .map(|slot| (slot.name.as_str(), slot))
        .collect();
    let current = |idle: &Arc<EncodedResource>| {
        Arc::clone(active.get(idle.name.as_str()).copied().unwrap_or(idle))
    };
    match interest {
        Interest::All => team.idle_slots.values().map(current).collect(),
        Interest::Named(names) => names
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|name| team.idle_slots.get(slot_listener(name)?))
            .map(current)
            .collect(),
    }
}

fn serves(listener: &Listener, dataplane: &Dataplane) -> bool {
    match &listener.dataplane {
        None => true,
        Some(target) => *target == dataplane.id || *target == dataplane.name,
    }
}

fn kind_of(kind: i32) -> Option<ResourceKind> {
    match resources_pb::ResourceKind::try_from(kind).ok()? {
        resources_pb::ResourceKind::Cluster => Some(ResourceKind::Cluster),
        resources_pb::ResourceKind::RouteConfig => Some(ResourceKind::RouteConfig),
        resources_pb::ResourceKind::Listener => Some(ResourceKind::Listener),
        resources_pb::ResourceKind::Dataplane => Some(ResourceKind::Dataplane),
        resources_pb::ResourceKind::Secret => Some(ResourceKind::Secret),
        resources_pb::ResourceKind::LearningSession => Some(ResourceKind::LearningSession),
        resources_pb::ResourceKind::Unspecified => None,
    }
}

/// One validated upsert or delete.
fn apply_one(state: &mut State, change: &state_pb::ChangeEvent) {
    let team = state.teams.entry(change.team.clone()).or_default();
    match (ChangeOp::try_from(change.op), &change.resource) {
        (Ok(ChangeOp::Upsert), Some(resource)) => {
            if let Err(e) = upsert(&change.team, team, resource) {
                // Keep serving the last good version of this resource.
                tracing::error!(team = %change.team, name = %change.name, error = %e, "cannot translate resource; keeping the previous version");
            }
        }
        (Ok(ChangeOp::Delete), _) => remove(team, change.kind, &change.name),
        _ => {}
    }
}

/// One stored resource in the form the store keeps it: translated and encoded, not yet placed.
enum Translated {
    Dataplane {
        name: String,
        id: String,
    },
    /// A learning session: its slot's configuration while active, nothing otherwise.
    LearningSession {
        name: String,
        slot: Option<EncodedResource>,
    },
    Envoy {
        name: String,
        /// A listener's dataplane binding.
        listener_dataplane: Option<String>,
        is_cluster: bool,
        encoded: Vec<EncodedResource>,
    },
}

/// Translates and encodes one resource of `team_name`. Pure, so a full state can be
/// translated on several threads.
fn translate(team_name: &str, resource: &resources_pb::Resource) -> Result<Translated, String> {
    let kind = kind_of(resource.kind).ok_or("unknown kind")?;
    let spec = AnySpec::from_stored(kind, &resource.spec_json).map_err(|e| e.to_string())?;
    let name = resource.name.clone();
    let revision = resource.revision;
    let listener_dataplane = match &spec {
        AnySpec::Dataplane(_) => {
            return Ok(Translated::Dataplane {
                name,
                id: resource.id.clone(),
            });
        }
        AnySpec::LearningSession(session) => {
            let slot = flowplane_xds::translate_learning_session(team_name, &name, session);
            return Ok(Translated::LearningSession {
                name,
                slot: slot.into_iter().next().map(|mut slot| {
                    slot.revision = revision;
                    slot
                }),
            });
        }
        AnySpec::Listener(l) => l.dataplane_id.clone(),
        _ => None,
    };
    let mut encoded =
        flowplane_xds::translate_any(team_name, &name, &spec).map_err(|e| e.to_string())?;
    for resource in &mut encoded {
        resource.revision = revision;
    }
    if encoded.is_empty() {
        return Err("translation produced nothing".into());
    }
    Ok(Translated::Envoy {
        name,
        listener_dataplane,
        is_cluster: matches!(spec, AnySpec::Cluster(_)),
        encoded,
    })
}

/// Places a translated resource into its team, replacing what it had under that name.
fn place(team: &mut Team, translated: Translated) -> Result<(), String> {
    let (name, listener_dataplane, is_cluster, encoded) = match translated {
        Translated::Dataplane { name, id } => {
            team.dataplanes.insert(name, id);
            return Ok(());
        }
        Translated::LearningSession { name, slot } => {
            match slot {
                Some(slot) => {
                    metrics::counter!("xds_encodes_total").increment(1);
                    team.learning.insert(name, Arc::new(slot));
                }
                None => {
                    team.learning.remove(&name);
                }
            }
            return Ok(());
        }
        Translated::Envoy {
            name,
            listener_dataplane,
            is_cluster,
            encoded,
        } => (name, listener_dataplane, is_cluster, encoded),
    };
    // Each resource version is encoded once per replica; streams share the bytes.
    metrics::counter!("xds_encodes_total").increment(encoded.len() as u64);
    if is_cluster {
        // A cluster whose endpoints are now host names has no EDS resource any more.
        team.endpoints.remove(&name);
    }
    for resource in encoded {
        let resource = Arc::new(resource);
        match resource.type_url {
            CLUSTER_TYPE => team.clusters.insert(name.clone(), resource),
            ENDPOINT_TYPE => team.endpoints.insert(name.clone(), resource),
            ROUTE_TYPE => team.routes.insert(name.clone(), resource),
            SECRET_TYPE => team.secrets.insert(name.clone(), resource),
            EXTENSION_CONFIG_TYPE => team.idle_slots.insert(name.clone(), resource),
            LISTENER_TYPE => {
                let listener = Listener {
                    dataplane: listener_dataplane.clone(),
                    encoded: resource,
                };
                team.listeners.insert(name.clone(), listener);
                None
            }
            other => return Err(format!("unexpected type {other}")),
        };
    }
    Ok(())
}

/// Translates and encodes one resource into its team.
fn upsert(
    team_name: &str,
    team: &mut Team,
    resource: &resources_pb::Resource,
) -> Result<(), String> {
    place(team, translate(team_name, resource)?)
}

/// Translates a full state on every core: a cold replica with a million resources spends
/// most of its start here. Results keep the resources' order.
fn translate_all(resources: &[resources_pb::Resource]) -> Vec<Result<Translated, String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = resources.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = resources
            .chunks(chunk)
            .map(|part| {
                let worker = scope.spawn(move || {
                    part.iter()
                        .map(|r| translate(&r.team, r))
                        .collect::<Vec<_>>()
                });
                (part.len(), worker)
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|(len, worker)| {
                // One error per resource keeps the results aligned with the resources.
                worker.join().unwrap_or_else(|_| {
                    (0..len)
                        .map(|_| Err("the translation thread panicked".to_string()))
                        .collect()
                })
            })
            .collect()
    })
}

fn remove(team: &mut Team, kind: i32, name: &str) {
    match kind_of(kind) {
        Some(ResourceKind::Cluster) => {
            team.clusters.remove(name);
            team.endpoints.remove(name);
        }
        Some(ResourceKind::RouteConfig) => {
            team.routes.remove(name);
        }
        Some(ResourceKind::Listener) => {
            team.listeners.remove(name);
            team.idle_slots.remove(name);
        }
        Some(ResourceKind::Secret) => {
            team.secrets.remove(name);
        }
        Some(ResourceKind::Dataplane) => {
            team.dataplanes.remove(name);
        }
        Some(ResourceKind::LearningSession) => {
            team.learning.remove(name);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One change of `team` "t"; an upsert without a spec is malformed on purpose.
    fn event(
        revision: i64,
        op: ChangeOp,
        kind: resources_pb::ResourceKind,
        name: &str,
        spec_json: Option<String>,
    ) -> state_pb::ChangeEvent {
        state_pb::ChangeEvent {
            revision,
            op: op as i32,
            kind: kind as i32,
            team: "t".into(),
            name: name.into(),
            resource: spec_json.map(|spec_json| resources_pb::Resource {
                kind: kind as i32,
                team: "t".into(),
                name: name.into(),
                spec_json,
                ..Default::default()
            }),
            changes: Vec::new(),
        }
    }

    /// A cluster with one endpoint on `port`.
    fn change(op: ChangeOp, name: &str, port: Option<u32>) -> state_pb::ChangeEvent {
        let spec =
            port.map(|port| format!(r#"{{"endpoints":[{{"host":"127.0.0.1","port":{port}}}]}}"#));
        event(1, op, resources_pb::ResourceKind::Cluster, name, spec)
    }

    fn clusters(store: &Store) -> Vec<String> {
        let dataplane = Dataplane {
            id: "d".into(),
            name: "d".into(),
        };
        store
            .select("t", &dataplane, CLUSTER_TYPE, Interest::All)
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    #[test]
    fn a_full_state_is_translated_in_parallel_and_a_bad_resource_is_left_out() {
        let mut resources: Vec<resources_pb::Resource> = (0..1001)
            .filter_map(|i| change(ChangeOp::Upsert, &format!("c{i:04}"), Some(1000 + i)).resource)
            .collect();
        // Resource 500 cannot be read; every other one, on either side of it, loads.
        resources[500].spec_json = "{not json".into();
        let store = Store::new();
        store.replace_all(state_pb::State {
            revision: 7,
            resources,
            ..Default::default()
        });
        let loaded = clusters(&store);
        assert_eq!(loaded.len(), 1000);
        assert!(!loaded.contains(&"c0500".to_string()));
        assert!(loaded.contains(&"c0499".to_string()) && loaded.contains(&"c0501".to_string()));
        let dataplane = Dataplane {
            id: "d".into(),
            name: "d".into(),
        };
        let endpoints = store.select("t", &dataplane, ENDPOINT_TYPE, Interest::All);
        assert_eq!(endpoints.len(), 1000, "each IP cluster has its endpoints");
    }

    #[test]
    fn a_batch_applies_every_change_at_one_revision_or_none() {
        let store = Store::new();
        let batch = |revision, changes| state_pb::ChangeEvent {
            revision,
            team: "t".into(),
            changes,
            ..Default::default()
        };
        let first = batch(
            1,
            vec![
                change(ChangeOp::Upsert, "a", Some(81)),
                change(ChangeOp::Upsert, "b", Some(82)),
            ],
        );
        assert_eq!(store.apply(&first).ok(), Some(true));
        assert_eq!(
            (store.revision(), clusters(&store)),
            (1, vec!["a".into(), "b".into()])
        );

        // A malformed entry (an upsert without its resource) rejects the whole batch.
        let broken = batch(
            2,
            vec![
                change(ChangeOp::Delete, "a", None),
                change(ChangeOp::Upsert, "c", None),
            ],
        );
        assert!(store.apply(&broken).is_err());
        assert_eq!((store.revision(), clusters(&store).len()), (1, 2));

        // An empty batch only moves the revision (a definition change nothing serves).
        assert_eq!(store.apply(&batch(2, Vec::new())).ok(), Some(true));
        let second = batch(3, vec![change(ChangeOp::Delete, "a", None)]);
        assert_eq!(store.apply(&second).ok(), Some(true));
        assert_eq!(
            (store.revision(), clusters(&store)),
            (3, vec!["b".to_string()])
        );
    }

    fn upsert(
        revision: i64,
        kind: resources_pb::ResourceKind,
        name: &str,
        spec_json: &str,
    ) -> state_pb::ChangeEvent {
        event(
            revision,
            ChangeOp::Upsert,
            kind,
            name,
            Some(spec_json.into()),
        )
    }

    /// The learning slot of listener `edge` as a node asking for it by name sees it: whether
    /// it carries a capturing session (its metadata names the session).
    fn slot_captures(store: &Store) -> Option<bool> {
        let dataplane = Dataplane {
            id: "d".into(),
            name: "d".into(),
        };
        let names = ["flowplane.learning/edge".to_string()];
        let slots = store.select(
            "t",
            &dataplane,
            EXTENSION_CONFIG_TYPE,
            Interest::Named(&names),
        );
        assert!(slots.len() <= 1, "one slot per listener");
        let slot = slots.first()?;
        assert_eq!(slot.name, "flowplane.learning/edge");
        let bytes = &slot.any.value;
        let session = b"x-flowplane-learning-session";
        Some(bytes.windows(session.len()).any(|w| w == session))
    }

    #[test]
    fn a_listeners_slot_is_idle_until_a_session_is_active_and_idle_again_after() {
        use resources_pb::ResourceKind as Kind;
        let listener = r#"{"port":10000,"filterChains":[{"filters":[{"type":"httpConnectionManager","routeConfigName":"r"}]}]}"#;
        let session = |state: &str| format!(r#"{{"listener":"edge","state":"{state}"}}"#);
        let store = Store::new();
        assert_eq!(slot_captures(&store), None, "no listener, no slot");
        assert_eq!(
            store
                .apply(&upsert(1, Kind::Listener, "edge", listener))
                .ok(),
            Some(true)
        );
        assert_eq!(
            slot_captures(&store),
            Some(false),
            "the listener serves its idle slot"
        );
        assert_eq!(
            store
                .apply(&upsert(2, Kind::LearningSession, "s", &session("pending")))
                .ok(),
            Some(true)
        );
        assert_eq!(
            slot_captures(&store),
            Some(false),
            "a pending session captures nothing"
        );
        assert_eq!(
            store
                .apply(&upsert(3, Kind::LearningSession, "s", &session("active")))
                .ok(),
            Some(true)
        );
        assert_eq!(
            slot_captures(&store),
            Some(true),
            "the active session fills the slot"
        );
        assert_eq!(
            store
                .apply(&upsert(4, Kind::LearningSession, "s", &session("stopped")))
                .ok(),
            Some(true)
        );
        assert_eq!(
            slot_captures(&store),
            Some(false),
            "stopping is an update back to idle, not a removal"
        );
        let delete = event(5, ChangeOp::Delete, Kind::Listener, "edge", None);
        assert_eq!(store.apply(&delete).ok(), Some(true));
        assert_eq!(
            slot_captures(&store),
            None,
            "the slot goes with its listener"
        );
    }
}
