//! Per-endpoint aggregates: one exchange seen through Envoy becomes a [`LearnedEndpoint`] keyed
//! by (method, path template), and endpoints with the same key merge, in any order.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::path_template::template;
use super::shape::Shape;

/// The most endpoints one session should learn. Enforced by the caller (which decides whether
/// to drop or count what overflows): a scan of random paths must not grow the session without
/// bound, and a real API rarely has more operations than this.
pub const MAX_ENDPOINTS_PER_SESSION: usize = 1000;

/// One exchange seen through Envoy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub method: String,
    /// The raw request path, query string included.
    pub path: String,
    pub status: u16,
    /// The request body when it was JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Value>,
    /// The response body when it was JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<Value>,
}

/// What one (method, path template) was seen doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LearnedEndpoint {
    /// Upper-case when it is an HTTP token (see [`is_method_token`]), otherwise as seen.
    pub method: String,
    /// The path template (see [`template`]).
    pub path: String,
    /// Exchanges seen.
    pub samples: u64,
    /// The JSON request bodies; its `samples()` below `samples` means some requests had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<Shape>,
    /// By status code.
    #[serde(default)]
    pub responses: BTreeMap<u16, LearnedResponse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LearnedResponse {
    /// Responses with this status seen.
    pub samples: u64,
    /// Their JSON bodies, when any had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Shape>,
}

impl LearnedEndpoint {
    pub fn from_observation(o: &Observation) -> LearnedEndpoint {
        let response = LearnedResponse {
            samples: 1,
            body: o.response_body.as_ref().map(Shape::of),
        };
        LearnedEndpoint {
            method: normalize_method(&o.method),
            path: template(&o.path),
            samples: 1,
            request_body: o.request_body.as_ref().map(Shape::of),
            responses: BTreeMap::from([(o.status, response)]),
        }
    }

    /// (method, path template): what endpoints are merged by.
    pub fn key(&self) -> (String, String) {
        (self.method.clone(), self.path.clone())
    }

    /// Adds what `other` saw. Commutative and associative for endpoints with the same
    /// [`key`](Self::key); `self`'s key is kept, so merging different keys is the caller's bug.
    pub fn merge(&mut self, other: &LearnedEndpoint) {
        self.samples = self.samples.saturating_add(other.samples);
        merge_optional(&mut self.request_body, &other.request_body);
        for (status, theirs) in &other.responses {
            match self.responses.entry(*status) {
                Entry::Occupied(mut mine) => mine.get_mut().merge(theirs),
                Entry::Vacant(slot) => {
                    slot.insert(theirs.clone());
                }
            }
        }
    }
}

impl LearnedEndpoint {
    /// Whether two endpoints' exchanges look alike: they share a status, and for every status
    /// both saw, and for their request bodies, both have a body that
    /// [resembles](Shape::resembles) the other's, or neither has one.
    pub fn resembles(&self, other: &LearnedEndpoint) -> bool {
        let bodies = |a: &Option<Shape>, b: &Option<Shape>| match (a, b) {
            (Some(a), Some(b)) => a.resembles(b),
            (None, None) => true,
            _ => false,
        };
        let mut shared = self
            .responses
            .iter()
            .filter_map(|(status, mine)| other.responses.get(status).map(|theirs| (mine, theirs)))
            .peekable();
        shared.peek().is_some()
            && shared.all(|(mine, theirs)| bodies(&mine.body, &theirs.body))
            && bodies(&self.request_body, &other.request_body)
    }
}

impl LearnedResponse {
    pub fn merge(&mut self, other: &LearnedResponse) {
        self.samples = self.samples.saturating_add(other.samples);
        merge_optional(&mut self.body, &other.body);
    }
}

/// Adds `e` to the endpoint with its key, or inserts it. Does not enforce
/// [`MAX_ENDPOINTS_PER_SESSION`]: the caller decides what to do with the overflow.
pub fn merge_into(endpoints: &mut BTreeMap<(String, String), LearnedEndpoint>, e: LearnedEndpoint) {
    match endpoints.entry(e.key()) {
        Entry::Occupied(mut known) => known.get_mut().merge(&e),
        Entry::Vacant(slot) => {
            slot.insert(e);
        }
    }
}

/// Whether `method` is an HTTP method token (RFC 9110 `token`): anything else is not a method
/// Envoy would have forwarded, and callers may want to drop it.
pub fn is_method_token(method: &str) -> bool {
    !method.is_empty()
        && method
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Methods are case-sensitive in HTTP, but clients that send `get` mean `GET`, and one
/// endpoint per spelling would split the learned API.
fn normalize_method(method: &str) -> String {
    if is_method_token(method) {
        method.to_ascii_uppercase()
    } else {
        method.to_string()
    }
}

fn merge_optional(mine: &mut Option<Shape>, theirs: &Option<Shape>) {
    match (mine.as_mut(), theirs) {
        (Some(mine), Some(theirs)) => mine.merge(theirs),
        (None, Some(theirs)) => *mine = Some(theirs.clone()),
        (_, None) => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn observation(method: &str, path: &str, status: u16, body: Option<Value>) -> Observation {
        Observation {
            method: method.into(),
            path: path.into(),
            status,
            request_body: None,
            response_body: body,
        }
    }

    fn learned(observations: &[Observation]) -> BTreeMap<(String, String), LearnedEndpoint> {
        let mut endpoints = BTreeMap::new();
        for o in observations {
            merge_into(&mut endpoints, LearnedEndpoint::from_observation(o));
        }
        endpoints
    }

    #[test]
    fn an_observation_becomes_a_templated_upper_case_endpoint() {
        let o = Observation {
            method: "post".into(),
            path: "/users/42/orders?dryRun=true".into(),
            status: 201,
            request_body: Some(json!({"sku": "a-1"})),
            response_body: Some(json!({"id": 7})),
        };
        let e = LearnedEndpoint::from_observation(&o);
        assert_eq!(e.key(), ("POST".into(), "/users/{userId}/orders".into()));
        assert_eq!(e.samples, 1);
        assert_eq!(e.request_body.as_ref().map(Shape::samples), Some(1));
        assert_eq!(e.responses[&201].samples, 1);
        assert!(e.responses[&201].body.is_some());
    }

    #[test]
    fn odd_methods_are_kept_as_seen() {
        assert!(is_method_token("PROPFIND"));
        assert!(!is_method_token("GET /"));
        assert!(!is_method_token(""));
        let e = LearnedEndpoint::from_observation(&observation("GE T", "/", 200, None));
        assert_eq!(e.method, "GE T");
    }

    #[test]
    fn endpoints_merge_by_key_and_status() {
        let endpoints = learned(&[
            observation("GET", "/users/1", 200, Some(json!({"id": 1}))),
            observation("get", "/users/2", 404, None),
            observation("GET", "/users/3", 200, Some(json!({"id": 3, "name": "x"}))),
            observation("DELETE", "/users/3", 204, None),
        ]);
        assert_eq!(endpoints.len(), 2);
        let get = &endpoints[&("GET".to_string(), "/users/{userId}".to_string())];
        assert_eq!(get.samples, 3);
        assert_eq!(get.responses[&200].samples, 2);
        assert_eq!(
            get.responses[&200].body.as_ref().map(Shape::samples),
            Some(2)
        );
        assert_eq!(get.responses[&404].samples, 1);
        assert!(get.responses[&404].body.is_none());
    }

    #[test]
    fn merge_is_commutative_and_associative() {
        let samples: Vec<LearnedEndpoint> = [
            observation("GET", "/a/1", 200, Some(json!({"x": 1}))),
            observation("GET", "/a/2", 200, Some(json!({"x": 1.5, "y": null}))),
            observation("GET", "/a/3", 500, None),
            Observation {
                request_body: Some(json!([1, "two"])),
                ..observation("GET", "/a/4", 200, None)
            },
        ]
        .iter()
        .map(LearnedEndpoint::from_observation)
        .collect();
        crate::learning::assert_merge_laws(&samples, LearnedEndpoint::merge);
    }

    #[test]
    fn the_stored_form_is_compact_camel_case_and_round_trips() {
        let e = LearnedEndpoint::from_observation(&observation("GET", "/health", 200, None));
        let stored = serde_json::to_string(&e).unwrap();
        assert_eq!(
            stored,
            r#"{"method":"GET","path":"/health","samples":1,"responses":{"200":{"samples":1}}}"#
        );
        let back: LearnedEndpoint = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, e);
    }
}
