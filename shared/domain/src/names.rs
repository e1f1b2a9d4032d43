//! Name rules shared by organizations, teams and resources. Names appear in URLs, scopes and
//! Envoy resource names, so they are kept to a conservative alphabet.

use crate::error::{Path, ValidationErrors};

pub const MAX_NAME_LEN: usize = 63;

/// Lowercase letters, digits, `-`, `_` and `.`; starts and ends alphanumeric; 1..=63 chars.
pub fn check_name(value: &str, path: &Path, errors: &mut ValidationErrors) {
    if let Err(message) = name_problem(value) {
        errors.add(path.as_str(), message);
    }
}

pub fn name_problem(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
    if !value.chars().all(allowed) {
        return Err("may contain only lowercase letters, digits, '-', '_' and '.'".into());
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(value.chars().next()) || !edge_ok(value.chars().last()) {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_examples() {
        for name in ["httpbin-cluster", "my-org-default", "a", "v1.2_beta"] {
            assert_eq!(name_problem(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for name in [
            "",
            "-lead",
            "trail-",
            "Upper",
            "sp ace",
            "slash/",
            &"x".repeat(64),
        ] {
            assert!(name_problem(name).is_err(), "{name:?} should be rejected");
        }
    }
}
