//! Conditional requests: `If-Match` becomes config's `if_revision`. ETags are strong and are
//! the quoted revision, so the comparison itself happens in config, atomically with the write.

use axum::http::{HeaderMap, header};
use flowplane_domain::ErrorCode;

use crate::problem::Problem;

/// The revision a write is conditional on; 0 means unconditional (no `If-Match`, or `*`).
pub fn if_match(headers: &HeaderMap) -> Result<i64, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(0);
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    if value == "*" {
        return Ok(0);
    }
    if value.starts_with("W/") {
        // RFC 9110 §13.1.1: If-Match uses the strong comparison, which a weak tag never passes.
        return Err(Problem::new(
            ErrorCode::RevisionMismatch,
            "If-Match needs a strong entity tag (\"<revision>\"), not a weak one",
        ));
    }
    let revision = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|v| !v.contains('"'))
        .ok_or_else(malformed)?;
    match revision.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        // A well-formed tag that is no revision can never match.
        _ => Err(Problem::new(
            ErrorCode::RevisionMismatch,
            format!("no revision has the entity tag {value}"),
        )),
    }
}

fn malformed() -> Problem {
    Problem::field(
        ErrorCode::ValidationFailed,
        "If-Match",
        "must be one entity tag \"<revision>\" (as the ETag header returned) or *",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn absent_or_star_is_unconditional() {
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), 0);
        assert_eq!(if_match(&with("*")).unwrap(), 0);
    }

    #[test]
    fn a_quoted_revision_is_the_condition() {
        assert_eq!(if_match(&with("\"42\"")).unwrap(), 42);
        assert_eq!(if_match(&with(" \"7\" ")).unwrap(), 7);
    }

    #[test]
    fn tags_that_cannot_match_fail_the_precondition() {
        for v in ["W/\"42\"", "\"abc\"", "\"0\"", "\"-1\""] {
            assert_eq!(
                if_match(&with(v)).unwrap_err().status().as_u16(),
                412,
                "{v}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_bad_requests() {
        for v in ["42", "\"1\", \"2\"", "\"unterminated"] {
            let p = if_match(&with(v)).unwrap_err();
            assert_eq!(p.status().as_u16(), 400, "{v}");
            assert_eq!(p.errors()[0].field, "If-Match");
        }
    }
}
