//! Random secrets and their Argon2id hashes. Hashing is deliberately slow, so it runs on the
//! blocking pool, at most one per core at a time: each takes about 19 MiB, and junk secrets
//! for a known token id must not be able to fill the blocking pool (and memory) with them.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::ServiceError;

/// 256 random bits, hex-encoded.
pub fn random_secret() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// The SHA-256 digest (hex) of a high-entropy random secret (sessions, invitations, CSRF
/// tokens). Guessing a 256-bit value is hopeless either way, so a slow hash would only add
/// cost to every authentication.
pub fn digest(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored digest without an early exit on the first
/// differing byte.
pub fn digest_matches(secret: &str, stored_digest: &str) -> bool {
    let presented = digest(secret);
    presented.len() == stored_digest.len()
        && presented
            .bytes()
            .zip(stored_digest.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The permits for Argon2 work: one per core.
fn argon2_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

pub async fn hash(secret: String) -> Result<String, ServiceError> {
    let _permit = argon2_permits()
        .acquire()
        .await
        .map_err(|e| ServiceError::Internal(e.into()))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("hashing: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Internal(e.into()))?
}

pub async fn verify(secret: String, stored_hash: String) -> bool {
    let Ok(_permit) = argon2_permits().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored_hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(secret.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_secret() {
        let secret = random_secret().unwrap_or_default();
        assert_eq!(secret.len(), 64);
        let hashed = hash(secret.clone()).await.unwrap_or_default();
        assert!(hashed.starts_with("$argon2id$"));
        assert!(!hashed.contains(&secret));
        assert!(verify(secret, hashed.clone()).await);
        assert!(!verify("wrong".into(), hashed).await);
    }
}
