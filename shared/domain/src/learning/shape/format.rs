//! String formats a learned schema may claim. A format is claimed only when every string seen
//! had it, so each check errs on the side of "no format": a wrong claim would make clients
//! generated from the schema reject real traffic.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum StringFormat {
    DateTime,
    Uuid,
    Email,
}

impl StringFormat {
    pub(super) fn detect(s: &str) -> Option<Self> {
        if is_uuid(s) {
            Some(Self::Uuid)
        } else if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
            Some(Self::DateTime)
        } else if is_email(s) {
            Some(Self::Email)
        } else {
            None
        }
    }

    /// The JSON Schema `format` keyword's value.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::DateTime => "date-time",
            Self::Uuid => "uuid",
            Self::Email => "email",
        }
    }
}

/// The hyphenated form only (`format: uuid` is RFC 4122's string form), not the braced, URN
/// or bare-hex forms the `uuid` crate also accepts.
pub(in crate::learning) fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

/// `local@domain.tld`: one `@`, no spaces, a dotted domain of letters, digits and `-`. Far
/// looser than RFC 5321, which is fine for telling addresses from other strings.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && !"@()<>[]\\,;:\"".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart() {
        let cases = [
            ("2024-05-01T10:00:00Z", Some(StringFormat::DateTime)),
            (
                "2024-05-01T10:00:00.123-07:00",
                Some(StringFormat::DateTime),
            ),
            ("2024-05-01", None),
            (
                "6f1c7e1e-2a4b-4c1d-9a8e-0b5c2d7e9f10",
                Some(StringFormat::Uuid),
            ),
            ("6f1c7e1e2a4b4c1d9a8e0b5c2d7e9f10", None),
            ("ops@example.com", Some(StringFormat::Email)),
            (
                "first.last+tag@mail.example.co.uk",
                Some(StringFormat::Email),
            ),
            ("ops@localhost", None),
            ("two@at@example.com", None),
            ("spa ce@example.com", None),
            ("@example.com", None),
            ("plain", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(StringFormat::detect(text), expected, "{text}");
        }
    }
}
