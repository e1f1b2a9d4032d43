//! List paging parameters: `?limit=` (default 50, at most 500) with `?cursor=` for resources
//! and `?offset=` for tokens.

use flowplane_domain::ErrorCode;

use crate::problem::Problem;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// An explicit limit outside 1..=500 is refused rather than clamped, so a client never
/// mistakes a short page for the end of the list; so is an empty one (`?limit=`), which is
/// no integer.
pub fn limit(raw: Option<&str>) -> Result<u32, Problem> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(Problem::field(
            ErrorCode::ValidationFailed,
            "limit",
            format!("must be an integer between 1 and {MAX_LIMIT}"),
        )),
    }
}

pub fn offset(raw: Option<&str>) -> Result<u32, Problem> {
    let Some(raw) = raw else {
        return Ok(0);
    };
    raw.parse::<u32>().map_err(|_| {
        Problem::field(
            ErrorCode::ValidationFailed,
            "offset",
            "must be a non-negative integer",
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), 50);
        assert_eq!(limit(Some("1")).unwrap(), 1);
        assert_eq!(limit(Some("500")).unwrap(), 500);
        for bad in ["", "0", "501", "-1", "ten", "1.5"] {
            let p = limit(Some(bad)).unwrap_err();
            assert_eq!(p.status().as_u16(), 400, "{bad}");
            assert_eq!(p.errors()[0].field, "limit");
        }
    }

    #[test]
    fn offsets() {
        assert_eq!(offset(None).unwrap(), 0);
        assert_eq!(offset(Some("20")).unwrap(), 20);
        assert!(offset(Some("-3")).is_err());
        assert!(offset(Some("")).is_err());
    }
}
