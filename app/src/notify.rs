//! Notifications outside the app (issue 16), delivered off the request path
//! from the log, through the store's outbox:
//!
//! 1. [`Outbox`], a consumer of the node's log follower registered after the
//!    read model, turns each page into outbox rows, one per (log position,
//!    person, channel) the person's preferences ask for, and moves the
//!    checkpoint of each partition the page has events of, in one
//!    transaction and only from the checkpoints it read
//!    (`CommunicationStore::enqueue`): a restart, or a node taking a school
//!    over, resumes from the partition's checkpoint (nothing lost), a second
//!    node or a page handed again adds nothing (nothing twice). Every node
//!    fills it for the partitions it folds: a node serving a set, its set's
//!    establishments and the directory; a node folding everything, every
//!    partition (cluster, issue 12; decision 0021).
//! 2. [`run_sender`] claims due rows of the partitions this node folds
//!    under a lease (one sender per notification, whichever node), composes
//!    the notice from its read model, sends it (Web Push: `webpush`; e-mail:
//!    `mail`), and settles the row: delivered, retried with doubling delay,
//!    or given up. A push subscription its service answers 404 or 410 to is
//!    dropped (`WebPushDropped`, a system command).
//!
//! Logs and counters carry ids and channels only.

pub mod mail;
pub mod webpush;

pub use webpush::VapidKey;

use crate::commands::{new_id, CommandContext};
use crate::communication::CommunicationConfig;
use crate::App;
use async_trait::async_trait;
use chrono::Utc;
use parking_lot::Mutex;
use registre_domain::communication::{Channel, DropWebPush, NotificationKind};
use registre_domain::WebPushId;
use registre_domain::{AbsenceId, DomainEvent, GradeId, MessageId, PersonId};
use registre_projections::{LogConsumer, LoggedEvent, Page, ProjectionError, ReadModel};
use registre_store::communication::{
    Attempt, CheckpointMove, CommunicationStore, OutboxEntry, OutboxItem,
};
use registre_store::{Partition, Position};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::Notify;

/// What a person is told: a title (the mail's subject, naming no one) and
/// a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub kind: NotificationKind,
    pub about: uuid::Uuid,
    pub title: String,
    pub text: String,
}

impl Notice {
    /// The push payload: JSON the service worker shows.
    fn push_payload(&self) -> Vec<u8> {
        serde_json::json!({
            "kind": self.kind.as_str(),
            "id": self.about,
            "title": self.title,
            "body": self.text,
        })
        .to_string()
        .into_bytes()
    }
}

/// Counters of the delivery (exported on /metrics).
#[derive(Debug, Default)]
pub struct NotifyStats {
    pub enqueued: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub subscriptions_dropped: AtomicU64,
}

/// The channels this node can deliver on.
fn channels(config: &CommunicationConfig) -> Vec<Channel> {
    let mut out = Vec::new();
    if config.vapid.is_some() {
        out.push(Channel::WebPush);
    }
    if config.smtp.is_some() {
        out.push(Channel::Email);
    }
    out
}

/// Who an event notifies, about what.
fn audience(
    m: &ReadModel,
    event: &DomainEvent,
) -> Option<(NotificationKind, uuid::Uuid, Vec<PersonId>)> {
    match event {
        // A roll call's or a staff's report; a guardian's own declaration
        // is news to no guardian.
        DomainEvent::AbsenceReported(e) => Some((
            NotificationKind::Absence,
            e.absence_id.0,
            m.student(e.student_id)
                .map(|s| s.guardians.iter().copied().collect())
                .unwrap_or_default(),
        )),
        DomainEvent::GradeRecorded(e) => Some((
            NotificationKind::Grade,
            e.grade_id.0,
            m.student(e.student_id)
                .map(|s| {
                    let mut p: Vec<PersonId> = s.guardians.iter().copied().collect();
                    p.push(s.person_id);
                    p
                })
                .unwrap_or_default(),
        )),
        DomainEvent::MessageSent(e) => {
            Some((NotificationKind::Message, e.message_id.0, e.to.clone()))
        }
        // discipline (issue 15): guardians hear of a punishment or a
        // sanction at once (the `sanctions` switch covers both).
        DomainEvent::PunishmentGiven(e) => Some((
            NotificationKind::Sanction,
            e.punishment_id.0,
            guardians_of(m, e.student_id),
        )),
        DomainEvent::SanctionImposed(e) => Some((
            NotificationKind::Sanction,
            e.sanction_id.0,
            guardians_of(m, e.student_id),
        )),
        _ => None,
    }
}

fn guardians_of(m: &ReadModel, student: registre_domain::StudentId) -> Vec<PersonId> {
    m.student(student)
        .map(|s| s.guardians.iter().copied().collect())
        .unwrap_or_default()
}

/// The outbox rows of a page, from the model as it stands.
fn items(m: &ReadModel, events: &[&LoggedEvent], channels: &[Channel]) -> Vec<OutboxItem> {
    let mut out = Vec::new();
    for logged in events {
        let Some((kind, about, people)) = audience(m, &logged.event) else {
            continue;
        };
        for person in people {
            for channel in channels {
                let pref = m.communication().preference(person, *channel);
                let reachable = match channel {
                    Channel::Email => pref.email.is_some(),
                    Channel::WebPush => !m.communication().push_subscriptions(person).is_empty(),
                };
                if reachable && pref.preferences.wants(kind) {
                    out.push(OutboxItem {
                        position: logged.position,
                        person_id: person.0,
                        channel: channel.as_str().to_owned(),
                        kind: kind.as_str().to_owned(),
                        about_id: about,
                        partition: logged.partition.as_ref().map(|p| p.as_str().to_owned()),
                    });
                }
            }
        }
    }
    out
}

/// The log follower's consumer that fills the outbox.
pub(crate) struct Outbox {
    app: Weak<App>,
    store: Arc<dyn CommunicationStore>,
    channels: Vec<Channel>,
    position: AtomicU64,
    /// Where a partition first seen without a checkpoint starts (see
    /// [`start`]).
    start: Position,
    /// The partitions' checkpoints as this node last read or moved them.
    checkpoints: Mutex<BTreeMap<String, Position>>,
    wake: Arc<Notify>,
    stats: Arc<NotifyStats>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// What one round of [`Outbox::consume`] found in a page against the
/// checkpoints it holds.
struct Round<'a> {
    /// Events above their partition's checkpoint.
    events: Vec<&'a LoggedEvent>,
    /// Their partitions, each with its checkpoint.
    moves: BTreeMap<String, Position>,
    /// Partitions without a checkpoint yet, with where each starts.
    unopened: BTreeMap<String, Position>,
}

impl Outbox {
    fn round<'a>(
        &self,
        app: &App,
        page: &'a [LoggedEvent],
        checkpoints: &BTreeMap<String, Position>,
    ) -> Round<'a> {
        let mut round = Round {
            events: Vec::new(),
            moves: BTreeMap::new(),
            unopened: BTreeMap::new(),
        };
        for logged in page {
            // A school created while this node runs: its partition starts
            // at its creation, so a restart before its first event still
            // announces what follows (the first-start rule, per partition).
            if let DomainEvent::EstablishmentCreated(e) = &logged.event {
                let created = Partition::establishment(e.uai.as_str());
                if app.cluster().holds(&created) && !checkpoints.contains_key(created.as_str()) {
                    round
                        .unopened
                        .entry(created.as_str().to_owned())
                        .or_insert(logged.position.saturating_sub(1).max(self.start));
                }
            }
            // None only before the start's backfill, which runs before
            // any follower.
            let Some(partition) = &logged.partition else {
                continue;
            };
            if !app.cluster().holds(partition) {
                continue;
            }
            match checkpoints.get(partition.as_str()) {
                None => {
                    round
                        .unopened
                        .entry(partition.as_str().to_owned())
                        .or_insert(self.start);
                }
                Some(at) if logged.position > *at => {
                    round.events.push(logged);
                    round.moves.insert(partition.as_str().to_owned(), *at);
                }
                Some(_) => {}
            }
        }
        round
    }
}

#[async_trait]
impl LogConsumer for Outbox {
    fn name(&self) -> &'static str {
        "notification_outbox"
    }

    fn position(&self) -> Position {
        self.position.load(Ordering::SeqCst)
    }

    async fn consume(&self, page: Page<'_>) -> Result<(), ProjectionError> {
        let Some(last) = page.events.last().map(|e| e.position) else {
            return Ok(());
        };
        let Some(app) = self.app.upgrade() else {
            return Ok(());
        };
        let mut checkpoints = self.checkpoints.lock().clone();
        let mut done = false;
        // Bounded: each round enqueues, opens partitions, or learns
        // checkpoints another node moved.
        for _ in 0..8 {
            let round = self.round(&app, page.events, &checkpoints);
            if !round.unopened.is_empty() {
                self.store
                    .open_partitions(round.unopened.into_iter().collect())
                    .await?;
                checkpoints = self.store.partition_checkpoints().await?;
                continue;
            }
            if round.moves.is_empty() {
                done = true;
                break;
            }
            let rows = app.read(|m| items(m, &round.events, &self.channels));
            let n = rows.len() as u64;
            let moves: Vec<CheckpointMove> = round
                .moves
                .iter()
                .map(|(partition, expected)| CheckpointMove {
                    partition: partition.clone(),
                    expected: *expected,
                    to: last,
                })
                .collect();
            if self.store.enqueue(moves, rows, Utc::now()).await? {
                for partition in round.moves.into_keys() {
                    checkpoints.insert(partition, last);
                }
                self.stats.enqueued.fetch_add(n, Ordering::Relaxed);
                if n > 0 {
                    self.wake.notify_one();
                }
                done = true;
                break;
            }
            // Another node enqueued (part of) this page first: the directory,
            // which every node folds, or a school taken over.
            checkpoints = self.store.partition_checkpoints().await?;
        }
        *self.checkpoints.lock() = checkpoints;
        if !done {
            return Err(ProjectionError::Store(registre_store::StoreError::Backend(
                "the outbox checkpoints keep moving under this node; retrying".into(),
            )));
        }
        self.position.store(last, Ordering::SeqCst);
        Ok(())
    }
}

/// Starts the delivery when this node has a channel to deliver on: the
/// outbox consumer and the sender task.
///
/// The consumer starts from the lowest checkpoint of the partitions this
/// node folds. A partition without one starts from the single checkpoint
/// of before partitions had theirs when it is above 0 (an upgraded region
/// loses nothing), otherwise from the log's head at this start, so that
/// enabling notifications does not announce the past; the partitions this
/// node knows of are given that start now, so that a restart does not skip
/// what was written while it was down.
pub(crate) async fn start(app: &Arc<App>) -> Result<(), crate::ApiError> {
    let config = app.config().communication.clone();
    let channels = channels(&config);
    if channels.is_empty() {
        return Ok(());
    }
    let Some(store) = app.store().communication() else {
        return Ok(());
    };
    let served = app.cluster().served().map(<[Partition]>::to_vec);
    let global = store.outbox_checkpoint().await?;
    let start = if global > 0 {
        global
    } else {
        app.store().head().await?
    };
    let mut known: BTreeSet<String> = match &served {
        Some(set) => set.iter().map(|p| p.as_str().to_owned()).collect(),
        None => app.read(|m| m.establishments().map(|e| e.uai.clone()).collect()),
    };
    known.insert(Partition::DIRECTORY.to_owned());
    store
        .open_partitions(known.iter().map(|p| (p.clone(), start)).collect())
        .await?;
    let checkpoints = store.partition_checkpoints().await?;
    let position = checkpoints
        .iter()
        .filter(|(p, _)| served.is_none() || known.contains(*p))
        .map(|(_, at)| *at)
        .min()
        .unwrap_or(start);
    let wake = Arc::new(Notify::new());
    let outbox = Arc::new(Outbox {
        app: Arc::downgrade(app),
        store: store.clone(),
        channels,
        position: AtomicU64::new(position),
        start,
        checkpoints: Mutex::new(checkpoints),
        wake: wake.clone(),
        stats: app.notify_stats.clone(),
    });
    app.engine().follower().register(outbox);
    let mailer = match &config.smtp {
        Some(smtp) => Some(
            mail::Mailer::new(smtp, config.delivery.timeout).map_err(crate::ApiError::Internal)?,
        ),
        None => None,
    };
    let http = reqwest::Client::builder()
        .timeout(config.delivery.timeout)
        .build()
        .map_err(|e| crate::ApiError::Internal(format!("push client: {e}")))?;
    let sender = Sender {
        app: Arc::downgrade(app),
        store,
        config,
        mailer,
        http,
        // A node serving a set composes only its set's notices and the
        // directory's; rows from before partitions, only a node folding
        // everything.
        claims: served.is_some().then(|| known.into_iter().collect()),
        stats: app.notify_stats.clone(),
    };
    let task = tokio::spawn(run_sender(sender, wake, app.shutdown_signal()));
    app.tasks.lock().push(task);
    Ok(())
}

struct Sender {
    app: Weak<App>,
    store: Arc<dyn CommunicationStore>,
    config: CommunicationConfig,
    mailer: Option<mail::Mailer>,
    http: reqwest::Client,
    /// The partitions whose rows it claims (`None`: every row).
    claims: Option<Vec<String>>,
    stats: Arc<NotifyStats>,
}

async fn run_sender(
    sender: Sender,
    wake: Arc<Notify>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let now = Utc::now();
        let lease = chrono::Duration::from_std(sender.config.delivery.lease)
            .unwrap_or(chrono::Duration::seconds(60));
        let claimed = sender
            .store
            .claim(
                now,
                now + lease,
                sender.config.delivery.batch.max(1),
                sender.claims.as_deref(),
            )
            .await;
        let busy = match claimed {
            Ok(rows) => {
                let full = rows.len() >= sender.config.delivery.batch.max(1);
                futures::future::join_all(rows.into_iter().map(|row| sender.deliver(row))).await;
                full
            }
            Err(e) => {
                tracing::warn!(error = %e, "notification outbox: cannot claim");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            _ = crate::follower::stopped(&mut shutdown) => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sender.config.delivery.poll) => {}
        }
    }
}

/// What one delivery came to.
enum Outcome {
    Delivered,
    Retry(String),
    GiveUp(String),
}

impl Sender {
    async fn deliver(&self, row: OutboxEntry) {
        let item = &row.item;
        let Some(app) = self.app.upgrade() else {
            return;
        };
        let person = PersonId(item.person_id);
        let notice = app.read(|m| compose(m, item));
        let outcome = match notice {
            None => Outcome::GiveUp("what it announced is gone".into()),
            Some(notice) => match item.channel.as_str() {
                "EMAIL" => self.email(&app, person, &notice).await,
                "WEB_PUSH" => self.push(&app, person, &notice).await,
                other => Outcome::GiveUp(format!("unknown channel {other}")),
            },
        };
        let now = Utc::now();
        let attempts = row.attempts + 1;
        let attempt = match &outcome {
            Outcome::Delivered => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::info!(position = item.position, person = %item.person_id, channel = %item.channel, kind = %item.kind, "notification delivered");
                Attempt::Delivered
            }
            Outcome::Retry(why) if attempts < self.config.delivery.max_attempts => {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                let delay = backoff(&self.config, attempts);
                tracing::warn!(position = item.position, person = %item.person_id, channel = %item.channel, attempts, error = %why, "notification not delivered; retrying");
                Attempt::Retry(now + delay)
            }
            Outcome::Retry(why) | Outcome::GiveUp(why) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(position = item.position, person = %item.person_id, channel = %item.channel, attempts, error = %why, "notification given up");
                Attempt::GiveUp
            }
        };
        if let Err(e) = self.store.settle(item, attempt, now).await {
            // The lease runs out and another attempt follows: at least once.
            tracing::warn!(position = item.position, person = %item.person_id, error = %e, "notification outbox: cannot settle");
        }
    }

    async fn email(&self, app: &App, person: PersonId, notice: &Notice) -> Outcome {
        let Some(mailer) = &self.mailer else {
            return Outcome::GiveUp("no SMTP relay on this node".into());
        };
        let address = app.read(|m| m.communication().preference(person, Channel::Email).email);
        let Some(address) = address else {
            return Outcome::GiveUp("no address".into());
        };
        match mailer.send(&address, notice).await {
            mail::Sent::Accepted => Outcome::Delivered,
            mail::Sent::Transient(e) => Outcome::Retry(e),
            mail::Sent::Permanent(e) => Outcome::GiveUp(e),
        }
    }

    async fn push(&self, app: &App, person: PersonId, notice: &Notice) -> Outcome {
        let Some(vapid) = &self.config.vapid else {
            return Outcome::GiveUp("no VAPID key on this node".into());
        };
        let subscriptions = app.read(|m| m.communication().push_subscriptions(person));
        if subscriptions.is_empty() {
            return Outcome::GiveUp("no subscription".into());
        }
        let payload = notice.push_payload();
        let mut delivered = false;
        let mut transient = None;
        for sub in subscriptions {
            match self.push_one(vapid, &sub, &payload, notice.kind).await {
                Ok(()) => delivered = true,
                Err(PushFailure::Gone(status)) => {
                    self.drop_subscription(app, person, sub.id, status).await;
                }
                Err(PushFailure::Transient(e)) => transient = Some(e),
                Err(PushFailure::Permanent(e)) => {
                    tracing::warn!(person = %person, subscription = %sub.id, error = %e, "push refused");
                }
            }
        }
        match (delivered, transient) {
            (true, _) => Outcome::Delivered,
            (false, Some(e)) => Outcome::Retry(e),
            (false, None) => Outcome::GiveUp("no subscription accepted it".into()),
        }
    }

    async fn push_one(
        &self,
        vapid: &VapidKey,
        sub: &registre_projections::communication::PushSubscription,
        payload: &[u8],
        kind: NotificationKind,
    ) -> Result<(), PushFailure> {
        let body = webpush::encrypt(payload, &sub.p256dh, &sub.auth)
            .map_err(|e| PushFailure::Permanent(e.to_string()))?;
        let authorization = vapid
            .authorization(&sub.endpoint, Utc::now())
            .map_err(|e| PushFailure::Permanent(e.to_string()))?;
        let urgency = match kind {
            NotificationKind::Absence | NotificationKind::Sanction => "high",
            _ => "normal",
        };
        let response = self
            .http
            .post(&sub.endpoint)
            .header("Authorization", authorization)
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("TTL", "86400")
            .header("Urgency", urgency)
            .body(body)
            .send()
            .await
            .map_err(|e| PushFailure::Transient(format!("push request: {}", e.without_url())))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            404 | 410 => Err(PushFailure::Gone(status)),
            429 | 500..=599 => Err(PushFailure::Transient(format!(
                "push service answered {status}"
            ))),
            _ => Err(PushFailure::Permanent(format!(
                "push service answered {status}"
            ))),
        }
    }

    async fn drop_subscription(&self, app: &App, person: PersonId, id: WebPushId, status: u16) {
        let cmd = DropWebPush {
            person_id: person,
            subscription_id: id,
            status,
        };
        let cx = CommandContext::system(new_id());
        match app.executor().run(&cx, &cmd, None).await {
            Ok(_) => {
                self.stats
                    .subscriptions_dropped
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(person = %person, subscription = %id, status, "push subscription dropped");
            }
            Err(e) => {
                tracing::warn!(person = %person, subscription = %id, error = %e, "push subscription not dropped")
            }
        }
    }
}

enum PushFailure {
    Gone(u16),
    Transient(String),
    Permanent(String),
}

fn backoff(config: &CommunicationConfig, attempts: u32) -> chrono::Duration {
    let base = config.delivery.retry_base;
    let delay = base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(config.delivery.retry_max);
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60))
}

/// The notice of a row, from the model now; `None` when what it announced
/// is gone (a cancelled absence, an erased message).
fn compose(m: &ReadModel, item: &OutboxItem) -> Option<Notice> {
    match item.kind.as_str() {
        "ABSENCE" => {
            let a = m.absence(AbsenceId(item.about_id))?;
            let s = m.student(a.student_id)?;
            let zone = m.zone_of_class(s.class_id);
            let what = match a.kind {
                registre_domain::AbsenceKind::Lateness => "Un retard",
                _ => "Une absence",
            };
            Some(Notice {
                kind: NotificationKind::Absence,
                about: item.about_id,
                title: "Registre : absence ou retard signalé".into(),
                text: format!(
                    "{what} de {} a été signalé(e) le {}.",
                    m.display_name(s.person_id),
                    a.start.with_timezone(&zone).format("%d/%m/%Y à %H:%M")
                ),
            })
        }
        "GRADE" => {
            let g = m.grade(GradeId(item.about_id))?;
            let s = m.student(g.student_id)?;
            let subject = m
                .assessment(g.assessment_id)
                .map(|a| a.subject.clone())
                .unwrap_or_default();
            Some(Notice {
                kind: NotificationKind::Grade,
                about: item.about_id,
                title: "Registre : nouvelle note".into(),
                text: format!(
                    "Une nouvelle note de {} a été saisie en {subject}.",
                    m.display_name(s.person_id)
                ),
            })
        }
        "MESSAGE" => {
            let msg = m.message(MessageId(item.about_id))?;
            Some(Notice {
                kind: NotificationKind::Message,
                about: item.about_id,
                title: "Registre : nouveau message".into(),
                text: format!("Vous avez reçu un message de {}.", m.display_name(msg.from)),
            })
        }
        // Neither the kind nor the reason: they are read in Registre.
        "SANCTION" => {
            let discipline = m.discipline();
            let (student, title, what) = if let Some(p) =
                discipline.punishment(registre_domain::PunishmentId(item.about_id))
            {
                (
                    p.student_id,
                    "Registre : punition",
                    "Une punition a été donnée à",
                )
            } else {
                let s = discipline.sanction(registre_domain::SanctionId(item.about_id))?;
                if s.erased {
                    return None;
                }
                (
                    s.student_id,
                    "Registre : sanction disciplinaire",
                    "Une sanction disciplinaire a été décidée pour",
                )
            };
            let s = m.student(student)?;
            Some(Notice {
                kind: NotificationKind::Sanction,
                about: item.about_id,
                title: title.into(),
                text: format!(
                    "{what} {}. Le détail est dans Registre.",
                    m.display_name(s.person_id)
                ),
            })
        }
        _ => None,
    }
}

impl App {
    /// The delivery's counters.
    pub fn notify_stats(&self) -> &NotifyStats {
        &self.notify_stats
    }

    /// Every outbox row (operators and tests).
    pub async fn notification_outbox(&self) -> Result<Vec<OutboxEntry>, crate::ApiError> {
        match self.store().communication() {
            Some(store) => Ok(store.outbox().await?),
            None => Ok(Vec::new()),
        }
    }
}
