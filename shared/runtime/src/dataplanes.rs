//! Who the Envoy calling ratelimit or learning is: config answers whether a token is a live
//! dataplane's (`DataplaneService.Verify`), and [`DataplaneVerifier`] keeps each answer for
//! [`FRESH_FOR`], so a deleted dataplane's token stops working within seconds while the hot
//! path asks config about once per dataplane per few seconds. While config cannot be reached,
//! a token config vouched for within [`TRUSTED_WHILE_CONFIG_IS_AWAY`] keeps working (the
//! traffic it carries should not stop because the control plane restarts); anything else is
//! refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flowplane_proto::state::v1::VerifyDataplaneRequest;
use flowplane_proto::state::v1::dataplane_service_client::DataplaneServiceClient;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::credential::ClientCredential;

/// How long one answer from config is used.
pub const FRESH_FOR: Duration = Duration::from_secs(5);
/// How long a token config accepted keeps working while config does not answer.
pub const TRUSTED_WHILE_CONFIG_IS_AWAY: Duration = Duration::from_secs(300);
/// The longest a question to config may take.
const DEADLINE: Duration = Duration::from_secs(3);
/// Answers kept at most; past it, stale ones go first, then all.
const CAPACITY: usize = 10_000;

type Client = DataplaneServiceClient<InterceptedService<Channel, ClientCredential>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    team: String,
    dataplane: String,
    token: String,
}

#[derive(Debug, Clone, Copy)]
struct Answer {
    valid: bool,
    at: Instant,
}

pub struct DataplaneVerifier {
    client: Client,
    answers: Mutex<HashMap<Key, Answer>>,
}

impl DataplaneVerifier {
    pub fn new(channel: Channel, credential: ClientCredential) -> Self {
        Self {
            client: DataplaneServiceClient::with_interceptor(channel, credential),
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `token` is the token of dataplane `dataplane` of `team`, and that dataplane
    /// exists. `Err` only when config cannot answer and no recent answer vouches for it.
    pub async fn verify(&self, team: &str, dataplane: &str, token: &str) -> Result<bool, Status> {
        if token.is_empty() || team.is_empty() || dataplane.is_empty() {
            return Ok(false);
        }
        let key = Key {
            team: team.to_string(),
            dataplane: dataplane.to_string(),
            token: token.to_string(),
        };
        let known = self.lock().get(&key).copied();
        if let Some(answer) = known.filter(|a| a.at.elapsed() < FRESH_FOR) {
            return Ok(answer.valid);
        }
        let asked = tokio::time::timeout(
            DEADLINE,
            self.client.clone().verify(VerifyDataplaneRequest {
                team: key.team.clone(),
                dataplane_id: key.dataplane.clone(),
                token: key.token.clone(),
            }),
        )
        .await;
        match asked {
            Ok(Ok(response)) => {
                let valid = response.into_inner().valid;
                self.remember(key, valid);
                Ok(valid)
            }
            Ok(Err(status)) => self.config_away(known, &status.to_string()),
            Err(_) => self.config_away(known, "no answer within the deadline"),
        }
    }

    fn config_away(&self, known: Option<Answer>, why: &str) -> Result<bool, Status> {
        metrics::counter!("dataplane_verifications_unanswered_total").increment(1);
        match known {
            Some(answer) if answer.valid && answer.at.elapsed() < TRUSTED_WHILE_CONFIG_IS_AWAY => {
                Ok(true)
            }
            _ => {
                tracing::warn!(error = why, "config cannot verify a dataplane token");
                Err(Status::unavailable(
                    "cannot verify the dataplane token now; try again",
                ))
            }
        }
    }

    fn remember(&self, key: Key, valid: bool) {
        let mut answers = self.lock();
        if answers.len() >= CAPACITY {
            answers.retain(|_, a| a.at.elapsed() < FRESH_FOR);
            if answers.len() >= CAPACITY {
                answers.clear();
            }
        }
        answers.insert(
            key,
            Answer {
                valid,
                at: Instant::now(),
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Answer>> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
