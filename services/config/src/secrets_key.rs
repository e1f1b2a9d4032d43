//! The key that seals secret material at rest (AES-256-GCM), from `FLOWPLANE_SECRETS_KEY`,
//! and the keys it replaced (`FLOWPLANE_SECRETS_KEY_PREVIOUS`), which only open: rotation is
//! setting a new key with the old one as previous; config re-seals every secret under the new
//! key when it starts, after which the previous key can go.
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
pub struct SecretsKey {
    current: Aes256Gcm,
    /// Older keys, tried in order when the current one does not open a value.
    previous: Vec<Aes256Gcm>,
}

/// Which key opened a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenedWith {
    Current,
    Previous,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "FLOWPLANE_SECRETS_KEY must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)"
    )]
    Malformed,
    #[error(
        "FLOWPLANE_SECRETS_KEY_PREVIOUS must be comma-separated keys of 32 bytes, base64-encoded"
    )]
    MalformedPrevious,
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
        Ok(Self {
            current: cipher(encoded).ok_or(KeyError::Malformed)?,
            previous: Vec::new(),
        })
    }

    /// Adds the keys this one replaced (comma-separated, as the setting holds them).
    pub fn with_previous(mut self, encoded: &str) -> Result<Self, KeyError> {
        for key in encoded.split(',').filter(|k| !k.trim().is_empty()) {
            self.previous
                .push(cipher(key).ok_or(KeyError::MalformedPrevious)?);
        }
        Ok(self)
    }

    pub fn has_previous(&self) -> bool {
        !self.previous.is_empty()
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
            .current
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| KeyError::DoesNotOpen)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.open_telling(aad, sealed)
            .map(|(plaintext, _)| plaintext)
    }

    /// Opens with the current key or, failing that, a previous one, and says which.
    pub fn open_telling(
        &self,
        aad: &str,
        sealed: &[u8],
    ) -> Result<(Vec<u8>, OpenedWith), KeyError> {
        if let Ok(plaintext) = open_with(&self.current, aad, sealed) {
            return Ok((plaintext, OpenedWith::Current));
        }
        self.previous
            .iter()
            .find_map(|key| open_with(key, aad, sealed).ok())
            .map(|plaintext| (plaintext, OpenedWith::Previous))
            .ok_or(KeyError::DoesNotOpen)
    }
}

fn cipher(encoded: &str) -> Option<Aes256Gcm> {
    let bytes = STANDARD.decode(encoded.trim()).ok()?;
    let key: [u8; 32] = bytes.try_into().ok()?;
    Some(Aes256Gcm::new(&key.into()))
}

fn open_with(key: &Aes256Gcm, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (&version, rest) = sealed.split_first().ok_or(KeyError::DoesNotOpen)?;
    if version != VERSION || rest.len() < NONCE_LEN {
        return Err(KeyError::DoesNotOpen);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let payload = Payload {
        msg: ciphertext,
        aad: aad.as_bytes(),
    };
    key.decrypt(Nonce::from_slice(nonce), payload)
        .map_err(|_| KeyError::DoesNotOpen)
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
    fn previous_keys_open_but_never_seal() {
        let old = SecretsKey::generate_base64().unwrap();
        let sealed_before = SecretsKey::from_base64(&old)
            .unwrap()
            .seal("t/a", b"v")
            .unwrap();
        let rotated = key().with_previous(&format!(" , {old}")).unwrap();
        assert_eq!(
            rotated.open_telling("t/a", &sealed_before).unwrap(),
            (b"v".to_vec(), OpenedWith::Previous)
        );
        let resealed = rotated.seal("t/a", b"v").unwrap();
        assert_eq!(
            rotated.open_telling("t/a", &resealed).unwrap().1,
            OpenedWith::Current
        );
        assert!(
            SecretsKey::from_base64(&old)
                .unwrap()
                .open("t/a", &resealed)
                .is_err()
        );
        assert!(matches!(
            key().with_previous("nope"),
            Err(KeyError::MalformedPrevious)
        ));
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
