//! The key that seals secret material at rest (AES-256-GCM), from `FLOWPLANE_SECRETS_KEY`.
//!
//! A sealed value is `version (1 byte) || nonce (12 bytes) || ciphertext+tag`. The associated
//! data binds it to its row (team id and name), so ciphertext copied onto another secret's
//! row does not open. Nonces are random: at 96 bits, collisions stay negligible for far more
//! writes than a control plane makes under one key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct SecretsKey(Aes256Gcm);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "FLOWPLANE_SECRETS_KEY must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)"
    )]
    Malformed,
    #[error(
        "a sealed secret does not open with this key (wrong FLOWPLANE_SECRETS_KEY, or the row was altered)"
    )]
    DoesNotOpen,
    #[error("no randomness available for a nonce")]
    NoRandomness,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(<redacted>)")
    }
}

impl SecretsKey {
    /// Parses the setting: standard base64 of exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| KeyError::Malformed)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(Self(Aes256Gcm::new(&key.into())))
    }

    /// A fresh random key, base64-encoded as the setting expects.
    pub fn generate_base64() -> Result<String, KeyError> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|_| KeyError::NoRandomness)?;
        Ok(STANDARD.encode(key))
    }

    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|_| KeyError::NoRandomness)?;
        let payload = Payload {
            msg: plaintext,
            aad: aad.as_bytes(),
        };
        let ciphertext = self
            .0
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| KeyError::DoesNotOpen)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (&version, rest) = sealed.split_first().ok_or(KeyError::DoesNotOpen)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(KeyError::DoesNotOpen);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: aad.as_bytes(),
        };
        self.0
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| KeyError::DoesNotOpen)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn key() -> SecretsKey {
        SecretsKey::from_base64(&SecretsKey::generate_base64().unwrap()).unwrap()
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_row() {
        let key = key();
        let sealed = key.seal("team/a", b"-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"BEGIN"));
        assert_eq!(
            key.open("team/a", &sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert!(key.open("team/b", &sealed).is_err(), "bound to its row");
        assert!(
            self::key().open("team/a", &sealed).is_err(),
            "bound to its key"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("team/a", &tampered).is_err());
        assert_ne!(
            key.seal("team/a", b"x").unwrap(),
            key.seal("team/a", b"x").unwrap()
        );
    }

    #[test]
    fn the_setting_must_be_32_base64_bytes() {
        for bad in ["", "not base64!", &STANDARD.encode([0u8; 16])] {
            assert!(matches!(
                SecretsKey::from_base64(bad),
                Err(KeyError::Malformed)
            ));
        }
        assert!(SecretsKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
        assert_eq!(format!("{:?}", key()), "SecretsKey(<redacted>)");
    }
}
