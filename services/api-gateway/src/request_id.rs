//! Request ids: the caller's `x-request-id` is echoed when it is safe to log and return,
//! otherwise a UUID is minted. Every response carries it, error bodies quote it, and it travels
//! to config in each call's `RequestContext`.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longer ids are replaced rather than truncated: a truncated id would no longer match what
/// the caller logged.
const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The caller's id when acceptable, a fresh UUID otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(&HEADER)
            .and_then(sanitize)
            .map(Self)
            .unwrap_or_else(Self::generate)
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Accepts 1..=128 visible ASCII characters: anything else could forge log lines or break
/// headers downstream.
fn sanitize(raw: &HeaderValue) -> Option<String> {
    let bytes = raw.as_bytes();
    let visible = |b: &u8| (0x21..=0x7e).contains(b);
    (!bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(visible))
        .then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Outermost middleware: assigns the id, makes it available to handlers (as an extension) and
/// to the tracing span, and finalizes the response (header + problem bodies).
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_headers(request.headers());
    request.extensions_mut().insert(id.clone());
    let response = next.run(request).await;
    let mut response = crate::problem::finalize(response, id.as_str());
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn headers_with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    fn is_uuid(s: &str) -> bool {
        uuid::Uuid::parse_str(s).is_ok()
    }

    #[test]
    fn a_well_formed_id_is_echoed() {
        let id = RequestId::from_headers(&headers_with(b"trace-abc_123:XYZ"));
        assert_eq!(id.as_str(), "trace-abc_123:XYZ");
        let longest = "a".repeat(128);
        assert_eq!(
            RequestId::from_headers(&headers_with(longest.as_bytes())).as_str(),
            longest
        );
    }

    #[test]
    fn a_missing_id_is_generated() {
        let a = RequestId::from_headers(&HeaderMap::new());
        let b = RequestId::from_headers(&HeaderMap::new());
        assert!(is_uuid(a.as_str()));
        assert_ne!(a, b);
    }

    #[test]
    fn unsafe_ids_are_replaced_not_echoed() {
        let too_long = "a".repeat(129);
        for bad in [
            too_long.as_bytes(),
            b"has space",
            b"tab\there",
            "caf\u{e9}".as_bytes(),
            b"",
        ] {
            let id = RequestId::from_headers(&headers_with(bad));
            assert!(
                is_uuid(id.as_str()),
                "{:?} -> {}",
                String::from_utf8_lossy(bad),
                id.as_str()
            );
        }
    }
}
