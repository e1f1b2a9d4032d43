//! Typed access to `FLOWPLANE_*` environment variables. Each service gathers its own settings
//! into one struct with these; `docs/configuration.md` lists them all.

use std::str::FromStr;

use anyhow::{Context, anyhow};

/// The variable's value, or `default` when unset or empty.
pub fn string(name: &str, default: &str) -> String {
    optional(name).unwrap_or_else(|| default.to_string())
}

/// The variable's value when set and non-empty.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Parses the variable, or returns `default` when unset; a value that does not parse is an
/// error naming the variable (a typo must not silently fall back to a default).
pub fn parsed<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("{name}={raw:?} is not valid")),
    }
}
