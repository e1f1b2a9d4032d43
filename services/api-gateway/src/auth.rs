//! Authentication: the credential (a bearer token or session, or the session cookie) is checked
//! by config (which holds the hashes) and the answer is cached here, so a hash is not verified
//! on every request.
//!
//! The cache is keyed by the SHA-256 of the credential, never the credential itself, so a heap
//! dump does not hand out working tokens. An entry lives as long as config allows
//! (`cache_seconds`, bounded by the token's expiry) and never longer than [`MAX_CACHE_TTL`];
//! revoking a token through this gateway evicts it at once, and config's token-invalidated
//! notices (revoke, rotate, scope change, expiry) evict it on every other replica within
//! moments. A lost notice lasts only until the entry expires, which is what the cap bounds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use flowplane_proto::common::v1::{Principal, SignedPrincipal};
use flowplane_proto::identity::v1::AuthenticateRequest;
use flowplane_runtime::bus::{AuthNotices, Notice};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::config_service::IdentityClient;
use crate::login_throttle::LoginThrottle;
use crate::problem::Problem;

pub const MAX_CACHE_TTL: Duration = Duration::from_secs(60);

/// Bounds memory against a flood of distinct valid credentials.
const MAX_ENTRIES: usize = 10_000;

/// The session cookie `POST /api/v1/auth/login` sets. It carries the session credential only:
/// a token in this cookie is ignored, because a cookie travels without the caller's intent
/// and only sessions are protected by the CSRF check.
pub const SESSION_COOKIE: &str = "fp_session";
/// Session credentials start with this (config issues them).
pub const SESSION_PREFIX: &str = "fp_session_";

/// Where the credential of a request came from.
pub fn credential(headers: &HeaderMap) -> Result<&str, Problem> {
    if headers.contains_key(header::AUTHORIZATION) {
        return bearer(headers);
    }
    session_cookie(headers).ok_or_else(|| {
        Problem::unauthenticated(
            "send a credential as `Authorization: Bearer <token>` or log in for a session cookie",
        )
    })
}

/// The session credential from the `fp_session` cookie, if one is present.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && value.starts_with(SESSION_PREFIX))
        .map(|(_, value)| value)
}

/// A verified credential: who it is, and for a session the digest of its CSRF token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    /// What config signed, passed back to it on every call for this caller.
    pub signed_principal: SignedPrincipal,
    /// SHA-256 of the session's CSRF token; `None` for tokens, which need no CSRF check.
    pub csrf_sha256: Option<[u8; 32]>,
}

impl Authenticated {
    /// Whether `presented` (the `x-csrf-token` header) is this session's CSRF token. Digests of
    /// equal length are compared without an early exit.
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        match (self.csrf_sha256, presented) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(expected), Some(presented)) => {
                let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                got.iter()
                    .zip(expected.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }
        }
    }
}

/// The credential from `Authorization: Bearer <credential>`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        Problem::unauthenticated("send a credential as `Authorization: Bearer <token>`")
    })?;
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthenticated("the Authorization header is not valid text"))?;
    let (scheme, credential) = value.split_once(' ').ok_or_else(|| {
        Problem::unauthenticated("the Authorization header must be `Bearer <token>`")
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Problem::unauthenticated(
            "only the Bearer authorization scheme is supported",
        ));
    }
    let credential = credential.trim();
    if credential.is_empty() {
        return Err(Problem::unauthenticated("the bearer credential is empty"));
    }
    Ok(credential)
}

/// Turns credentials into principals, asking config only on a cache miss.
pub struct Authenticator {
    identity: IdentityClient,
    cache: Mutex<CredentialCache>,
    /// One verification per credential at a time: when many requests with the same uncached
    /// credential arrive together (a client opening 16 connections), one pays the Argon2
    /// verification in config and the rest wait for its answer in the cache.
    in_flight: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
    /// The installation config names in its answers; notices of another are ignored.
    installation: Mutex<Option<String>>,
    /// Failed authentications per credential id and per client address: past the limit, a
    /// credential config has not vouched for is refused (429) without asking config.
    throttle: Arc<LoginThrottle>,
}

impl Authenticator {
    pub fn new(identity: IdentityClient, throttle: Arc<LoginThrottle>) -> Self {
        Self {
            throttle,
            identity,
            cache: Mutex::new(CredentialCache::new(MAX_ENTRIES)),
            in_flight: Mutex::default(),
            installation: Mutex::default(),
        }
    }

    pub async fn authenticate(
        &self,
        credential: &str,
        request_id: &str,
        client_address: &str,
    ) -> Result<Authenticated, Problem> {
        let key = CacheKey::of(credential);
        if let Some(authenticated) = self.cached(&key) {
            return Ok(authenticated);
        }
        let gate = Arc::clone(
            self.in_flight
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .entry(key)
                .or_default(),
        );
        let _turn = gate.lock().await;
        if let Some(authenticated) = self.cached(&key) {
            return Ok(authenticated);
        }
        let result = self
            .verify(key, credential, request_id, client_address)
            .await;
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&key);
        result
    }

    fn cached(&self, key: &CacheKey) -> Option<Authenticated> {
        let authenticated = self.lock().get(key, Instant::now())?;
        metrics::counter!("auth_authentications_total", "status" => "cached").increment(1);
        Some(authenticated)
    }

    /// Asks config, and caches a positive answer.
    async fn verify(
        &self,
        key: CacheKey,
        credential: &str,
        request_id: &str,
        client_address: &str,
    ) -> Result<Authenticated, Problem> {
        // Counted before config verifies (parallel guesses cannot pass the limit); what was not
        // a failed guess is given back below.
        let subject = credential_id(credential);
        let counted = match self.throttle.attempt(subject, client_address).await {
            Ok(()) => true,
            Err(problem) if problem.status() == StatusCode::TOO_MANY_REQUESTS => {
                return Err(problem);
            }
            // Redis away: config still verifies every credential; only the throttle is off.
            Err(problem) => {
                tracing::warn!(error = %problem.detail(), "bearer throttle unavailable");
                false
            }
        };
        let answer = self
            .identity
            .clone()
            .authenticate(AuthenticateRequest {
                credential: credential.to_string(),
                request_id: request_id.to_string(),
                client_address: client_address.to_string(),
            })
            .await;
        let answer = match answer {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                let problem = Problem::from_status(&status);
                let outcome = if problem.status().is_client_error() {
                    "rejected"
                } else {
                    // Config could not answer: not a failed guess.
                    if counted {
                        let _ = self.throttle.refund(subject, client_address).await;
                    }
                    "error"
                };
                metrics::counter!("auth_authentications_total", "status" => outcome).increment(1);
                return Err(problem);
            }
        };
        let (Some(principal), Some(signed_principal)) = (answer.principal, answer.signed_principal)
        else {
            return Err(Problem::internal(
                "config authenticated a credential without a signed principal",
            ));
        };
        let csrf_sha256 = match answer.csrf_token_sha256.as_str() {
            "" => None,
            hex_digest => Some(
                hex::decode(hex_digest)
                    .ok()
                    .and_then(|d| <[u8; 32]>::try_from(d).ok())
                    .ok_or_else(|| Problem::internal("config sent a malformed CSRF digest"))?,
            ),
        };
        let authenticated = Authenticated {
            principal,
            signed_principal,
            csrf_sha256,
        };
        if !answer.installation_id.is_empty() {
            *self
                .installation
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(answer.installation_id);
        }
        if counted {
            let _ = self.throttle.succeeded(subject, client_address).await;
        }
        let ttl = Duration::from_secs(u64::from(answer.cache_seconds)).min(MAX_CACHE_TTL);
        self.lock()
            .insert(key, authenticated.clone(), ttl, Instant::now());
        metrics::counter!("auth_authentications_total", "status" => "success").increment(1);
        Ok(authenticated)
    }

    /// Forgets every cached credential of this token or session (notices carry either id), so
    /// a revoked token or an ended session stops working here immediately.
    pub fn evict_token(&self, token_id: &str) {
        self.lock().evict_token(token_id);
    }

    /// Acts on a notice unless it names another installation than the one this gateway's
    /// config answers for (another installation on a shared NATS); returns whether it did.
    /// Before any answer the cache is empty, so there is nothing a notice could evict wrongly.
    pub fn on_notice(&self, notice: &Notice) -> bool {
        let ours = self
            .installation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let (Some(theirs), Some(ours)) = (&notice.installation, &ours)
            && theirs != ours
        {
            metrics::counter!("auth_foreign_notices_total").increment(1);
            return false;
        }
        self.evict_token(&notice.id);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CredentialCache> {
        // The cache holds no invariant a panicking holder could break halfway.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The id part of a token or session credential (`fp_pat_<id>.<secret>`), which the throttle
/// counts failures against; anything else counts as one malformed credential.
fn credential_id(credential: &str) -> &str {
    credential
        .split_once('.')
        .map(|(id, _)| id)
        .filter(|id| id.len() <= 64)
        .unwrap_or("malformed")
}

/// Subscribes to token-invalidated notices and evicts each token from `auth`'s cache until the
/// returned task is aborted. Subscribing happens before this returns, so no notice published
/// afterwards is missed.
pub async fn listen_for_notices(
    notices: AuthNotices,
    auth: Arc<Authenticator>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut stream = notices.subscribe().await?;
    tracing::info!(notices = %notices.describe(), "listening for token-invalidated notices");
    Ok(tokio::spawn(async move {
        while let Some(notice) = stream.next().await {
            if auth.on_notice(&notice) {
                tracing::debug!(
                    token_id = notice.id,
                    "token invalidated; evicted it from the cache"
                );
            }
        }
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey([u8; 32]);

impl CacheKey {
    fn of(credential: &str) -> Self {
        Self(Sha256::digest(credential.as_bytes()).into())
    }
}

struct CacheEntry {
    authenticated: Authenticated,
    expires_at: Instant,
}

/// Verified credentials and until when they may be trusted without asking config again.
/// Time is passed in, so expiry is tested without sleeping.
struct CredentialCache {
    entries: HashMap<CacheKey, CacheEntry>,
    max_entries: usize,
}

impl CredentialCache {
    fn new(max_entries: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max_entries,
        }
    }

    fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Authenticated> {
        match self.entries.get(key) {
            Some(entry) if entry.expires_at > now => Some(entry.authenticated.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, key: CacheKey, authenticated: Authenticated, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        if self.entries.len() >= self.max_entries {
            self.entries.retain(|_, e| e.expires_at > now);
        }
        if self.entries.len() >= self.max_entries {
            // Still full of live entries: drop the ones closest to expiry.
            let mut by_expiry: Vec<(Instant, CacheKey)> = self
                .entries
                .iter()
                .map(|(k, e)| (e.expires_at, *k))
                .collect();
            by_expiry.sort_unstable_by_key(|(at, _)| *at);
            for (_, k) in by_expiry.into_iter().take(self.max_entries / 10 + 1) {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(
            key,
            CacheEntry {
                authenticated,
                expires_at: now + ttl,
            },
        );
    }

    fn evict_token(&mut self, token_id: &str) {
        if token_id.is_empty() {
            return;
        }
        self.entries.retain(|_, e| {
            let p = &e.authenticated.principal;
            p.token_id != token_id && p.session_id != token_id
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn principal(token_id: &str) -> Authenticated {
        Authenticated {
            principal: Principal {
                user_id: format!("user-of-{token_id}"),
                token_id: token_id.into(),
                scopes: vec!["admin:all".into()],
                org_id: String::new(),
                email: "a@example.com".into(),
                session_id: String::new(),
            },
            signed_principal: SignedPrincipal::default(),
            csrf_sha256: None,
        }
    }

    fn session(session_id: &str, csrf: &str) -> Authenticated {
        Authenticated {
            principal: Principal {
                session_id: session_id.into(),
                ..principal("").principal
            },
            signed_principal: SignedPrincipal::default(),
            csrf_sha256: Some(Sha256::digest(csrf.as_bytes()).into()),
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; fp_session=fp_session_abc.def ; x=1"),
        );
        assert_eq!(session_cookie(&headers), Some("fp_session_abc.def"));
        assert_eq!(credential(&headers).unwrap(), "fp_session_abc.def");
        // A token smuggled into the cookie is ignored: cookies authenticate sessions only.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("fp_session=fp_pat_1.x"),
        );
        assert_eq!(session_cookie(&headers), None);
        assert_eq!(credential(&headers).unwrap_err().status().as_u16(), 401);
    }

    #[test]
    fn a_bearer_header_wins_over_the_cookie() {
        let mut headers = headers("Bearer fp_pat_1.secret");
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("fp_session=fp_session_abc.def"),
        );
        assert_eq!(credential(&headers).unwrap(), "fp_pat_1.secret");
    }

    #[test]
    fn csrf_is_checked_for_sessions_only() {
        let s = session("s1", "the-csrf-token");
        assert!(s.csrf_matches(Some("the-csrf-token")));
        assert!(!s.csrf_matches(Some("the-csrf-tokeN")));
        assert!(!s.csrf_matches(Some("")));
        assert!(!s.csrf_matches(None));
        assert!(principal("t1").csrf_matches(None));
    }

    #[test]
    fn evicting_a_session_drops_it() {
        let mut cache = CredentialCache::new(10);
        let now = Instant::now();
        cache.insert(
            CacheKey::of("s"),
            session("s1", "c"),
            Duration::from_secs(30),
            now,
        );
        cache.insert(
            CacheKey::of("t"),
            principal("t1"),
            Duration::from_secs(30),
            now,
        );
        cache.evict_token("s1");
        assert!(cache.get(&CacheKey::of("s"), now).is_none());
        assert!(cache.get(&CacheKey::of("t"), now).is_some());
    }

    #[test]
    fn bearer_credentials_are_extracted() {
        assert_eq!(
            bearer(&headers("Bearer fp_pat_1.secret")).unwrap(),
            "fp_pat_1.secret"
        );
        assert_eq!(bearer(&headers("bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(&headers("BEARER   abc  ")).unwrap(), "abc");
    }

    #[test]
    fn anything_else_is_unauthenticated() {
        let missing = bearer(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.status().as_u16(), 401);
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer    ",
            "fp_pat_1.secret",
            "Token abc",
        ] {
            let problem = bearer(&headers(bad)).unwrap_err();
            assert_eq!(problem.status().as_u16(), 401, "{bad}");
        }
    }

    #[test]
    fn keys_are_digests_not_credentials() {
        let key = CacheKey::of("fp_pat_1.secret");
        assert_eq!(key, CacheKey::of("fp_pat_1.secret"));
        assert_ne!(key, CacheKey::of("fp_pat_1.secreT"));
        assert!(!key.0.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn entries_expire() {
        let mut cache = CredentialCache::new(10);
        let now = Instant::now();
        let key = CacheKey::of("c");
        cache.insert(key, principal("t1"), Duration::from_secs(30), now);
        assert!(cache.get(&key, now + Duration::from_secs(29)).is_some());
        assert!(cache.get(&key, now + Duration::from_secs(30)).is_none());
        assert_eq!(cache.len(), 0, "expired entries are dropped on lookup");
    }

    #[test]
    fn zero_ttl_is_not_cached() {
        let mut cache = CredentialCache::new(10);
        let key = CacheKey::of("c");
        cache.insert(key, principal("t1"), Duration::ZERO, Instant::now());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn evicting_a_token_drops_only_its_entries() {
        let mut cache = CredentialCache::new(10);
        let now = Instant::now();
        cache.insert(
            CacheKey::of("a"),
            principal("t1"),
            Duration::from_secs(30),
            now,
        );
        cache.insert(
            CacheKey::of("b"),
            principal("t2"),
            Duration::from_secs(30),
            now,
        );
        cache.evict_token("t1");
        assert!(cache.get(&CacheKey::of("a"), now).is_none());
        assert!(cache.get(&CacheKey::of("b"), now).is_some());
        // A principal without a token (none is cached today) is never evicted by an empty id.
        cache.evict_token("");
        assert!(cache.get(&CacheKey::of("b"), now).is_some());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = CredentialCache::new(10);
        let now = Instant::now();
        for i in 0..50 {
            cache.insert(
                CacheKey::of(&format!("c{i}")),
                principal(&format!("t{i}")),
                Duration::from_secs(10 + i),
                now,
            );
            assert!(cache.len() <= 10);
        }
        // The newest (longest-lived) entry survived.
        assert!(cache.get(&CacheKey::of("c49"), now).is_some());
    }
}
