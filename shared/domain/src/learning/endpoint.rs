//! Per-endpoint aggregates: one exchange seen through Envoy becomes a [`LearnedEndpoint`] keyed
//! by (method, path template), and endpoints with the same key merge, in any order.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::path_template::{parameter_in, template};
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
    /// The values of each path parameter, by segment position: their types and formats (never
    /// the values). Counted once per exchange, and once per distinct value for segments that
    /// became parameters across siblings ([`generalize`](super::generalize)).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub path_values: BTreeMap<usize, Shape>,
    /// Each query parameter's values (an array when the key repeats); its `samples()` below
    /// `samples` means some requests went without it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, Shape>,
}

/// Query keys kept per endpoint, and their longest name: a client that puts values in keys
/// must not grow the aggregate without bound.
pub const MAX_QUERY_KEYS: usize = 32;
pub const MAX_QUERY_KEY_LEN: usize = 64;

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
        let path = template(&o.path);
        let raw = o
            .path
            .find(['?', '#'])
            .map_or(o.path.as_str(), |end| &o.path[..end]);
        let raw: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
        let templated: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut path_values = BTreeMap::new();
        if raw.len() == templated.len() {
            for (i, (value, segment)) in raw.iter().zip(&templated).enumerate() {
                if parameter_in(segment).is_some() && parameter_in(value).is_none() {
                    path_values.insert(i, Shape::of(&segment_value(value)));
                }
            }
        }
        LearnedEndpoint {
            method: normalize_method(&o.method),
            path,
            samples: 1,
            request_body: o.request_body.as_ref().map(Shape::of),
            responses: BTreeMap::from([(o.status, response)]),
            path_values,
            query: query_shapes(&o.path),
        }
    }

    /// The operation's path and query parameters in OpenAPI form: path parameters typed from
    /// the values seen (a string when they disagree), query parameters with `required` when
    /// every request carried them.
    pub fn parameters(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let positions = self
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .enumerate()
            .filter_map(|(i, s)| parameter_in(s).map(|name| (i, name)));
        for (i, name) in positions {
            let schema = self
                .path_values
                .get(&i)
                .map(Shape::to_json_schema)
                .filter(|s| s["type"].is_string())
                .unwrap_or_else(|| json!({"type": "string"}));
            out.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
        for (name, shape) in &self.query {
            out.push(json!({"name": name, "in": "query",
                "required": shape.samples() >= self.samples, "schema": shape.to_json_schema()}));
        }
        out
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
        merge_shapes(&mut self.path_values, &other.path_values);
        merge_shapes(&mut self.query, &other.query);
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

fn merge_shapes<K: Ord + Clone>(mine: &mut BTreeMap<K, Shape>, theirs: &BTreeMap<K, Shape>) {
    for (key, shape) in theirs {
        match mine.entry(key.clone()) {
            Entry::Occupied(mut known) => known.get_mut().merge(shape),
            Entry::Vacant(slot) => {
                slot.insert(shape.clone());
            }
        }
    }
}

/// The shapes of a request's query parameters: `?page=2&tag=a&tag=b` gives `page` an integer
/// and `tag` an array of strings. Keys beyond [`MAX_QUERY_KEYS`] (in key order) or longer than
/// [`MAX_QUERY_KEY_LEN`] are dropped.
fn query_shapes(path: &str) -> BTreeMap<String, Shape> {
    let Some(query) = path.split_once('?').map(|(_, q)| q) else {
        return BTreeMap::new();
    };
    let query = query.split('#').next().unwrap_or_default();
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key, true);
        if key.is_empty() || key.len() > MAX_QUERY_KEY_LEN {
            continue;
        }
        values
            .entry(key)
            .or_default()
            .push(scalar(&percent_decode(value, true)));
    }
    values
        .into_iter()
        .take(MAX_QUERY_KEYS)
        .map(|(key, mut seen)| {
            let value = if seen.len() == 1 {
                seen.remove(0)
            } else {
                Value::Array(seen)
            };
            (key, Shape::of(&value))
        })
        .collect()
}

/// A path segment as the value it carries (percent-decoded; integers and decimals as numbers).
pub(crate) fn segment_value(segment: &str) -> Value {
    match scalar(&percent_decode(segment, false)) {
        Value::Bool(_) => Value::String(segment.to_string()),
        other => other,
    }
}

/// `42` and `1.5` as numbers, `true`/`false` as booleans, anything else a string.
fn scalar(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return json!(n);
    }
    if text.contains('.')
        && let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return json!(f);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_string()),
    }
}

/// `%XX` escapes undone (and `+` as a space in a query); malformed escapes are kept as sent.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

    #[test]
    fn path_parameters_and_query_parameters_are_typed_from_their_values() {
        let seen =
            |path: &str| LearnedEndpoint::from_observation(&observation("GET", path, 200, None));
        let mut e = seen(
            "/users/42/files/3fa85f64-5717-4562-b3fc-2c963f66afa6?page=2&tag=a&tag=b&q=a%40b.com",
        );
        e.merge(&seen(
            "/users/7/files/6ba7b810-9dad-11d1-80b4-00c04fd430c8?page=3&q=c%40d.org",
        ));
        assert_eq!(e.path, "/users/{userId}/files/{fileId}");
        assert_eq!(
            e.parameters(),
            vec![
                json!({"name": "userId", "in": "path", "required": true, "schema": {"type": "integer"}}),
                json!({"name": "fileId", "in": "path", "required": true,
                    "schema": {"type": "string", "format": "uuid"}}),
                json!({"name": "page", "in": "query", "required": true, "schema": {"type": "integer"}}),
                json!({"name": "q", "in": "query", "required": true,
                    "schema": {"type": "string", "format": "email"}}),
                json!({"name": "tag", "in": "query", "required": false,
                    "schema": {"type": "array", "items": {"type": "string"}}}),
            ]
        );
    }

    #[test]
    fn query_keys_are_bounded_and_values_never_kept() {
        let keys: Vec<String> = (0..100).map(|i| format!("k{i:03}=secret-{i}")).collect();
        let path = format!(
            "/search?{}&{}=1",
            keys.join("&"),
            "x".repeat(MAX_QUERY_KEY_LEN + 1)
        );
        let e = LearnedEndpoint::from_observation(&observation("GET", &path, 200, None));
        assert_eq!(e.query.len(), MAX_QUERY_KEYS);
        let stored = serde_json::to_string(&e).unwrap();
        assert!(!stored.contains("secret"), "{stored}");
    }

    #[test]
    fn merging_parameter_shapes_obeys_the_merge_laws() {
        let samples: Vec<LearnedEndpoint> = ["/a/1?x=1", "/a/2?y=b", "/a/3?x=1.5&x=2", "/a/4"]
            .iter()
            .map(|p| LearnedEndpoint::from_observation(&observation("GET", p, 200, None)))
            .collect();
        crate::learning::assert_merge_laws(&samples, LearnedEndpoint::merge);
    }
}
