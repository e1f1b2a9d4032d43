//! Failed-login throttling, per account (email) and per client address; the same counters
//! throttle failed bearer authentications, per credential id and per client address
//! ([`LoginThrottle::for_bearer`]), so junk secrets for a known token id cannot make config
//! run Argon2 without end.
//!
//! The gateway owns this because it alone knows the client address, and it must hold across
//! replicas: failures are counted in Redis (`FLOWPLANE_REDIS_URL`), one fixed window per key
//! (`INCR` + `EXPIRE … NX`), so five failures spread over two gateways count as five. Without
//! Redis (`flowplane up`, one process) an in-process counter stands in, and says so in the log.
//!
//! Every attempt is counted before the password is checked (a success gives its count back), so
//! parallel guesses cannot slip past the limit. Once a counter passes its limit, login answers 429 with `Retry-After` (the window's
//! remaining time) even for the right password: that is what stops guessing. A successful
//! login clears the account's counter, not the address's. If Redis cannot be reached, login
//! answers 503 rather than letting unthrottled guesses through. Keys hold a digest of the
//! email, not the email itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::config::LoginLimits;
use crate::problem::Problem;

/// Redis must answer quickly: a login waits on it.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

pub struct LoginThrottle {
    limits: LoginLimits,
    counters: Counters,
    kind: Kind,
}

/// What is counted: password logins, or bearer credentials the gateway had to ask config about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Login,
    Bearer,
}

enum Counters {
    Redis {
        client: redis::Client,
        /// Connected on first use, so the gateway starts while Redis is away.
        connection: OnceCell<ConnectionManager>,
        prefix: String,
    },
    Local(Mutex<HashMap<String, (u32, Instant)>>),
}

/// The two counters one login attempt touches.
struct Keys {
    account: String,
    address: String,
}

impl LoginThrottle {
    /// Counts in Redis at `url`; the connection is made on first use.
    pub fn redis(url: &str, prefix: &str, limits: LoginLimits) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("FLOWPLANE_REDIS_URL is not a valid Redis URL: {e}"))?;
        Ok(Self {
            limits,
            counters: Counters::Redis {
                client,
                connection: OnceCell::new(),
                prefix: prefix.to_string(),
            },
            kind: Kind::Login,
        })
    }

    /// Counts in this process only.
    pub fn local(limits: LoginLimits) -> Self {
        Self {
            limits,
            counters: Counters::Local(Mutex::new(HashMap::new())),
            kind: Kind::Login,
        }
    }

    /// The same counters for failed bearer authentications: the "account" is the credential's
    /// id (`fp_pat_<id>.…`, `fp_session_<id>.…`).
    pub fn for_bearer(mut self) -> Self {
        self.kind = Kind::Bearer;
        self
    }

    pub fn describe(&self) -> &'static str {
        match self.counters {
            Counters::Redis { .. } => "Redis (shared by every api-gateway)",
            Counters::Local(_) => "in-process (this api-gateway only)",
        }
    }

    fn keys(&self, email: &str, address: &str) -> Keys {
        let prefix = match &self.counters {
            Counters::Redis { prefix, .. } => prefix.as_str(),
            Counters::Local(_) => "local",
        };
        let account = hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()));
        let kind = match self.kind {
            Kind::Login => "login-failures",
            Kind::Bearer => "bearer-failures",
        };
        Keys {
            account: format!("{prefix}:{kind}:account:{account}"),
            address: format!("{prefix}:{kind}:address:{address}"),
        }
    }

    /// Counts this attempt against the account and the address *before* the password is
    /// checked, and answers 429 when either counter is past its limit. Counting first is what
    /// makes the limit hold for parallel guesses: each one takes its number atomically, so at
    /// most the limit's worth ever reach the password check in a window. [`Self::succeeded`]
    /// and [`Self::refund`] give back what was not a failed guess.
    pub async fn attempt(&self, email: &str, address: &str) -> Result<(), Problem> {
        let keys = self.keys(email, address);
        let window = self.limits.window_seconds;
        let [(account, account_ttl), (address_count, address_ttl)] = match &self.counters {
            Counters::Redis { .. } => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for key in [&keys.account, &keys.address] {
                    pipe.incr(key, 1);
                    // NX: the window starts at the first attempt and is not extended by later
                    // ones, so a throttled account frees up on schedule.
                    pipe.cmd("EXPIRE").arg(key).arg(window).arg("NX").ignore();
                    pipe.ttl(key);
                }
                let (a, a_ttl, b, b_ttl): (u32, i64, u32, i64) = self.run(&pipe).await?;
                [(a, a_ttl), (b, b_ttl)]
            }
            Counters::Local(map) => {
                let now = Instant::now();
                let mut map = lock(map);
                map.retain(|_, (_, until)| *until > now);
                let mut take = |key: String| {
                    let (count, until) = map
                        .entry(key)
                        .or_insert((0, now + Duration::from_secs(window)));
                    *count += 1;
                    (
                        *count,
                        i64::try_from((*until - now).as_secs()).unwrap_or(0) + 1,
                    )
                };
                [take(keys.account), take(keys.address)]
            }
        };
        let over = [
            (account > self.limits.per_account, account_ttl),
            (address_count > self.limits.per_address, address_ttl),
        ];
        match over
            .iter()
            .filter(|(hit, _)| *hit)
            .map(|(_, ttl)| *ttl)
            .max()
        {
            None => Ok(()),
            Some(ttl) => {
                let message = match self.kind {
                    Kind::Login => {
                        metrics::counter!("auth_login_throttled_total").increment(1);
                        "too many failed logins; try again later"
                    }
                    Kind::Bearer => {
                        metrics::counter!("auth_bearer_throttled_total").increment(1);
                        "too many failed authentications; try again later"
                    }
                };
                let wait = u64::try_from(ttl).unwrap_or(self.limits.window_seconds);
                Err(Problem::too_many_requests(
                    message,
                    wait.clamp(1, self.limits.window_seconds),
                ))
            }
        }
    }

    /// A successful login clears the account's failures and does not count against the
    /// address.
    pub async fn succeeded(&self, email: &str, address: &str) -> Result<(), Problem> {
        self.give_back(email, address, true).await
    }

    /// An attempt that was not a failed guess (config could not answer) counts against
    /// neither.
    pub async fn refund(&self, email: &str, address: &str) -> Result<(), Problem> {
        self.give_back(email, address, false).await
    }

    async fn give_back(&self, email: &str, address: &str, clear: bool) -> Result<(), Problem> {
        let keys = self.keys(email, address);
        match &self.counters {
            Counters::Redis { .. } => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                if clear {
                    pipe.del(&keys.account).ignore();
                } else {
                    pipe.decr(&keys.account, 1).ignore();
                }
                pipe.decr(&keys.address, 1).ignore();
                self.run::<()>(&pipe).await
            }
            Counters::Local(map) => {
                let mut map = lock(map);
                if clear {
                    map.remove(&keys.account);
                } else if let Some((count, _)) = map.get_mut(&keys.account) {
                    *count = count.saturating_sub(1);
                }
                if let Some((count, _)) = map.get_mut(&keys.address) {
                    *count = count.saturating_sub(1);
                }
                Ok(())
            }
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, Problem> {
        let Counters::Redis {
            client, connection, ..
        } = &self.counters
        else {
            return Err(Problem::internal("not counting in Redis"));
        };
        let run = async {
            let connection = connection
                .get_or_try_init(|| client.get_connection_manager())
                .await?;
            pipe.query_async::<T>(&mut connection.clone()).await
        };
        match tokio::time::timeout(REDIS_TIMEOUT, run).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Problem::unavailable(format!("Redis: {e}"))),
            Err(_) => Err(Problem::unavailable("Redis did not answer in time")),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters hold no invariant a panicking holder could break halfway.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits {
            per_account: 3,
            per_address: 5,
            window_seconds: 60,
        }
    }

    #[tokio::test]
    async fn an_account_is_throttled_after_its_limit() {
        let throttle = LoginThrottle::local(limits());
        for _ in 0..3 {
            throttle
                .attempt("A@example.com ", "10.0.0.1")
                .await
                .unwrap();
        }
        let refused = throttle
            .attempt("a@example.com", "10.0.0.2")
            .await
            .unwrap_err();
        assert_eq!(refused.status().as_u16(), 429);
        // Another account from another address is unaffected.
        throttle.attempt("b@example.com", "10.0.0.3").await.unwrap();
        // Success clears the account.
        throttle
            .succeeded("a@example.com", "10.0.0.2")
            .await
            .unwrap();
        throttle.attempt("a@example.com", "10.0.0.4").await.unwrap();
    }

    #[tokio::test]
    async fn an_address_is_throttled_across_accounts() {
        let throttle = LoginThrottle::local(limits());
        for i in 0..5 {
            throttle
                .attempt(&format!("user{i}@example.com"), "10.0.0.9")
                .await
                .unwrap();
        }
        let refused = throttle
            .attempt("new@example.com", "10.0.0.9")
            .await
            .unwrap_err();
        assert_eq!(refused.status().as_u16(), 429);
        throttle
            .attempt("new@example.com", "10.0.0.10")
            .await
            .unwrap();
    }

    /// Guesses sent in parallel each take their number before any password is checked, so no
    /// more than the limit get through however many race (in Redis, as replicas share it).
    #[tokio::test]
    async fn parallel_guesses_never_pass_the_limit() {
        let url = std::env::var("FLOWPLANE_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("throttle-test-{}", uuid::Uuid::new_v4().simple());
        let throttle = std::sync::Arc::new(LoginThrottle::redis(&url, &prefix, limits()).unwrap());
        let guesses = (0..40).map(|i| {
            let throttle = throttle.clone();
            tokio::spawn(async move {
                throttle
                    .attempt("target@example.com", &format!("10.1.0.{i}"))
                    .await
            })
        });
        let mut allowed = 0;
        for guess in futures::future::join_all(guesses).await {
            match guess.unwrap() {
                Ok(()) => allowed += 1,
                Err(p) => assert_eq!(p.status().as_u16(), 429, "Redis must be running"),
            }
        }
        assert_eq!(
            allowed, 3,
            "exactly the account's limit reached the password check"
        );
        let local = std::sync::Arc::new(LoginThrottle::local(limits()));
        let guesses = (0..40).map(|i| {
            let local = local.clone();
            tokio::spawn(
                async move { local.attempt("t@example.com", &format!("10.2.0.{i}")).await },
            )
        });
        let allowed = futures::future::join_all(guesses)
            .await
            .into_iter()
            .filter(|g| matches!(g, Ok(Ok(()))))
            .count();
        assert_eq!(allowed, 3);
    }

    #[tokio::test]
    async fn an_unreachable_redis_refuses_rather_than_letting_guesses_through() {
        let throttle = LoginThrottle::redis("redis://127.0.0.1:1", "test", limits()).unwrap();
        let refused = throttle
            .attempt("a@example.com", "10.0.0.1")
            .await
            .unwrap_err();
        assert_eq!(refused.status().as_u16(), 503);
    }
}
