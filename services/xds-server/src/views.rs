//! Views shared by streams: what one dataplane should have of one type, computed once per
//! store generation and handed to every stream that asks the same question, together with
//! the wire bytes every such stream sends. A change to a team with 10,000 connected Envoys
//! then costs one selection, one version hash and one encode, not 10,000 of each.
//!
//! A view is only a cache of [`Store::select`]: the store stays the source of truth, and a
//! view is used only while the store's generation is the one it was computed at.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use flowplane_xds::resource::{EncodedResource, always_named, version_of};
use prost::Message;
use prost::bytes::Bytes;

use crate::snapshot::{Dataplane, Interest, Store};
use crate::wire;

/// The question a view answers: which resources of `type_url` the dataplane of `team` should
/// have, for every name (`names: None`, a wildcard) or only the given ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewKey {
    team: String,
    /// The dataplane's id and name: a listener may be bound to either.
    dataplane: (String, String),
    type_url: String,
    names: Option<Vec<String>>,
}

impl ViewKey {
    /// A state-of-the-world request: RDS always names what it wants, CDS and LDS are
    /// wildcard when they name nothing.
    pub fn sotw(team: &str, dataplane: &Dataplane, type_url: &str, names: &[String]) -> Self {
        let names = if names.is_empty() && !always_named(type_url) {
            None
        } else {
            Some(names.to_vec())
        };
        Self::new(team, dataplane, type_url, names)
    }

    pub fn new(
        team: &str,
        dataplane: &Dataplane,
        type_url: &str,
        names: Option<Vec<String>>,
    ) -> Self {
        Self {
            team: team.to_string(),
            dataplane: (dataplane.id.clone(), dataplane.name.clone()),
            type_url: type_url.to_string(),
            names,
        }
    }

    fn interest(&self) -> Interest<'_> {
        match &self.names {
            None => Interest::All,
            Some(names) => Interest::Named(names),
        }
    }
}

/// The resources one view holds, in name order, and their combined version.
pub struct View {
    generation: u64,
    pub version: String,
    pub resources: Vec<Arc<EncodedResource>>,
    /// A state-of-the-world response carrying this view, up to its nonce.
    sotw: OnceLock<Bytes>,
    /// Each resource as a delta `resources` entry, ready to be concatenated.
    delta: OnceLock<Vec<Bytes>>,
}

impl View {
    fn new(generation: u64, resources: Vec<Arc<EncodedResource>>) -> Self {
        let refs: Vec<&EncodedResource> = resources.iter().map(|r| r.as_ref()).collect();
        Self {
            generation,
            version: version_of(&refs),
            resources,
            sotw: OnceLock::new(),
            delta: OnceLock::new(),
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.resources.iter().map(|r| r.name.clone()).collect()
    }

    /// The position of the resource named `name`, if the view holds it.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.resources
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
    }

    /// The state-of-the-world response for this view, without its nonce: encoded by the first
    /// stream that needs it, shared by all the others.
    pub fn sotw_body(&self, type_url: &str) -> Bytes {
        self.sotw
            .get_or_init(|| {
                DiscoveryResponse {
                    version_info: self.version.clone(),
                    resources: self.resources.iter().map(|r| r.any.clone()).collect(),
                    type_url: type_url.to_string(),
                    ..Default::default()
                }
                .encode_to_vec()
                .into()
            })
            .clone()
    }

    /// The delta `resources` entry of the resource at `index`.
    pub fn delta_entry(&self, index: usize) -> &[u8] {
        let entries = self.delta.get_or_init(|| {
            self.resources
                .iter()
                .map(|r| wire::delta_entry(r).into())
                .collect()
        });
        entries.get(index).map(|b| b.as_ref()).unwrap_or_default()
    }
}

/// The views of the current generation.
pub struct Views {
    store: Arc<Store>,
    current: Mutex<Generation>,
}

#[derive(Default)]
struct Generation {
    number: u64,
    views: HashMap<ViewKey, Arc<View>>,
}

impl Views {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            current: Mutex::new(Generation::default()),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Whether `view` is still what the store holds.
    pub fn is_current(&self, view: &View) -> bool {
        view.generation == self.store.generation()
    }

    /// The current view for `key`: `previous` if it is still current, else the shared one.
    pub fn get(
        &self,
        key: &ViewKey,
        dataplane: &Dataplane,
        previous: Option<&Arc<View>>,
    ) -> Arc<View> {
        if let Some(view) = previous.filter(|v| self.is_current(v)) {
            return view.clone();
        }
        let generation = self.store.generation();
        {
            let current = self.lock();
            if current.number == generation
                && let Some(view) = current.views.get(key)
            {
                return view.clone();
            }
        }
        // Selected outside the lock; two streams racing here compute the same view twice.
        let (generation, resources) =
            self.store
                .select_at(&key.team, dataplane, &key.type_url, key.interest());
        let view = Arc::new(View::new(generation, resources));
        let mut current = self.lock();
        if generation > current.number {
            // Every view of an older generation is stale: drop them all, so old resource
            // versions are not kept alive by views nobody will ask for again.
            current.views.clear();
            current.number = generation;
        }
        if generation == current.number {
            current.views.insert(key.clone(), view.clone());
        }
        view
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generation> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use flowplane_proto::resources::v1::{Resource, ResourceKind};
    use flowplane_proto::state::v1::{ChangeEvent, ChangeOp, State};
    use flowplane_xds::resource::CLUSTER_TYPE;

    fn cluster(name: &str, port: u16) -> Resource {
        Resource {
            kind: ResourceKind::Cluster as i32,
            team: "t".into(),
            name: name.into(),
            // A host name keeps the endpoints inside the cluster, so the port changes it.
            spec_json: format!(r#"{{"endpoints":[{{"host":"localhost","port":{port}}}]}}"#),
            ..Default::default()
        }
    }

    fn dataplane() -> Dataplane {
        Dataplane {
            id: "d".into(),
            name: "edge".into(),
        }
    }

    #[test]
    fn streams_share_a_view_until_the_store_changes() {
        let store = Arc::new(Store::new());
        store.replace_all(State {
            revision: 1,
            resources: vec![cluster("b", 81), cluster("a", 80)],
            ..Default::default()
        });
        let views = Views::new(store.clone());
        let key = ViewKey::sotw("t", &dataplane(), CLUSTER_TYPE, &[]);
        let first = views.get(&key, &dataplane(), None);
        let second = views.get(&key, &dataplane(), None);
        assert!(Arc::ptr_eq(&first, &second), "one view per question");
        assert_eq!(first.names(), ["a", "b"]);
        assert_eq!(first.position("b"), Some(1));
        assert_eq!(first.position("c"), None);
        let direct = store.view("t", &dataplane(), CLUSTER_TYPE, &[]);
        assert_eq!(first.version, direct.version);

        store
            .apply(&ChangeEvent {
                revision: 2,
                op: ChangeOp::Upsert as i32,
                kind: ResourceKind::Cluster as i32,
                team: "t".into(),
                name: "a".into(),
                resource: Some(cluster("a", 90)),
                changes: Vec::new(),
            })
            .unwrap();
        assert!(!views.is_current(&first));
        let after = views.get(&key, &dataplane(), Some(&first));
        assert_ne!(after.version, first.version);
        assert_eq!(
            after.version,
            store.view("t", &dataplane(), CLUSTER_TYPE, &[]).version
        );
        assert!(Arc::ptr_eq(
            &after,
            &views.get(&key, &dataplane(), Some(&after))
        ));
    }

    #[test]
    fn the_shared_sotw_body_is_the_prost_encoding_of_the_view() {
        let store = Arc::new(Store::new());
        store.replace_all(State {
            revision: 1,
            resources: vec![cluster("a", 80)],
            ..Default::default()
        });
        let views = Views::new(store);
        let key = ViewKey::sotw("t", &dataplane(), CLUSTER_TYPE, &[]);
        let view = views.get(&key, &dataplane(), None);
        let expected = DiscoveryResponse {
            version_info: view.version.clone(),
            resources: view.resources.iter().map(|r| r.any.clone()).collect(),
            type_url: CLUSTER_TYPE.into(),
            ..Default::default()
        };
        assert_eq!(
            view.sotw_body(CLUSTER_TYPE).as_ref(),
            expected.encode_to_vec()
        );
    }
}
