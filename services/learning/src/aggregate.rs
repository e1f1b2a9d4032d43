//! What this replica learned since its last flush, per session. Aggregates merge, so each
//! flush sends only what is new and config merges it into what it stores; a flush that fails
//! is merged back and sent again with the next.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use flowplane_domain::learning::{
    LearnedEndpoint, MAX_ENDPOINTS_PER_SESSION, Observation, merge_into,
};

/// A session, by team and name.
pub type SessionKey = (String, String);
pub type Endpoints = BTreeMap<(String, String), LearnedEndpoint>;

#[derive(Default)]
pub struct Aggregator {
    pending: Mutex<HashMap<SessionKey, Endpoints>>,
}

impl Aggregator {
    pub fn observe(&self, session: &SessionKey, observation: &Observation) {
        let endpoint = LearnedEndpoint::from_observation(observation);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let endpoints = pending.entry(session.clone()).or_default();
        add(endpoints, endpoint);
        metrics::counter!("learning_observations_total").increment(1);
    }

    /// Everything pending, leaving nothing.
    pub fn take(&self) -> HashMap<SessionKey, Endpoints> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts back what could not be flushed, merged with whatever arrived meanwhile.
    pub fn restore(&self, session: SessionKey, endpoints: Endpoints) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let current = pending.entry(session).or_default();
        for endpoint in endpoints.into_values() {
            add(current, endpoint);
        }
    }
}

/// Merges `endpoint` in; a new endpoint beyond the per-session cap is dropped.
fn add(endpoints: &mut Endpoints, endpoint: LearnedEndpoint) {
    if endpoints.len() >= MAX_ENDPOINTS_PER_SESSION && !endpoints.contains_key(&endpoint.key()) {
        metrics::counter!("learning_endpoints_dropped_total").increment(1);
        return;
    }
    merge_into(endpoints, endpoint);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn seen(path: &str, status: u16) -> Observation {
        Observation {
            method: "GET".into(),
            path: path.into(),
            status,
            request_body: None,
            response_body: Some(serde_json::json!({"id": 1})),
        }
    }

    #[test]
    fn observations_of_one_endpoint_merge_and_take_empties() {
        let aggregator = Aggregator::default();
        let session = ("team".to_string(), "s".to_string());
        aggregator.observe(&session, &seen("/users/1", 200));
        aggregator.observe(&session, &seen("/users/2", 200));
        aggregator.observe(&session, &seen("/users/3", 404));
        let taken = aggregator.take();
        let endpoints = &taken[&session];
        assert_eq!(endpoints.len(), 1, "{endpoints:?}");
        let endpoint = endpoints.values().next().unwrap();
        assert_eq!(endpoint.samples, 3);
        assert_eq!(endpoint.responses.len(), 2);
        assert!(aggregator.take().is_empty());
    }

    #[test]
    fn a_failed_flush_is_restored_and_merged_with_what_came_since() {
        let aggregator = Aggregator::default();
        let session = ("team".to_string(), "s".to_string());
        aggregator.observe(&session, &seen("/users/1", 200));
        let taken = aggregator.take();
        aggregator.observe(&session, &seen("/users/2", 200));
        for (key, endpoints) in taken {
            aggregator.restore(key, endpoints);
        }
        let endpoint = aggregator.take()[&session].values().next().unwrap().clone();
        assert_eq!(endpoint.samples, 2);
    }

    #[test]
    fn a_session_holds_at_most_the_cap_of_endpoints() {
        let aggregator = Aggregator::default();
        let session = ("team".to_string(), "s".to_string());
        for i in 0..MAX_ENDPOINTS_PER_SESSION + 10 {
            aggregator.observe(&session, &seen(&format!("/r{i}"), 200));
        }
        assert_eq!(aggregator.take()[&session].len(), MAX_ENDPOINTS_PER_SESSION);
    }
}
