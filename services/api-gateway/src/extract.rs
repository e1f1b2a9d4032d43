//! Reading requests: bodies, JSON the gateway itself parses, query strings and path
//! parameters, each refusing with a problem (400 with a field path, or 413) instead of axum's
//! plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use flowplane_domain::ErrorCode;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// The request body as text, for config to parse (resource bodies) or for [`parse_json`].
pub struct RawBody(pub String);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        match String::from_request(request, state).await {
            Ok(body) => Ok(Self(body)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Problem::payload_too_large(crate::BODY_LIMIT_BYTES))
            }
            Err(rejection) => Err(Problem::field(
                ErrorCode::MalformedBody,
                "",
                rejection.body_text(),
            )),
        }
    }
}

/// A JSON body the gateway parses itself (identity endpoints).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let RawBody(body) = RawBody::from_request(request, state).await?;
        parse_json(&body).map(Self)
    }
}

/// Parses JSON with the path of the first offending field: syntax errors are
/// `malformed_body`, well-formed JSON of the wrong shape is `validation_failed`.
pub fn parse_json<T: DeserializeOwned>(body: &str) -> Result<T, Problem> {
    if body.trim().is_empty() {
        return Err(Problem::field(
            ErrorCode::MalformedBody,
            "",
            "a JSON body is required",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let code = match e.inner().classify() {
            serde_json::error::Category::Data => ErrorCode::ValidationFailed,
            _ => ErrorCode::MalformedBody,
        };
        Problem::field(code, pointer(e.path()), e.inner().to_string())
    })?;
    deserializer
        .end()
        .map_err(|e| Problem::field(ErrorCode::MalformedBody, "", e.to_string()))?;
    Ok(value)
}

fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                // RFC 6901 escaping, so a key containing '/' cannot fake a deeper path.
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// Query parameters; a malformed query string is a 400 problem.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        // No name, team or cursor holds a NUL, and PostgreSQL cannot even compare text with
        // one: refuse it here, naming the parameter.
        if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            && let Some((key, _)) = pairs.iter().find(|(_, v)| v.contains('\0'))
        {
            return Err(Problem::field(
                ErrorCode::ValidationFailed,
                key.as_str(),
                "must not contain a NUL character",
            ));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Self(q))
            .map_err(|rejection| {
                Problem::field(ErrorCode::ValidationFailed, "", rejection.body_text())
            })
    }
}

/// Path parameters; only undecodable percent-escapes can fail, and a NUL (no name holds one,
/// so nothing is there).
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        if parts.uri.path().to_ascii_lowercase().contains("%00") {
            return Err(Problem::not_found("no resource has a NUL in its name"));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Self(p))
            .map_err(|rejection| Problem::not_found(rejection.body_text()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::problem::ProblemCode;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        scopes: Vec<String>,
    }

    fn problem(body: &str) -> Problem {
        parse_json::<Body>(body).unwrap_err()
    }

    #[test]
    fn wrong_types_carry_the_field_path() {
        let p = problem(r#"{"name":"x","scopes":["a", 7]}"#);
        assert_eq!(p.code(), ProblemCode::Domain(ErrorCode::ValidationFailed));
        assert_eq!(p.status().as_u16(), 400);
        assert_eq!(p.errors()[0].field, "/scopes/1");
    }

    #[test]
    fn unknown_and_missing_fields_are_validation_problems() {
        let unknown = problem(r#"{"name":"x","scopes":[],"scope":"typo"}"#);
        assert_eq!(
            unknown.code(),
            ProblemCode::Domain(ErrorCode::ValidationFailed)
        );
        assert!(unknown.errors()[0].message.contains("scope"));
        let missing = problem(r#"{"name":"x"}"#);
        assert!(missing.errors()[0].message.contains("scopes"));
    }

    #[test]
    fn broken_json_is_malformed() {
        for body in [
            "{",
            "{\"name\": }",
            "",
            "   ",
            r#"{"name":"x","scopes":[]} trailing"#,
        ] {
            let p = problem(body);
            assert_eq!(
                p.code(),
                ProblemCode::Domain(ErrorCode::MalformedBody),
                "{body}"
            );
            assert_eq!(p.status().as_u16(), 400);
        }
    }

    #[test]
    fn pointer_segments_are_escaped() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Labels {
            labels: std::collections::BTreeMap<String, u32>,
        }
        let p = parse_json::<Labels>(r#"{"labels":{"a/b~c":"x"}}"#).unwrap_err();
        assert_eq!(p.errors()[0].field, "/labels/a~1b~0c");
    }

    #[tokio::test]
    async fn a_nul_in_the_query_or_path_is_refused_before_anything_reads_it() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct TeamQuery {
            team: Option<String>,
        }
        let parts = |uri: &str| {
            axum::http::Request::builder()
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let Err(p) =
            QueryParams::<TeamQuery>::from_request_parts(&mut parts("/x?team=a%00b"), &()).await
        else {
            panic!("a NUL in ?team= was accepted");
        };
        assert_eq!(p.status().as_u16(), 400);
        assert_eq!(p.errors()[0].field, "team");
        let Ok(fine) =
            QueryParams::<TeamQuery>::from_request_parts(&mut parts("/x?team=ab"), &()).await
        else {
            panic!("a plain ?team= was refused");
        };
        assert_eq!(fine.0.team.as_deref(), Some("ab"));
        let Err(p) = PathParams::<String>::from_request_parts(&mut parts("/x/a%00b"), &()).await
        else {
            panic!("a NUL in the path was accepted");
        };
        assert_eq!(p.status().as_u16(), 404);
    }
}
