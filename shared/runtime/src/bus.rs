//! The change-event bus between config (publisher) and xds-server replicas (subscribers).
//!
//! In production this is a NATS JetStream stream: durable, de-duplicated through `Nats-Msg-Id`
//! `{installation}.{epoch}.{revision}`, so a relay that publishes the same revision twice
//! (after a crash between publish and bookkeeping) delivers it once, while another database's
//! revision N (a second installation, a fresh database, a restored backup) is a message of its
//! own. Every event names its installation and epoch; subscribers check them. For a single-process laptop run without NATS, an
//! in-process broadcast channel stands in with the same interface.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_nats::jetstream::{self, consumer, stream};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

/// The default prefix; deployments sharing one NATS pick their own (`FLOWPLANE_NATS_PREFIX`).
pub const DEFAULT_PREFIX: &str = "flowplane";
const REVISION_HEADER: &str = "Flowplane-Revision";
const INSTALLATION_HEADER: &str = "Flowplane-Installation";
const EPOCH_HEADER: &str = "Flowplane-Epoch";
const MAC_HEADER: &str = "Flowplane-Mac";
const WRITE_HEADER: &str = "Flowplane-Write";

/// The JetStream stream for a prefix (`flowplane` → `FLOWPLANE_CHANGES`).
pub fn stream_name(prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}_CHANGES")
}

/// The subject change events travel on for a prefix.
pub fn subject(prefix: &str) -> String {
    format!("{prefix}.changes.v1")
}

/// One published change: whose it is, its revision, the encoded event, and config's MAC over
/// all three ([`EventKey`]).
#[derive(Debug, Clone)]
pub struct Event {
    pub origin: Origin,
    pub revision: i64,
    pub payload: Vec<u8>,
    /// Hex HMAC-SHA256; empty on an event that carries none (which no replica applies).
    pub mac: String,
    /// Which write this is, unique per write: a restored database's other write under a
    /// revision it had published is told apart from the same write published again.
    pub write: String,
    /// The W3C `traceparent` of the request that made the change (empty when spans are not
    /// exported): advice for tracing only, outside the MAC.
    pub trace: String,
}

impl Event {
    /// Write `write`'s event, signed with `key`.
    pub fn signed(
        key: &EventKey,
        origin: Origin,
        revision: i64,
        payload: Vec<u8>,
        write: String,
    ) -> Self {
        let mac = key.mac(&origin, revision, &payload);
        Self {
            origin,
            revision,
            payload,
            mac,
            write,
            trace: String::new(),
        }
    }
}

/// The key change events are signed with: config signs every event it publishes, and a
/// replica applies only events whose MAC it can check, so whatever else reaches NATS cannot
/// put config into any team's Envoys.
#[derive(Clone)]
pub struct EventKey([u8; 32]);

impl std::fmt::Debug for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventKey(<redacted>)")
    }
}

impl EventKey {
    /// config's key (derived from the service secret).
    pub fn of(secret: &crate::credential::ServiceSecret) -> Self {
        Self(secret.derive("flowplane change events v1"))
    }

    /// The key config handed a replica.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        Ok(Self(bytes.try_into().map_err(|_| {
            anyhow!("a change-event key is 32 bytes, not {}", bytes.len())
        })?))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self, origin: &Origin, revision: i64, payload: &[u8]) -> String {
        // The message id is unambiguous (installation and epoch hold no dots), the payload
        // follows it whole.
        let id = origin.message_id(revision);
        let len = (id.len() as u64).to_be_bytes();
        hex::encode(crate::credential::hmac_sha256(
            &self.0,
            &[&len, id.as_bytes(), payload],
        ))
    }

    /// Whether `event` is what config signed.
    pub fn verify(&self, event: &Event) -> bool {
        let expected = self.mac(&event.origin, event.revision, &event.payload);
        crate::credential::constant_time_eq(expected.as_bytes(), event.mac.as_bytes())
    }
}

/// The database an event comes from: its installation and the epoch of its revision sequence.
/// Empty strings for an event that names none (published by an older Flowplane).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub installation: String,
    pub epoch: String,
}

impl Origin {
    /// The de-duplication key of revision `revision` of this origin.
    fn message_id(&self, revision: i64) -> String {
        format!("{}.{}.{revision}", self.installation, self.epoch)
    }
}

/// What the bus did with a published revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Stored and delivered.
    New,
    /// The bus already held this very event (a relay publishing again after a crash between
    /// publishing and recording it): delivered once, as it should be.
    Repeated,
    /// The bus already holds another event under this revision's id: the database is behind
    /// what it published before (restored from a backup) and re-used the revision. Nothing was
    /// delivered; the publisher must publish under a new epoch.
    Clashed,
}

#[derive(Clone)]
pub enum Bus {
    Nats(Box<NatsBus>),
    Local(LocalBus),
}

/// The in-process bus: events, and the questions [`Gather`] asks, each a broadcast channel
/// shared by every clone.
#[derive(Clone)]
pub struct LocalBus {
    events: broadcast::Sender<Event>,
    questions: broadcast::Sender<Question>,
}

#[derive(Clone)]
pub struct NatsBus {
    jetstream: jetstream::Context,
    /// Redacted: for logs and errors.
    url: String,
    stream: String,
    subject: String,
}

pub type EventStream = Pin<Box<dyn Stream<Item = anyhow::Result<Event>> + Send>>;

impl Bus {
    /// Connects to NATS and makes sure the stream for `prefix` exists (config's start).
    pub async fn nats(settings: &NatsSettings, prefix: &str) -> anyhow::Result<Self> {
        let bus = Self::nats_subscriber(settings, prefix).await?;
        let Self::Nats(nats) = &bus else {
            unreachable!("nats_subscriber makes a NATS bus")
        };
        // A bounded retry: with retry_on_initial_connect the first requests wait for the server.
        let config = stream::Config {
            name: nats.stream.clone(),
            subjects: vec![nats.subject.clone()],
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        tokio::time::timeout(
            Duration::from_secs(10),
            nats.jetstream.get_or_create_stream(config),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "NATS at {} did not answer within 10s",
                settings.redacted_url()
            )
        })?
        .map_err(|e| anyhow!("creating JetStream stream {}: {e}", nats.stream))?;
        Ok(bus)
    }

    /// A subscriber's bus: connects in the background and creates nothing, so a replica starts
    /// (and serves) while NATS is away; [`Bus::subscribe`] fails until NATS and the stream
    /// (config's to create) are there.
    pub async fn nats_subscriber(settings: &NatsSettings, prefix: &str) -> anyhow::Result<Self> {
        Ok(Self::Nats(Box::new(NatsBus {
            jetstream: jetstream::new(connect(settings).await?),
            url: settings.redacted_url(),
            stream: stream_name(prefix),
            subject: subject(prefix),
        })))
    }

    /// An in-process bus for single-process runs.
    pub fn local() -> Self {
        let (events, _) = broadcast::channel(4096);
        let (questions, _) = broadcast::channel(64);
        Self::Local(LocalBus { events, questions })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Nats(n) => format!("NATS JetStream at {} (stream {})", n.url, n.stream),
            Self::Local(_) => "in-process bus".into(),
        }
    }

    /// Publishes one revision and waits for the bus to hold it durably. A message id the bus
    /// already holds is compared with what it holds: the same event again is
    /// [`Published::Repeated`], another event under the same id is [`Published::Clashed`]
    /// (and was not delivered).
    pub async fn publish(&self, event: Event) -> anyhow::Result<Published> {
        match self {
            Self::Nats(nats) => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(
                    "Nats-Msg-Id",
                    event.origin.message_id(event.revision).as_str(),
                );
                headers.insert(REVISION_HEADER, event.revision.to_string().as_str());
                headers.insert(INSTALLATION_HEADER, event.origin.installation.as_str());
                headers.insert(EPOCH_HEADER, event.origin.epoch.as_str());
                headers.insert(MAC_HEADER, event.mac.as_str());
                headers.insert(WRITE_HEADER, event.write.as_str());
                if !event.trace.is_empty() {
                    headers.insert(crate::telemetry::TRACEPARENT, event.trace.as_str());
                }
                let ack = nats
                    .jetstream
                    .publish_with_headers(nats.subject.clone(), headers, event.payload.into())
                    .await
                    .map_err(|e| anyhow!("publishing revision {}: {e}", event.revision))?;
                let ack = tokio::time::timeout(Duration::from_secs(5), ack)
                    .await
                    .map_err(|_| anyhow!("JetStream did not acknowledge within 5s"))?
                    .map_err(|e| anyhow!("JetStream refused revision: {e}"))?;
                if !ack.duplicate {
                    return Ok(Published::New);
                }
                // The ack of a duplicate names the message held under the id: the same write
                // (and authentic, which the MAC over id and payload shows) is a repeat.
                let held = tokio::time::timeout(Duration::from_secs(5), async {
                    let stream = nats.jetstream.get_stream(&nats.stream).await?;
                    let held = stream.get_raw_message(ack.sequence).await?;
                    anyhow::Ok(held)
                })
                .await
                .map_err(|_| {
                    anyhow!(
                        "JetStream did not return message {} within 5s",
                        ack.sequence
                    )
                })?
                .map_err(|e| {
                    anyhow!(
                        "reading message {} held under revision {}'s id: {e}",
                        ack.sequence,
                        event.revision
                    )
                })?;
                let held_header = |name| held.headers.get(name).map(|v| v.as_str());
                let same = held_header(MAC_HEADER) == Some(event.mac.as_str())
                    && held_header(WRITE_HEADER) == Some(event.write.as_str());
                Ok(if same {
                    Published::Repeated
                } else {
                    Published::Clashed
                })
            }
            Self::Local(local) => {
                // No receivers is fine: nobody is listening yet.
                let _ = local.events.send(event);
                Ok(Published::New)
            }
        }
    }

    /// Events published from now on, in order. A consumer must still check revisions for gaps:
    /// the stream's own recovery can skip, and the in-process bus drops events for a lagging
    /// receiver (reported as an error item).
    pub async fn subscribe(&self) -> anyhow::Result<EventStream> {
        match self {
            Self::Nats(nats) => {
                // Bounded: while NATS is away, requests would otherwise wait for it.
                let subscribing = async {
                    let stream = nats
                        .jetstream
                        .get_stream(&nats.stream)
                        .await
                        .map_err(|e| anyhow!("opening stream {}: {e}", nats.stream))?;
                    let consumer = stream
                        .create_consumer(consumer::pull::OrderedConfig {
                            deliver_policy: consumer::DeliverPolicy::New,
                            filter_subject: nats.subject.clone(),
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| anyhow!("creating consumer: {e}"))?;
                    consumer
                        .messages()
                        .await
                        .map_err(|e| anyhow!("subscribing: {e}"))
                };
                let messages = tokio::time::timeout(Duration::from_secs(5), subscribing)
                    .await
                    .map_err(|_| anyhow!("NATS at {} did not answer within 5s", nats.url))??;
                Ok(Box::pin(messages.map(|message| {
                    let message = message.map_err(|e| anyhow!("bus: {e}"))?;
                    let header = |name: &str| {
                        message
                            .headers
                            .as_ref()
                            .and_then(|h| h.get(name))
                            .map(|v| v.as_str().to_string())
                    };
                    let revision = header(REVISION_HEADER)
                        .and_then(|v| v.parse::<i64>().ok())
                        .ok_or_else(|| anyhow!("event without a {REVISION_HEADER} header"))?;
                    Ok(Event {
                        origin: Origin {
                            installation: header(INSTALLATION_HEADER).unwrap_or_default(),
                            epoch: header(EPOCH_HEADER).unwrap_or_default(),
                        },
                        revision,
                        payload: message.payload.to_vec(),
                        mac: header(MAC_HEADER).unwrap_or_default(),
                        write: header(WRITE_HEADER).unwrap_or_default(),
                        trace: header(crate::telemetry::TRACEPARENT).unwrap_or_default(),
                    })
                })))
            }
            Self::Local(local) => {
                let rx = local.events.subscribe();
                Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
                    match rx.recv().await {
                        Ok(event) => Some((Ok(event), rx)),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            Some((Err(anyhow!("lagged behind by {n} events")), rx))
                        }
                        Err(broadcast::error::RecvError::Closed) => None,
                    }
                })))
            }
        }
    }
}

/// How the services reach NATS: `FLOWPLANE_NATS_URL` (credentials in the URL:
/// `nats://user:password@host` or `nats://token@host`; `tls://host` requires TLS) and,
/// for TLS, `FLOWPLANE_NATS_CA_FILE` (the CA that signed NATS's certificate; setting it
/// requires TLS whatever the scheme) and, when NATS asks clients for a certificate,
/// `FLOWPLANE_NATS_TLS_CERT_FILE` + `FLOWPLANE_NATS_TLS_KEY_FILE`.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsSettings {
    pub url: String,
    pub ca_file: Option<PathBuf>,
    pub client_tls: Option<crate::tls::TlsFiles>,
}

impl NatsSettings {
    pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

    /// Plain NATS at `url`.
    pub fn at(url: &str) -> Self {
        Self {
            url: url.to_string(),
            ca_file: None,
            client_tls: None,
        }
    }

    /// The settings from the environment, [`Self::DEFAULT_URL`] when the URL is unset.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            url: crate::env::string("FLOWPLANE_NATS_URL", Self::DEFAULT_URL),
            ca_file: crate::env::optional("FLOWPLANE_NATS_CA_FILE").map(PathBuf::from),
            client_tls: crate::tls::TlsFiles::from_env("FLOWPLANE_NATS")?,
        })
    }

    /// The URL with its password hidden, for logs.
    pub fn redacted_url(&self) -> String {
        crate::env::redact_url(&self.url)
    }
}

/// Never prints the password.
impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &self.redacted_url())
            .field("ca_file", &self.ca_file)
            .field("client_tls", &self.client_tls)
            .finish()
    }
}

/// A NATS client that keeps (re)connecting in the background: it never waits for the server,
/// and requests made while it is away wait for it instead.
///
/// async-nats parses credentials in the URL but does not send them, so they are handed over
/// here.
async fn connect(settings: &NatsSettings) -> anyhow::Result<async_nats::Client> {
    let url = settings.url.as_str();
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .retry_on_initial_connect();
    for server in url.split(',') {
        let addr: async_nats::ServerAddr = server
            .trim()
            .parse()
            .map_err(|e| anyhow!("FLOWPLANE_NATS_URL {}: {e}", settings.redacted_url()))?;
        match (addr.username(), addr.password()) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.to_string(), password.to_string());
                break;
            }
            (Some(token), None) => {
                options = options.token(token.to_string());
                break;
            }
            _ => {}
        }
    }
    if let Some(ca) = &settings.ca_file {
        // Read here, so a missing file stops the start rather than every reconnect.
        std::fs::metadata(ca)
            .with_context(|| format!("FLOWPLANE_NATS_CA_FILE {}", ca.display()))?;
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some(client) = &settings.client_tls {
        for file in [&client.cert, &client.key] {
            std::fs::metadata(file)
                .with_context(|| format!("NATS client TLS file {}", file.display()))?;
        }
        options = options
            .add_client_certificate(client.cert.clone(), client.key.clone())
            .require_tls(true);
    }
    options
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {}", settings.redacted_url()))
}

/// The subject token-invalidated notices travel on for a prefix.
pub fn auth_subject(prefix: &str) -> String {
    format!("{prefix}.auth.v1")
}

/// A lightweight channel, separate from the change stream, on which config announces that a
/// token was revoked, rotated or re-scoped, so every api-gateway replica drops it from its
/// credential cache at once. Core NATS pub/sub, not JetStream: a lost notice only lasts until
/// the cache entry's TTL runs out, so durability would buy nothing. A notice names the token
/// id (never a secret) and config's installation, so a gateway ignores another installation's
/// notices on a shared NATS (`{installation} {id}` on the wire).
#[derive(Clone)]
pub struct AuthNotices {
    channel: NoticeChannel,
    /// The installation this side publishes as; empty for a subscriber.
    installation: String,
}

#[derive(Clone)]
enum NoticeChannel {
    Nats {
        client: async_nats::Client,
        subject: String,
    },
    Local(broadcast::Sender<String>),
}

/// One token-invalidated notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The installation whose config sent it; `None` from a config that named none.
    pub installation: Option<String>,
    /// The token or session id to forget.
    pub id: String,
}

impl Notice {
    fn parse(text: &str) -> Self {
        match text.split_once(' ') {
            Some((installation, id)) => Self {
                installation: Some(installation.to_string()),
                id: id.to_string(),
            },
            None => Self {
                installation: None,
                id: text.to_string(),
            },
        }
    }
}

pub type NoticeStream = Pin<Box<dyn Stream<Item = Notice> + Send>>;

impl Bus {
    /// The notice channel that goes with this bus: the same NATS connection, or (for the
    /// in-process bus) a new in-process channel that must be shared by cloning it.
    pub fn auth_notices(&self) -> AuthNotices {
        match self {
            Self::Nats(nats) => {
                let prefix = nats
                    .subject
                    .strip_suffix(".changes.v1")
                    .unwrap_or(DEFAULT_PREFIX);
                AuthNotices::on(NoticeChannel::Nats {
                    client: nats.jetstream.client(),
                    subject: auth_subject(prefix),
                })
            }
            Self::Local(_) => AuthNotices::local(),
        }
    }
}

impl AuthNotices {
    fn on(channel: NoticeChannel) -> Self {
        Self {
            channel,
            installation: String::new(),
        }
    }

    /// Connects to NATS without waiting for it: the client keeps retrying in the background,
    /// so a gateway starts (and serves) even while NATS is away.
    pub async fn nats(settings: &NatsSettings, prefix: &str) -> anyhow::Result<Self> {
        Ok(Self::on(NoticeChannel::Nats {
            client: connect(settings).await?,
            subject: auth_subject(prefix),
        }))
    }

    /// An in-process channel for single-process runs.
    pub fn local() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self::on(NoticeChannel::Local(tx))
    }

    /// The same channel, publishing as `installation` (config, once it knows its database).
    pub fn from_installation(mut self, installation: &str) -> Self {
        self.installation = installation.to_string();
        self
    }

    /// The installation this side publishes as (empty until set).
    pub fn installation(&self) -> &str {
        &self.installation
    }

    /// Announces that `token_id` must no longer be served from any cache. Best effort: a
    /// failure is logged, and the cache TTL bounds how long a missed notice matters.
    pub async fn token_invalidated(&self, token_id: &str) {
        let text = if self.installation.is_empty() {
            token_id.to_string()
        } else {
            format!("{} {token_id}", self.installation)
        };
        match &self.channel {
            NoticeChannel::Nats { client, subject } => {
                let sent = async {
                    client
                        .publish(subject.clone(), text.into())
                        .await
                        .map_err(|e| anyhow!("{e}"))?;
                    client.flush().await.map_err(|e| anyhow!("{e}"))
                };
                match tokio::time::timeout(Duration::from_secs(2), sent).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(token_id, error = %e, "could not publish a token-invalidated notice")
                    }
                    Err(_) => {
                        tracing::warn!(token_id, "publishing a token-invalidated notice timed out")
                    }
                }
            }
            NoticeChannel::Local(tx) => {
                let _ = tx.send(text);
            }
        }
    }

    /// Notices from now on.
    pub async fn subscribe(&self) -> anyhow::Result<NoticeStream> {
        match &self.channel {
            NoticeChannel::Nats { client, subject } => {
                let subscriber = client
                    .subscribe(subject.clone())
                    .await
                    .map_err(|e| anyhow!("subscribing to {subject}: {e}"))?;
                Ok(Box::pin(subscriber.map(|message| {
                    Notice::parse(&String::from_utf8_lossy(&message.payload))
                })))
            }
            NoticeChannel::Local(tx) => {
                let rx = tx.subscribe();
                Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
                    loop {
                        match rx.recv().await {
                            Ok(text) => return Some((Notice::parse(&text), rx)),
                            // A lagging receiver only loses notices; the cache TTL covers them.
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                })))
            }
        }
    }

    pub fn describe(&self) -> String {
        match &self.channel {
            NoticeChannel::Nats { subject, .. } => format!("NATS subject {subject}"),
            NoticeChannel::Local(_) => "in-process notices".into(),
        }
    }
}

/// The subject [`Gather`] questions travel on for a prefix.
pub fn gather_subject(prefix: &str) -> String {
    format!("{prefix}.gather.v1")
}

type Question = (Vec<u8>, tokio::sync::mpsc::Sender<Vec<u8>>);

/// Scatter-gather over the bus: config asks every xds-server replica at once and collects the
/// answers that arrive within a window (core NATS request with many replies; no registry of
/// replicas, so one that starts or stops is simply in or out of the next answer). For
/// questions about what replicas hold in memory, such as which Envoys each serves.
#[derive(Clone)]
pub struct Gather {
    channel: GatherChannel,
}

#[derive(Clone)]
enum GatherChannel {
    Nats {
        client: async_nats::Client,
        subject: String,
    },
    Local(broadcast::Sender<Question>),
}

impl Bus {
    /// The scatter-gather channel that goes with this bus.
    pub fn gather(&self) -> Gather {
        let channel = match self {
            Self::Nats(nats) => GatherChannel::Nats {
                client: nats.jetstream.client(),
                subject: gather_subject(
                    nats.subject
                        .strip_suffix(".changes.v1")
                        .unwrap_or(DEFAULT_PREFIX),
                ),
            },
            Self::Local(local) => GatherChannel::Local(local.questions.clone()),
        };
        Gather { channel }
    }
}

impl Gather {
    /// Asks every answerer; the answers that arrive within `window` (fewer when the bus is
    /// away: a missing replica's Envoys are simply not in the answer).
    pub async fn ask(&self, question: Vec<u8>, window: Duration) -> anyhow::Result<Vec<Vec<u8>>> {
        let deadline = tokio::time::sleep(window);
        tokio::pin!(deadline);
        let mut answers = Vec::new();
        match &self.channel {
            GatherChannel::Nats { client, subject } => {
                let inbox = client.new_inbox();
                let mut replies = client
                    .subscribe(inbox.clone())
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                client
                    .publish_with_reply(subject.clone(), inbox, question.into())
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                client.flush().await.map_err(|e| anyhow!("{e}"))?;
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        reply = replies.next() => match reply {
                            Some(reply) => answers.push(reply.payload.to_vec()),
                            None => break,
                        },
                    }
                }
            }
            GatherChannel::Local(questions) => {
                let (tx, mut rx) = tokio::sync::mpsc::channel(64);
                // No answerer is fine: the answer is empty.
                let _ = questions.send((question, tx));
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        // Ends early once every answerer has answered (and dropped its sender).
                        reply = rx.recv() => match reply {
                            Some(reply) => answers.push(reply),
                            None => break,
                        },
                    }
                }
            }
        }
        Ok(answers)
    }

    /// Answers every question with `answer` (which may decline with `None`) until `shutdown`.
    pub async fn answer<F>(&self, answer: F, shutdown: crate::shutdown::Shutdown)
    where
        F: Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
    {
        match &self.channel {
            GatherChannel::Nats { client, subject } => {
                let mut questions = match client.subscribe(subject.clone()).await {
                    Ok(questions) => questions,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot answer gather questions");
                        return;
                    }
                };
                loop {
                    let question = tokio::select! {
                        q = questions.next() => match q { Some(q) => q, None => return },
                        _ = shutdown.clone().wait() => return,
                    };
                    if let (Some(reply), Some(answer)) = (question.reply, answer(&question.payload))
                        && let Err(e) = client.publish(reply, answer.into()).await
                    {
                        tracing::warn!(error = %e, "could not answer a gather question");
                    }
                }
            }
            GatherChannel::Local(questions) => {
                let mut questions = questions.subscribe();
                loop {
                    let (question, reply) = tokio::select! {
                        q = questions.recv() => match q {
                            Ok(q) => q,
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        _ = shutdown.clone().wait() => return,
                    };
                    if let Some(answer) = answer(&question) {
                        let _ = reply.send(answer).await;
                    }
                }
            }
        }
    }
}
