//! The session `flowplane auth login` keeps between commands: a JSON file in the user's config
//! directory (`$XDG_CONFIG_HOME/flowplane/credentials`, else `~/.config/flowplane/credentials`),
//! readable by its owner only (mode 0600), since it holds a live credential.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

/// A stored login session for one API URL.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub api_url: String,
    pub session_token: String,
    pub csrf_token: String,
    pub email: String,
    pub expires_at: String,
}

pub fn path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| anyhow::anyhow!("neither XDG_CONFIG_HOME nor HOME is set"))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("flowplane").join("credentials"))
}

/// The stored session for `api_url`, if there is one.
pub fn load(api_url: &str) -> Option<StoredSession> {
    let raw = std::fs::read_to_string(path().ok()?).ok()?;
    let v: Value = serde_json::from_str(&raw).ok()?;
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let session = StoredSession {
        api_url: field("apiUrl"),
        session_token: field("sessionToken"),
        csrf_token: field("csrfToken"),
        email: field("email"),
        expires_at: field("expiresAt"),
    };
    (session.api_url == api_url.trim_end_matches('/') && !session.session_token.is_empty())
        .then_some(session)
}

pub fn save(session: &StoredSession) -> anyhow::Result<PathBuf> {
    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let body = json!({
        "apiUrl": session.api_url,
        "sessionToken": session.session_token,
        "csrfToken": session.csrf_token,
        "email": session.email,
        "expiresAt": session.expires_at,
    });
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    // An existing file keeps its old mode on open; tighten it before writing the secret.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(serde_json::to_string_pretty(&body)?.as_bytes())?;
    Ok(path)
}

pub fn remove() -> anyhow::Result<()> {
    match std::fs::remove_file(path()?) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
