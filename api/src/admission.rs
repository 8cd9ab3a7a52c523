//! Admission control: how many GraphQL operations a node runs at once, how
//! long a request may wait for a place, and which requests get the places a
//! saturated node still has.
//!
//! A node offered more than it can serve must keep answering the requests it
//! takes as fast as on a quiet day, and tell the rest at once when to come
//! back: letting everyone in makes everyone wait (2,000 parents' dashboards
//! took a p99 of 6.3 s and not one was refused). So a request takes a
//! [`Permit`] before anything costly (token verification, JSON and GraphQL
//! parsing, execution) and holds it until its answer is built.
//!
//! Places are split in two pools. Reads may use the shared pool only;
//! mutations use the shared pool or, when it is full, the places reserved for
//! them: a teacher's roll call is admitted while dashboards are being
//! refused. A request that finds no place waits in a short queue, at most
//! `max_queue_wait`; when the queue itself is full it is refused at once,
//! without waiting, so that refusals cost microseconds.
//!
//! A refused client is told when to come back (`Retry-After`), and told a
//! time the node can keep: refused clients are handed places in a virtual
//! queue, the way a bakery hands out numbered tickets. Each refusal takes
//! the place after the last one given, one place per request the node
//! serves in a second (the most it admitted in a whole second over the last
//! minute or two, or in the current or the previous second if more), and is
//! told the seconds until its place, between REGISTRE_RETRY_AFTER_SECS and
//! REGISTRE_RETRY_AFTER_MAX_SECS. A quiet node tells the least; at ten times
//! its capacity, the clients refused in one second are told places spread
//! over the next ten, so they come back at about the rate the node serves
//! instead of in one wave, and those refused later are told later still.
//! Delays read from the pressure of one second (half of it to all of it)
//! sent most refused clients back while the surge still filled the node,
//! where each retry was refused again: at ten times capacity the refusals
//! of retries took a third of the cores the admitted requests needed.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{config::Limits, metrics::Metrics};

/// What a request is, as far as admission cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Queries and subscriptions.
    Read,
    /// Mutations, and batches holding at least one.
    Write,
}

/// Why a request was refused; also the `reason` label of
/// `registre_admission_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No place, and the queue already holds as many requests as allowed.
    QueueFull,
    /// No place freed up within `max_queue_wait`.
    QueueTimeout,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::QueueTimeout => "queue_timeout",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::QueueFull | Refusal::QueueTimeout => {
                "the server is at capacity; retry after the delay in extensions.retryAfter"
            }
        }
    }
}

/// A place held by one request; released on drop.
#[derive(Debug)]
pub struct Permit {
    _permit: OwnedSemaphorePermit,
    in_flight: prometheus::IntGauge,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// The node's admission controller. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Admission {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Semaphore>,
    reserved: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queued: usize,
    max_wait: Duration,
    retry_after: Duration,
    retry_after_max: Duration,
    pressure: parking_lot::Mutex<Pressure>,
    /// `admission_refused_total` for the two capacity refusals, looked up once.
    refused_full: prometheus::IntCounter,
    refused_timeout: prometheus::IntCounter,
    metrics: Metrics,
}

/// Admissions per second, as the node has shown it can serve, and the end of
/// the virtual queue of refused clients (see the module doc).
#[derive(Debug)]
struct Pressure {
    origin: Instant,
    second: u64,
    admitted: u64,
    last_admitted: u64,
    /// The most admitted in one whole second during the current minute and
    /// during the previous one.
    minute_peak: u64,
    last_minute_peak: u64,
    /// The place the next refused client is given, unless it has passed.
    tail: Instant,
}

impl Pressure {
    fn new() -> Pressure {
        let origin = Instant::now();
        Pressure {
            origin,
            second: 0,
            admitted: 0,
            last_admitted: 0,
            minute_peak: 0,
            last_minute_peak: 0,
            tail: origin,
        }
    }

    fn roll(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.origin).as_secs();
        if second == self.second {
            return;
        }
        // The second that ended, whether or not the next one follows it.
        let finished = self.admitted;
        self.minute_peak = self.minute_peak.max(finished);
        let (minute, was) = (second / 60, self.second / 60);
        if minute != was {
            self.last_minute_peak = if minute == was + 1 {
                self.minute_peak
            } else {
                0
            };
            self.minute_peak = 0;
        }
        self.last_admitted = if second == self.second + 1 {
            finished
        } else {
            0
        };
        self.admitted = 0;
        self.second = second;
    }

    fn count_admission(&mut self, now: Instant) {
        self.roll(now);
        self.admitted += 1;
    }

    /// Requests the node serves in a second, as far as it has shown.
    fn rate(&self) -> u64 {
        self.admitted
            .max(self.last_admitted)
            .max(self.minute_peak)
            .max(self.last_minute_peak)
            .max(1)
    }

    /// The next place in the virtual queue, as a delay from `now` within
    /// `least..=most`.
    fn ticket(&mut self, now: Instant, least: Duration, most: Duration) -> Duration {
        self.roll(now);
        let place = self.tail.clamp(now + least, now + most);
        self.tail = place + Duration::from_secs(1).div_f64(self.rate() as f64);
        place - now
    }
}

/// Decrements the queue length however the wait ends (admitted, timed out,
/// or the client went away and the request future was dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(limits: &Limits, metrics: Metrics) -> Admission {
        let total = limits.max_in_flight.max(1);
        let reserved = limits.mutation_reserved.min(total.saturating_sub(1));
        Admission {
            inner: Arc::new(Inner {
                shared: Arc::new(Semaphore::new(total - reserved)),
                reserved: Arc::new(Semaphore::new(reserved)),
                waiting: AtomicUsize::new(0),
                max_queued: limits.max_queued,
                max_wait: limits.max_queue_wait,
                retry_after: limits.retry_after,
                retry_after_max: limits.retry_after_max,
                pressure: parking_lot::Mutex::new(Pressure::new()),
                refused_full: metrics
                    .admission_refused
                    .with_label_values(&[Refusal::QueueFull.label()]),
                refused_timeout: metrics
                    .admission_refused
                    .with_label_values(&[Refusal::QueueTimeout.label()]),
                metrics,
            }),
        }
    }

    /// Seconds a refused client should wait (an integer, at least 1, as
    /// `Retry-After` requires): until its place in the virtual queue (see
    /// the module doc). Each call hands out a place: one call per refusal.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_at(Instant::now())
    }

    fn retry_after_at(&self, now: Instant) -> u64 {
        let least = self.inner.retry_after.as_secs().max(1);
        let most = self.inner.retry_after_max.as_secs().max(least);
        let delay = self.inner.pressure.lock().ticket(
            now,
            Duration::from_secs(least),
            Duration::from_secs(most),
        );
        // Whole seconds, rounded up: a client never comes back before its place.
        u64::try_from(delay.as_millis().div_ceil(1000)).unwrap_or(most)
    }

    /// A place now, or `None`, without waiting: the fast path of every
    /// request, and the only path for WebSocket operations (a socket's loop
    /// must never wait).
    pub fn try_admit(&self, kind: Kind) -> Option<Permit> {
        let inner = &self.inner;
        let permit = match inner.shared.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) if kind == Kind::Write => inner.reserved.clone().try_acquire_owned().ok(),
            Err(_) => None,
        }?;
        Some(self.admitted(permit))
    }

    fn admitted(&self, permit: OwnedSemaphorePermit) -> Permit {
        self.inner.pressure.lock().count_admission(Instant::now());
        let in_flight = self.inner.metrics.admission_in_flight.clone();
        in_flight.inc();
        Permit {
            _permit: permit,
            in_flight,
        }
    }

    /// Whether a place is free right now (for a subscription start, which
    /// holds no place while it lives but is not started on a saturated node).
    pub fn has_room(&self, kind: Kind) -> bool {
        self.try_admit(kind).is_some()
    }

    /// Counts one refusal for want of capacity.
    pub fn refused(&self, refusal: Refusal) {
        match refusal {
            Refusal::QueueFull => self.inner.refused_full.inc(),
            Refusal::QueueTimeout => self.inner.refused_timeout.inc(),
        }
    }

    /// Counts one refusal by a per-connection or per-person limit.
    pub fn refused_for(&self, reason: &str) {
        self.inner
            .metrics
            .admission_refused
            .with_label_values(&[reason])
            .inc();
    }

    /// A place, waiting for one at most `max_queue_wait`. `kind` is asked for
    /// only when no place is free at once, so that a quiet node never looks
    /// at the body.
    pub async fn admit(&self, kind: impl FnOnce() -> Kind) -> Result<Permit, Refusal> {
        if let Ok(p) = self.inner.shared.clone().try_acquire_owned() {
            return Ok(self.admitted(p));
        }
        let kind = kind();
        if let Some(permit) = self.try_admit(kind) {
            return Ok(permit);
        }
        let inner = &self.inner;
        let queued = inner.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&inner.waiting);
        if queued >= inner.max_queued {
            self.refused(Refusal::QueueFull);
            return Err(Refusal::QueueFull);
        }
        let started = Instant::now();
        let shared = inner.shared.clone();
        let reserved = inner.reserved.clone();
        let wait = async move {
            match kind {
                Kind::Read => shared.acquire_owned().await,
                // Whichever pool frees a place first; the reserved pool is
                // waited on by mutations only, so they pass every read.
                Kind::Write => tokio::select! {
                    p = shared.acquire_owned() => p,
                    p = reserved.acquire_owned() => p,
                },
            }
        };
        let outcome = tokio::time::timeout(inner.max_wait, wait).await;
        inner
            .metrics
            .admission_queue_wait
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(Ok(permit)) => Ok(self.admitted(permit)),
            // The semaphores are never closed; treat it as a timeout anyway.
            Ok(Err(_)) | Err(_) => {
                self.refused(Refusal::QueueTimeout);
                Err(Refusal::QueueTimeout)
            }
        }
    }
}

/// Whether one GraphQL request (its `query` text and `operationName`) runs a
/// mutation. A document that does not contain the word `mutation` cannot be
/// one, so most reads are classified without reading further.
/// A document that does not parse is a read: it will fail at once anyway.
pub fn is_mutation(query: &str, operation_name: Option<&str>) -> bool {
    use async_graphql::parser::types::OperationType;
    memchr::memmem::find(query.as_bytes(), b"mutation").is_some()
        && selected_operation(query, operation_name) == Some(OperationType::Mutation)
}

/// The type of the operation a request runs: the one named, or the only
/// one. `None` when there is no such operation or the document does not
/// parse.
///
/// Admission asks this of every request a saturated node must choose
/// among, and a full parse (async-graphql's, a PEG parser) of a roll call
/// cost some 11 µs there, as much as the rest of its refusal. So the
/// document's top level is first read lexically ([`top_level_operations`]);
/// only a text that reader does not know is parsed.
fn selected_operation(
    query: &str,
    operation_name: Option<&str>,
) -> Option<async_graphql::parser::types::OperationType> {
    match top_level_operations(query) {
        Some(operations) => operations.select(operation_name),
        None => parsed_operation(query, operation_name),
    }
}

/// [`selected_operation`] by a full parse.
fn parsed_operation(
    query: &str,
    operation_name: Option<&str>,
) -> Option<async_graphql::parser::types::OperationType> {
    use async_graphql::parser::types::DocumentOperations;
    let document = async_graphql::parser::parse_query(query).ok()?;
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The operations at the top level of a document, as far as
/// [`top_level_operations`] read them.
#[derive(Debug, PartialEq, Eq)]
struct TopLevel<'a> {
    /// The first operation without a name, if any.
    anonymous: Option<async_graphql::parser::types::OperationType>,
    /// How many operations, named or not.
    count: usize,
    /// The named operations, in order (few in any real document).
    named: Vec<(&'a str, async_graphql::parser::types::OperationType)>,
}

impl TopLevel<'_> {
    /// The operation selected as the executor selects it: a lone anonymous
    /// operation whatever the name asked; otherwise the named one, or the
    /// only one when no name is given.
    fn select(
        &self,
        operation_name: Option<&str>,
    ) -> Option<async_graphql::parser::types::OperationType> {
        match (self.anonymous, operation_name) {
            (Some(ty), _) => Some(ty),
            (None, Some(wanted)) => self
                .named
                .iter()
                .find(|(name, _)| *name == wanted)
                .map(|&(_, ty)| ty),
            (None, None) if self.count == 1 => self.named.first().map(|&(_, ty)| ty),
            (None, None) => None,
        }
    }
}

/// Reads a GraphQL document's top level without parsing it: the operations'
/// types and names, skipping their bodies (brackets counted, strings, block
/// strings and comments stepped over). `None` for anything but the plain
/// shape (operations and fragments, brackets that balance, an anonymous
/// operation only alone), so that the parser decides every doubtful case.
fn top_level_operations(query: &str) -> Option<TopLevel<'_>> {
    use async_graphql::parser::types::OperationType;
    /// The definition whose head (before its selection set) is being read.
    #[derive(Clone, Copy)]
    enum Head<'a> {
        Between,
        Operation(OperationType, Option<&'a str>),
        Fragment,
    }
    let text = query.as_bytes();
    let mut top = TopLevel {
        anonymous: None,
        count: 0,
        named: Vec::new(),
    };
    let mut head = Head::Between;
    let mut depth = 0usize;
    let mut directive = false;
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                i += memchr::memchr2(b'\n', b'\r', &text[i..]).unwrap_or(text.len() - i);
            }
            b'"' => i = after_string(text, i)?,
            b'{' if depth == 0 => {
                match head {
                    Head::Between => {
                        top.anonymous.get_or_insert(OperationType::Query);
                        top.count += 1;
                    }
                    Head::Operation(ty, None) => {
                        top.anonymous.get_or_insert(ty);
                        top.count += 1;
                    }
                    Head::Operation(ty, Some(name)) => {
                        if top.named.iter().any(|(n, _)| *n == name) {
                            return None;
                        }
                        top.named.push((name, ty));
                        top.count += 1;
                    }
                    Head::Fragment => {}
                }
                head = Head::Between;
                depth = 1;
                i += 1;
            }
            b'{' | b'(' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b')' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            _ if depth > 0 => i += 1,
            b'@' => {
                directive = true;
                i += 1;
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                let start = i;
                while text
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                let name = &query[start..i];
                if std::mem::take(&mut directive) {
                    continue;
                }
                head = match (head, name) {
                    (Head::Between, "query") => Head::Operation(OperationType::Query, None),
                    (Head::Between, "mutation") => Head::Operation(OperationType::Mutation, None),
                    (Head::Between, "subscription") => {
                        Head::Operation(OperationType::Subscription, None)
                    }
                    (Head::Between, "fragment") | (Head::Fragment, _) => Head::Fragment,
                    (Head::Operation(ty, None), name) => Head::Operation(ty, Some(name)),
                    _ => return None,
                };
            }
            _ => return None,
        }
    }
    let plain = depth == 0
        && matches!(head, Head::Between)
        && !directive
        && (top.anonymous.is_none() || top.count == 1);
    plain.then_some(top)
}

/// The index just past the string (or block string) opening at `start`;
/// `None` when it does not close.
fn after_string(text: &[u8], start: usize) -> Option<usize> {
    if text[start..].starts_with(b"\"\"\"") {
        // A block string ends at the first `"""` not escaped as `\"""`.
        let mut i = start + 3;
        loop {
            let at = i + memchr::memmem::find(&text[i..], b"\"\"\"")?;
            if text[..at].ends_with(b"\\") {
                i = at + 3;
            } else {
                return Some(at + 3);
            }
        }
    }
    let mut i = start + 1;
    loop {
        match *text.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            b'\n' | b'\r' => return None,
            _ => i += 1,
        }
    }
}

/// The admission kind of an HTTP body (one request or a batch), read with a
/// borrowed, partial deserialisation: only `query` and `operationName`.
pub fn kind_of_body(body: &[u8]) -> Kind {
    // Most bodies are reads, and a body without the word cannot hold a
    // mutation: this scan spares a saturated node a JSON parse per refusal.
    // (A client escaping the word in JSON only loses its priority.)
    if memchr::memmem::find(body, b"mutation").is_none() {
        return Kind::Read;
    }
    #[derive(serde::Deserialize)]
    struct Op<'a> {
        #[serde(borrow, default)]
        query: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default, rename = "operationName")]
        operation_name: Option<std::borrow::Cow<'a, str>>,
    }
    let mutation = |op: &Op<'_>| {
        op.query
            .as_deref()
            .is_some_and(|q| is_mutation(q, op.operation_name.as_deref()))
    };
    // A batch is an array, one request an object: looked at directly rather
    // than through an untagged enum, which buffers the whole body first.
    let batch = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    let write = if batch {
        serde_json::from_slice::<Vec<Op<'_>>>(body).is_ok_and(|ops| ops.iter().any(mutation))
    } else {
        serde_json::from_slice::<Op<'_>>(body).is_ok_and(|op| mutation(&op))
    };
    if write {
        Kind::Write
    } else {
        Kind::Read
    }
}

/// The admission kind of a WebSocket `subscribe`/`start` payload.
pub fn kind_of_ws_payload(payload: &serde_json::Value) -> Kind {
    let query = payload.get("query").and_then(|q| q.as_str()).unwrap_or("");
    let name = payload.get("operationName").and_then(|n| n.as_str());
    if is_mutation(query, name) {
        Kind::Write
    } else {
        Kind::Read
    }
}

/// Whether a WebSocket operation is a subscription (it holds no place while
/// it lives: it is checked for room when it starts, nothing more).
pub fn is_subscription(payload: &serde_json::Value) -> bool {
    use async_graphql::parser::types::OperationType;
    let query = payload.get("query").and_then(|q| q.as_str()).unwrap_or("");
    let name = payload.get("operationName").and_then(|n| n.as_str());
    memchr::memmem::find(query.as_bytes(), b"subscription").is_some()
        && selected_operation(query, name) == Some(OperationType::Subscription)
}

/// Open WebSockets by holder, for the per-person and anonymous caps.
///
/// A socket is anonymous from its upgrade until a `connection_init` carrying
/// a valid token ties it to that token's subject; a socket initialised
/// without one stays anonymous (and only answers UNAUTHENTICATED). Anonymous
/// sockets are capped per node: they are closed by the init timeout anyway,
/// and a flood of them must not use up the node's descriptors.
#[derive(Clone, Debug)]
pub struct Sockets {
    inner: Arc<parking_lot::Mutex<SocketCounts>>,
    per_person: usize,
    anonymous: usize,
}

#[derive(Debug, Default)]
struct SocketCounts {
    anonymous: usize,
    by_person: std::collections::HashMap<String, usize>,
}

/// One open socket's place in [`Sockets`]; released on drop.
#[derive(Debug)]
pub struct SocketSlot {
    sockets: Sockets,
    person: Option<String>,
}

impl Sockets {
    pub fn new(limits: &Limits) -> Sockets {
        Sockets {
            inner: Arc::default(),
            per_person: limits.max_sockets_per_person,
            anonymous: limits.max_anonymous_sockets,
        }
    }

    /// A place for a socket just upgraded, or `None` when the node already
    /// holds as many anonymous sockets as allowed.
    pub fn open(&self) -> Option<SocketSlot> {
        let mut counts = self.inner.lock();
        if counts.anonymous >= self.anonymous {
            return None;
        }
        counts.anonymous += 1;
        Some(SocketSlot {
            sockets: self.clone(),
            person: None,
        })
    }

    /// Open sockets of `subject` (for tests and diagnostics).
    pub fn of(&self, subject: &str) -> usize {
        self.inner
            .lock()
            .by_person
            .get(subject)
            .copied()
            .unwrap_or(0)
    }
}

impl SocketSlot {
    /// Ties the socket to `subject`; `false` (and the socket stays as it
    /// was) when the subject already holds as many sockets as allowed.
    pub fn attribute(&mut self, subject: &str) -> bool {
        if self.person.as_deref() == Some(subject) {
            return true;
        }
        let mut counts = self.sockets.inner.lock();
        let held = counts.by_person.get(subject).copied().unwrap_or(0);
        if held >= self.sockets.per_person {
            return false;
        }
        *counts.by_person.entry(subject.to_string()).or_default() += 1;
        match self.person.take() {
            None => counts.anonymous = counts.anonymous.saturating_sub(1),
            Some(previous) => release(&mut counts, &previous),
        }
        self.person = Some(subject.to_string());
        true
    }
}

fn release(counts: &mut SocketCounts, person: &str) {
    if let Some(n) = counts.by_person.get_mut(person) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.by_person.remove(person);
        }
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut counts = self.sockets.inner.lock();
        match &self.person {
            None => counts.anonymous = counts.anonymous.saturating_sub(1),
            Some(person) => release(&mut counts, person),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(in_flight: usize, reserved: usize, queued: usize, wait_ms: u64) -> Limits {
        Limits {
            max_in_flight: in_flight,
            mutation_reserved: reserved,
            max_queued: queued,
            max_queue_wait: Duration::from_millis(wait_ms),
            ..Limits::default()
        }
    }

    #[test]
    fn the_operation_kind_is_read_from_the_selected_operation() {
        assert!(!is_mutation("{ me { id } }", None));
        assert!(!is_mutation("query { mutationLog { id } }", None));
        assert!(is_mutation("mutation M { reportAbsence { id } }", None));
        assert!(is_mutation(
            "  # a comment\n mutation { reportAbsence { id } }",
            None
        ));
        let two = "query Q { me { id } } mutation M { reportAbsence { id } }";
        assert!(is_mutation(two, Some("M")));
        assert!(!is_mutation(two, Some("Q")));
        assert!(!is_mutation(two, None), "ambiguous: will fail as a read");
        assert!(!is_mutation("mutation {", None), "does not parse");
        assert_eq!(kind_of_body(br#"{"query":"{ me { id } }"}"#), Kind::Read);
        assert_eq!(
            kind_of_body(br#"[{"query":"{ a }"},{"query":"mutation { b }"}]"#),
            Kind::Write
        );
        assert_eq!(
            kind_of_body(br#"{"query":"query Q { a } mutation M { b }","operationName":"M"}"#),
            Kind::Write
        );
        assert_eq!(kind_of_body(b"{nope"), Kind::Read);
        assert!(is_subscription(
            &serde_json::json!({ "query": "subscription { absenceReported { position } }" })
        ));
        assert!(!is_subscription(
            &serde_json::json!({ "query": "{ me { id } }" })
        ));
    }

    #[test]
    fn the_top_level_reader_selects_what_the_parser_selects() {
        let documents = [
            "{ me { id } }",
            "query { me { id } }",
            "query Q { me { id } }",
            "mutation M($input: ReportAbsenceInput!) { reportAbsence(input: $input) { id } }",
            "mutation($input: ReportAbsenceInput! = {kind: ABSENCE, note: \"}{\"}) { reportAbsence(input: $input) { id } }",
            "subscription S @live { absenceReported { position } }",
            "query Q($d: Date = \"2026-01-01\") @cached(ttl: 1) { me { id } } mutation M { a(x: [1, {y: \"]\"}]) }",
            "# mutation { x }\n query Q { me { id } }",
            "query Q { note(text: \"\"\" mutation { } \\\"\"\" } \"\"\") }",
            "query Q { a } query Q { b }",
            "query Q { ...F } fragment F on Person @d { id } mutation M { b }",
            "fragment F on Person { id }",
            "{ a } mutation M { b }",
            "{ a } { b }",
            "mutation {",
            "mutation { a } }",
            "mutation M { a(x: \"unterminated) }",
            "type Query { a: Int }",
            "query Q @ { a }",
            "mutation M { a } garbage",
            "",
        ];
        let mut read = 0;
        for document in documents {
            for name in [None, Some("Q"), Some("M"), Some("S"), Some("X")] {
                if let Some(top) = top_level_operations(document) {
                    read += 1;
                    assert_eq!(
                        top.select(name),
                        parsed_operation(document, name),
                        "{document:?} {name:?}"
                    );
                }
                assert_eq!(
                    selected_operation(document, name),
                    parsed_operation(document, name),
                    "{document:?} {name:?}"
                );
            }
        }
        // The plain shapes are read without the parser.
        assert!(read >= 5 * 10, "only {read} read lexically");
        for plain in &documents[..9] {
            assert!(top_level_operations(plain).is_some(), "{plain:?}");
        }
    }

    #[tokio::test]
    async fn refused_clients_are_told_successive_places_at_the_rate_the_node_serves() {
        let fresh = || {
            Admission::new(
                &Limits {
                    retry_after: Duration::from_secs(2),
                    retry_after_max: Duration::from_secs(30),
                    ..limits(1, 0, 0, 0)
                },
                Metrics::new().expect("metrics"),
            )
        };
        let at = |admission: &Admission, millis: u64| {
            let origin = admission.inner.pressure.lock().origin;
            origin + Duration::from_millis(millis)
        };

        // Quiet: the least.
        let admission = fresh();
        assert_eq!(admission.retry_after_at(at(&admission, 10)), 2);

        // A node serving 10 requests a second refuses 100 at once: they are
        // told places 100 ms apart, ten to each second from the least on.
        let admission = fresh();
        let now = at(&admission, 1010);
        {
            let mut p = admission.inner.pressure.lock();
            p.roll(now);
            p.admitted = 10;
        }
        let told: Vec<u64> = (0..100).map(|_| admission.retry_after_at(now)).collect();
        assert_eq!(told[0], 2, "the first refused: the least");
        assert!(told.windows(2).all(|w| w[0] <= w[1]), "{told:?}");
        for second in 3..=11 {
            assert_eq!(
                told.iter().filter(|&&d| d == second).count(),
                10,
                "{told:?}"
            );
        }
        assert_eq!(told[99], 12);
        // However long the queue, never past the most.
        let told: Vec<u64> = (0..1000).map(|_| admission.retry_after_at(now)).collect();
        assert_eq!(told.iter().max(), Some(&30));
        assert_eq!(told[999], 30);
        // Once the places given have passed, the least again.
        assert_eq!(admission.retry_after_at(at(&admission, 45_010)), 2);

        // The node's pace is what it has shown: 100 admitted in one whole
        // second set the spacing (10 ms) in the quieter seconds after it.
        let admission = fresh();
        let busy_second = at(&admission, 1010);
        {
            let mut p = admission.inner.pressure.lock();
            p.roll(busy_second);
            p.admitted = 100;
        }
        let now = at(&admission, 3010);
        let told: Vec<u64> = (0..201).map(|_| admission.retry_after_at(now)).collect();
        assert_eq!(told[0], 2);
        assert_eq!(told[100], 3);
        assert_eq!(told[200], 4);

        // Counted through the real paths: admissions set the pace; a refusal
        // takes a place only when a delay is asked for.
        let admission = fresh();
        let held = admission.try_admit(Kind::Read).expect("the one place");
        for _ in 0..5 {
            assert_eq!(
                admission.admit(|| Kind::Read).await.err(),
                Some(Refusal::QueueFull)
            );
        }
        drop(held);
        {
            let p = admission.inner.pressure.lock();
            // The second may have turned between the calls: count both.
            assert_eq!(p.admitted + p.last_admitted, 1);
            assert_eq!(p.tail, p.origin, "no place taken yet");
        }
        let now = Instant::now();
        assert_eq!(admission.retry_after_at(now), 2);
        assert!(admission.inner.pressure.lock().tail > now + Duration::from_secs(2));
    }

    #[tokio::test]
    async fn mutations_pass_reads_when_the_shared_places_are_taken() {
        let metrics = Metrics::new().expect("metrics");
        let admission = Admission::new(&limits(2, 1, 0, 10), metrics.clone());
        let read = admission.try_admit(Kind::Read).expect("one shared place");
        assert!(
            admission.try_admit(Kind::Read).is_none(),
            "the other is reserved"
        );
        let write = admission
            .try_admit(Kind::Write)
            .expect("the reserved place");
        assert!(admission.try_admit(Kind::Write).is_none(), "all taken");
        assert_eq!(metrics.admission_in_flight.get(), 2);
        // No queue: refused at once.
        assert_eq!(
            admission.admit(|| Kind::Read).await.err(),
            Some(Refusal::QueueFull)
        );
        drop(write);
        assert!(admission.try_admit(Kind::Read).is_none());
        drop(read);
        assert!(admission.try_admit(Kind::Read).is_some());
        assert_eq!(metrics.admission_in_flight.get(), 0);
    }

    #[tokio::test]
    async fn a_queued_request_gets_a_freed_place_or_a_timeout() {
        let metrics = Metrics::new().expect("metrics");
        let admission = Admission::new(&limits(1, 0, 4, 60_000), metrics.clone());
        let held = admission.try_admit(Kind::Read).expect("the place");
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.admit(|| Kind::Read).await.map(drop) })
        };
        // The waiter is queued once it has counted itself.
        while admission.inner.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert_eq!(waiter.await.expect("joined"), Ok(()));

        let short = Admission::new(&limits(1, 0, 4, 1), metrics.clone());
        let _held = short.try_admit(Kind::Read).expect("the place");
        assert_eq!(
            short.admit(|| Kind::Read).await.err(),
            Some(Refusal::QueueTimeout)
        );
        assert_eq!(short.inner.waiting.load(Ordering::Acquire), 0);
        let text = metrics.render();
        assert!(
            text.contains(r#"registre_admission_refused_total{reason="queue_timeout"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn sockets_are_capped_per_person_and_anonymous_per_node() {
        let limits = Limits {
            max_sockets_per_person: 2,
            max_anonymous_sockets: 2,
            ..Limits::default()
        };
        let sockets = Sockets::new(&limits);
        let mut a = sockets.open().expect("first anonymous");
        let mut b = sockets.open().expect("second anonymous");
        assert!(sockets.open().is_none(), "anonymous cap");
        assert!(a.attribute("parent"));
        let mut c = sockets.open().expect("a attributed: room again");
        assert!(b.attribute("parent"));
        assert!(!c.attribute("parent"), "two per person");
        assert_eq!(sockets.of("parent"), 2);
        drop(a);
        assert!(c.attribute("parent"), "a place freed");
        drop((b, c));
        assert_eq!(sockets.of("parent"), 0);
        let _d = sockets.open().expect("anonymous again");
        let _e = sockets.open().expect("anonymous again");
    }
}
