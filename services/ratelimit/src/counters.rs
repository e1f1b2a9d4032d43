//! Fixed-window counters: Redis when configured (shared by every replica), or this process.
//! A counter's key names its window, so it expires on its own once the window has passed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// Envoy waits on every answer; a Redis that does not reply must not hold requests longer.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// One counter to add to: `key` already names the window; it lives `ttl_seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Increment {
    pub key: String,
    pub hits: u64,
    pub ttl_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {REDIS_TIMEOUT:?}")]
    Timeout,
}

pub enum Counters {
    Redis {
        client: redis::Client,
        /// Connected on first use, so the service starts (and Envoy fails open, or closed,
        /// as configured) while Redis is away.
        connection: OnceCell<ConnectionManager>,
    },
    Local(Mutex<HashMap<String, (u64, Instant)>>),
}

impl Counters {
    pub fn redis(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("FLOWPLANE_REDIS_URL is not a valid Redis URL: {e}"))?;
        Ok(Self::Redis {
            client,
            connection: OnceCell::new(),
        })
    }

    pub fn local() -> Self {
        Self::Local(Mutex::new(HashMap::new()))
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Counters::Redis { .. } => "Redis (shared by every ratelimit replica)",
            Counters::Local(_) => "in-process (this replica only)",
        }
    }

    /// Adds each increment and returns the counts after it, in order. All of a request's
    /// counters move in one Redis transaction (one round trip).
    pub async fn add(&self, increments: &[Increment]) -> Result<Vec<u64>, CounterError> {
        match self {
            Counters::Redis { client, connection } => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for increment in increments {
                    pipe.incr(&increment.key, increment.hits);
                    // NX: only the window's first hit sets the expiry (Redis 7+).
                    pipe.cmd("EXPIRE")
                        .arg(&increment.key)
                        .arg(increment.ttl_seconds)
                        .arg("NX")
                        .ignore();
                }
                let run = async {
                    let connection = connection
                        .get_or_try_init(|| client.get_connection_manager())
                        .await?;
                    pipe.query_async::<Vec<u64>>(&mut connection.clone()).await
                };
                match tokio::time::timeout(REDIS_TIMEOUT, run).await {
                    Ok(result) => Ok(result?),
                    Err(_) => Err(CounterError::Timeout),
                }
            }
            Counters::Local(map) => {
                let now = Instant::now();
                // Counters hold no invariant a panicking holder could break halfway.
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.retain(|_, (_, until)| *until > now);
                Ok(increments
                    .iter()
                    .map(|i| {
                        let until = now + Duration::from_secs(i.ttl_seconds);
                        let entry = map.entry(i.key.clone()).or_insert((0, until));
                        entry.0 += i.hits;
                        entry.0
                    })
                    .collect())
            }
        }
    }
}
