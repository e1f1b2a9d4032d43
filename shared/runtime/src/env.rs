//! Typed access to `FLOWPLANE_*` environment variables. Each service gathers its own settings
//! into one struct with these; `docs/configuration.md` lists them all.

use std::str::FromStr;

use anyhow::{Context, anyhow};

/// `url` with its password replaced by `***` (`nats://user:***@host`), for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split_once(':').map_or("***", |(user, _)| user);
            let hidden = if credentials.contains(':') {
                format!("{user}:***")
            } else {
                // A lone token (`nats://token@host`) is the secret itself.
                "***".to_string()
            };
            format!("{}{hidden}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_and_tokens_never_survive_redaction() {
        assert_eq!(
            redact_url("nats://flowplane:s3cret@nats:4222"),
            "nats://flowplane:***@nats:4222"
        );
        assert_eq!(
            redact_url("nats://s3cret@nats:4222"),
            "nats://***@nats:4222"
        );
        assert_eq!(
            redact_url("postgres://fp:p@ss@db/flowplane"),
            "postgres://fp:***@db/flowplane"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
