//! One HTTP exchange as Envoy copies it to the learning service: the parts arrive as separate
//! messages (request headers, body chunks, response headers, body chunks) and are put back
//! together into an [`Observation`].

use envoy_types::pb::envoy::config::core::v3::HeaderMap;
use envoy_types::pb::envoy::service::ext_proc::v3::ProcessingRequest;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request;
use flowplane_domain::learning::Observation;

/// Bodies larger than this are not parsed (their schema is not learned; the exchange still
/// counts): the service holds every exchange in flight, two bodies each, so this bounds its
/// memory per concurrent request. API payloads worth a schema are far smaller.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What the exchange needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    More,
    /// Out of the session's scope (another path prefix): nothing more is wanted.
    Unwanted,
    /// The response is complete.
    Complete,
}

#[derive(Debug, Default)]
pub struct Exchange {
    method: String,
    path: String,
    status: u16,
    request: Body,
    response: Body,
}

#[derive(Debug, Default)]
struct Body {
    json: bool,
    bytes: Vec<u8>,
    too_large: bool,
}

impl Body {
    fn append(&mut self, chunk: &[u8]) {
        if self.too_large || !self.json {
            return;
        }
        if self.bytes.len() + chunk.len() > MAX_BODY_BYTES {
            self.too_large = true;
            self.bytes = Vec::new();
        } else {
            self.bytes.extend_from_slice(chunk);
        }
    }

    /// The body as JSON, when it is JSON, complete and parses.
    fn value(&self) -> Option<serde_json::Value> {
        if !self.json || self.too_large || self.bytes.is_empty() {
            return None;
        }
        serde_json::from_slice(&self.bytes).ok()
    }
}

impl Exchange {
    /// Takes the next message of the exchange; `path_prefix` is the session's scope.
    pub fn add(&mut self, message: ProcessingRequest, path_prefix: &str) -> Progress {
        match message.request {
            Some(Request::RequestHeaders(h)) => {
                let headers = h.headers.unwrap_or_default();
                self.method = header(&headers, ":method").unwrap_or_default();
                self.path = header(&headers, ":path").unwrap_or_default();
                if !self.path.starts_with(path_prefix) {
                    return Progress::Unwanted;
                }
                self.request.json = is_json(&headers);
                Progress::More
            }
            Some(Request::RequestBody(b)) => {
                self.request.append(&b.body);
                Progress::More
            }
            Some(Request::ResponseHeaders(h)) => {
                let headers = h.headers.unwrap_or_default();
                self.status = header(&headers, ":status")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_default();
                self.response.json = is_json(&headers);
                if h.end_of_stream {
                    Progress::Complete
                } else {
                    Progress::More
                }
            }
            Some(Request::ResponseBody(b)) => {
                self.response.append(&b.body);
                if b.end_of_stream || b.end_of_stream_without_message {
                    Progress::Complete
                } else {
                    Progress::More
                }
            }
            _ => Progress::More,
        }
    }

    /// The finished exchange; `None` when no response was seen (the client went away, or the
    /// request was out of scope).
    pub fn observation(&self) -> Option<Observation> {
        if self.method.is_empty() || self.status == 0 {
            return None;
        }
        Some(Observation {
            method: self.method.clone(),
            path: self.path.clone(),
            status: self.status,
            request_body: self.request.value(),
            response_body: self.response.value(),
        })
    }
}

/// Envoy sends header values as raw bytes (`raw_value`); older versions used `value`.
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.headers.iter().find(|h| h.key == name).map(|h| {
        if h.raw_value.is_empty() {
            h.value.clone()
        } else {
            String::from_utf8_lossy(&h.raw_value).into_owned()
        }
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    header(headers, "content-type").is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("application/json") || (t.starts_with("application/") && t.contains("+json"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue;
    use envoy_types::pb::envoy::service::ext_proc::v3::{HttpBody, HttpHeaders};

    fn headers(pairs: &[(&str, &str)], end_of_stream: bool) -> HttpHeaders {
        HttpHeaders {
            headers: Some(HeaderMap {
                headers: pairs
                    .iter()
                    .map(|(k, v)| HeaderValue {
                        key: (*k).into(),
                        raw_value: v.as_bytes().to_vec(),
                        ..Default::default()
                    })
                    .collect(),
            }),
            end_of_stream,
            ..Default::default()
        }
    }

    fn message(request: Request) -> ProcessingRequest {
        ProcessingRequest {
            request: Some(request),
            ..Default::default()
        }
    }

    fn body(bytes: &str, end_of_stream: bool) -> HttpBody {
        HttpBody {
            body: bytes.as_bytes().to_vec(),
            end_of_stream,
            ..Default::default()
        }
    }

    #[test]
    fn chunked_json_bodies_are_put_back_together() {
        let mut exchange = Exchange::default();
        let request = headers(
            &[
                (":method", "POST"),
                (":path", "/api/users?x=1"),
                ("content-type", "application/json"),
            ],
            false,
        );
        assert_eq!(
            exchange.add(message(Request::RequestHeaders(request)), "/api"),
            Progress::More
        );
        exchange.add(
            message(Request::RequestBody(body(r#"{"name":"#, false))),
            "/api",
        );
        exchange.add(
            message(Request::RequestBody(body(r#""ada"}"#, true))),
            "/api",
        );
        let response = headers(
            &[(":status", "201"), ("content-type", "application/json")],
            false,
        );
        exchange.add(message(Request::ResponseHeaders(response)), "/api");
        let last = exchange.add(
            message(Request::ResponseBody(body(r#"{"id":7}"#, true))),
            "/api",
        );
        assert_eq!(last, Progress::Complete);
        let observation = exchange.observation().unwrap();
        assert_eq!(observation.method, "POST");
        assert_eq!(observation.path, "/api/users?x=1");
        assert_eq!(observation.status, 201);
        assert_eq!(
            observation.request_body,
            Some(serde_json::json!({"name": "ada"}))
        );
        assert_eq!(
            observation.response_body,
            Some(serde_json::json!({"id": 7}))
        );
    }

    #[test]
    fn paths_outside_the_prefix_are_unwanted() {
        let mut exchange = Exchange::default();
        let request = headers(&[(":method", "GET"), (":path", "/admin")], true);
        assert_eq!(
            exchange.add(message(Request::RequestHeaders(request)), "/api"),
            Progress::Unwanted
        );
        assert!(exchange.observation().is_none());
    }

    #[test]
    fn non_json_and_oversized_bodies_count_without_a_schema() {
        let mut exchange = Exchange::default();
        let request = headers(
            &[
                (":method", "PUT"),
                (":path", "/f"),
                ("content-type", "text/plain"),
            ],
            false,
        );
        exchange.add(message(Request::RequestHeaders(request)), "/");
        exchange.add(message(Request::RequestBody(body("{}", true))), "/");
        let response = headers(
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        );
        exchange.add(message(Request::ResponseHeaders(response)), "/");
        let big = "x".repeat(MAX_BODY_BYTES);
        exchange.add(message(Request::ResponseBody(body(&big, false))), "/");
        exchange.add(message(Request::ResponseBody(body("1", true))), "/");
        let observation = exchange.observation().unwrap();
        assert_eq!(observation.status, 200);
        assert!(observation.request_body.is_none());
        assert!(observation.response_body.is_none());
    }
}
