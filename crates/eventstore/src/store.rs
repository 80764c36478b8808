//! The event store port and the input checks every adapter applies before writing.

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::StoreError;
use crate::event::{EventData, RecordedEvent, Snapshot};
use crate::stream::StreamId;
use crate::version::{ExpectedVersion, Position};

/// Direction of a stream read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first, from a version upwards.
    Forward,
    /// Newest first, from a version downwards.
    Backward,
}

/// Where an append left the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// The stream's version after the append: pass it as `ExpectedVersion::Exact` next time.
    pub next_expected_version: u64,
    /// Position of the first appended event.
    pub first_position: Position,
    /// Position of the last appended event.
    pub last_position: Position,
}

/// One stream's part of [`EventStore::append_multi`].
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// The stream.
    pub stream: StreamId,
    /// The version the stream must be at.
    pub expected: ExpectedVersion,
    /// What to append (at least one event).
    pub events: Vec<EventData>,
}

impl StreamAppend {
    /// Events for `stream`, which must be at `expected`.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<EventData>) -> Self {
        Self {
            stream,
            expected,
            events,
        }
    }
}

/// Size limits enforced on every append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest serialised event (data plus metadata), in bytes.
    pub max_event_bytes: usize,
    /// Most events in one append.
    pub max_events_per_append: usize,
    /// Longest event type name, in bytes.
    pub max_event_type_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 1024 * 1024,
            max_events_per_append: 10_000,
            max_event_type_len: 128,
        }
    }
}

impl Limits {
    /// Checks a batch before anything is written; returns each event's serialised data and metadata.
    pub(crate) fn check(&self, events: &[EventData]) -> Result<Vec<(String, String)>, StoreError> {
        let invalid = |reason: String| Err(StoreError::InvalidEvent { reason });
        if events.is_empty() {
            return invalid("an append needs at least one event".to_owned());
        }
        if events.len() > self.max_events_per_append {
            return invalid(format!(
                "{} events in one append; the limit is {}",
                events.len(),
                self.max_events_per_append
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(events.len());
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            if !seen.insert(event.id) {
                return invalid(format!("event id {} appears twice in one append", event.id));
            }
            let ty = &event.event_type;
            if ty.is_empty() || ty.len() > self.max_event_type_len {
                return invalid(format!(
                    "event type must be 1..={} bytes",
                    self.max_event_type_len
                ));
            }
            if !ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                return invalid(format!(
                    "event type {:?} may only hold ASCII letters, digits and _.-",
                    crate::stream::truncate(ty)
                ));
            }
            let data = event.data.to_string();
            let metadata =
                serde_json::to_string(&event.metadata).map_err(|e| StoreError::InvalidEvent {
                    reason: format!("metadata does not serialise: {e}"),
                })?;
            if data.len() + metadata.len() > self.max_event_bytes {
                return invalid(format!(
                    "event {} is {} bytes; the limit is {}",
                    event.id,
                    data.len() + metadata.len(),
                    self.max_event_bytes
                ));
            }
            if data.contains("\\u0000") {
                return invalid("event data must not contain NUL characters".to_owned());
            }
            if metadata.contains("\\u0000") {
                return invalid("event metadata must not contain NUL characters".to_owned());
            }
            encoded.push((data, metadata));
        }
        Ok(encoded)
    }
}

/// The event store port: append-only streams, a global `$all` order, checkpoints and snapshots.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends events atomically if the stream's version matches `expected`.
    ///
    /// Re-appending events whose ids are already stored in this stream (same types and data)
    /// succeeds without writing again; a used id with different content is `DuplicateEventId`.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError>;

    /// Appends to several streams in one transaction: each stream's version must match its
    /// expected version, or nothing at all is written. Results come in the order given.
    ///
    /// Re-appending a multi-append that already happened (the same ids, types and data in the
    /// same streams) succeeds without writing again.
    async fn append_multi(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError>;

    /// Reads up to `limit` events of one stream starting at version `from` (inclusive;
    /// `None` means the first event going forward, the last going backward).
    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The stream's current version (0 when it does not exist).
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// Reads up to `limit` events of `$all` after `after`, in global order, never returning an
    /// event while an older, still-running transaction could commit one before it.
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the last event a `$all` reader can see now (`START` when there is none).
    async fn head(&self) -> Result<Position, StoreError>;

    /// Events of `$all` after `after`: first those already stored, then new ones as they commit.
    fn subscribe_all(
        &self,
        after: Position,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>>;

    /// The last position a named consumer saved.
    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError>;

    /// Saves a named consumer's position.
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError>;

    /// The latest snapshot of a stream, if any.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// Saves a snapshot of a stream (kept only if newer than the stored one).
    async fn save_snapshot(&self, stream: &StreamId, snapshot: &Snapshot)
    -> Result<(), StoreError>;

    /// The adapter's name for the start-up log ("postgres", "sqlite").
    fn adapter(&self) -> &'static str;
}

/// The query and starting version of a stream read (the same SQL on both adapters:
/// `$1` stream, `$2` version, `$3` limit).
pub(crate) fn stream_read(direction: Direction, from: Option<u64>) -> (&'static str, i64) {
    const FORWARD: &str = "SELECT position, event_id, stream_id, version, event_type, data, metadata, recorded_at \
         FROM es_events WHERE stream_id = $1 AND version >= $2 ORDER BY version ASC LIMIT $3";
    const BACKWARD: &str = "SELECT position, event_id, stream_id, version, event_type, data, metadata, recorded_at \
         FROM es_events WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT $3";
    let start = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    match direction {
        Direction::Forward => (FORWARD, start(from.unwrap_or(1))),
        Direction::Backward => (BACKWARD, from.map(start).unwrap_or(i64::MAX)),
    }
}

/// Checks a multi-append before anything is written (at least one stream, none twice, no
/// event id twice, the events of all streams together and each one within `limits`); returns
/// each stream's encoded events.
pub(crate) fn check_multi(
    limits: &Limits,
    appends: &[StreamAppend],
) -> Result<Vec<Vec<(String, String)>>, StoreError> {
    let invalid = |reason: String| Err(StoreError::InvalidEvent { reason });
    if appends.is_empty() {
        return invalid("a multi-stream append needs at least one stream".to_owned());
    }
    let total: usize = appends.iter().map(|a| a.events.len()).sum();
    if total > limits.max_events_per_append {
        return invalid(format!(
            "{total} events in one multi-stream append; the limit is {}",
            limits.max_events_per_append
        ));
    }
    let mut streams = std::collections::HashSet::with_capacity(appends.len());
    let mut ids = std::collections::HashSet::new();
    let mut encoded = Vec::with_capacity(appends.len());
    for append in appends {
        if !streams.insert(append.stream.as_str()) {
            return invalid(format!(
                "stream {} appears twice in one multi-stream append",
                append.stream
            ));
        }
        for event in &append.events {
            if !ids.insert(event.id) {
                return invalid(format!("event id {} appears twice in one append", event.id));
            }
        }
        encoded.push(limits.check(&append.events)?);
    }
    Ok(encoded)
}

/// Decides whether a refused multi-append already happened: every stream's events stored as
/// given (then their results), none stored (then `refusal` stands), or a mix (a reused id).
pub(crate) fn classify_multi_replay(
    appends: &[StreamAppend],
    stored: Vec<StoredIdentity>,
    refusal: StoreError,
) -> Result<Vec<AppendResult>, StoreError> {
    if stored.is_empty() {
        return Err(refusal);
    }
    let mut by_id: std::collections::HashMap<uuid::Uuid, StoredIdentity> =
        stored.into_iter().map(|s| (s.id, s)).collect();
    let mut results = Vec::with_capacity(appends.len());
    for append in appends {
        let mine: Vec<StoredIdentity> = append
            .events
            .iter()
            .filter_map(|e| by_id.remove(&e.id))
            .collect();
        match classify_replay(&append.stream, append.expected, &append.events, mine)? {
            Replay::AlreadyAppended(done) => results.push(done),
            Replay::NotStored => {
                let id = append.events.first().map(|e| e.id).unwrap_or_default();
                return Err(StoreError::DuplicateEventId { id });
            }
        }
    }
    Ok(results)
}

/// What an idempotency check found for a batch whose append was refused.
pub(crate) enum Replay {
    /// Every event is already stored, in order, in this stream: the append already happened.
    AlreadyAppended(AppendResult),
    /// None of the ids is stored: the refusal stands.
    NotStored,
}

/// A stored event's identity, as needed to decide whether a batch is a replay.
pub(crate) struct StoredIdentity {
    pub id: uuid::Uuid,
    pub stream_id: String,
    pub version: u64,
    pub position: Position,
    pub event_type: String,
    pub data: serde_json::Value,
}

/// Decides whether `events` were already appended to `stream` (EventStoreDB idempotency).
pub(crate) fn classify_replay(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[EventData],
    mut stored: Vec<StoredIdentity>,
) -> Result<Replay, StoreError> {
    if stored.is_empty() {
        return Ok(Replay::NotStored);
    }
    stored.sort_by_key(|s| s.version);
    let by_id: std::collections::HashMap<uuid::Uuid, &StoredIdentity> =
        stored.iter().map(|s| (s.id, s)).collect();
    let first_version = stored.first().map(|s| s.version).unwrap_or(0);
    let version_fits = match expected {
        ExpectedVersion::Exact(v) => first_version == v + 1,
        ExpectedVersion::NoStream => first_version == 1,
        ExpectedVersion::Any | ExpectedVersion::StreamExists => true,
    };
    for (i, event) in events.iter().enumerate() {
        let Some(found) = by_id.get(&event.id) else {
            // Part of the batch is stored and part is not: not a replay.
            return Err(StoreError::DuplicateEventId { id: stored[0].id });
        };
        let same = found.stream_id == stream.as_str()
            && found.version == first_version + i as u64
            && found.event_type == event.event_type
            && found.data == event.data;
        if !same || !version_fits {
            return Err(StoreError::DuplicateEventId { id: event.id });
        }
    }
    let last = stored.last().map(|s| (s.version, s.position));
    let (last_version, last_position) = last.unwrap_or((0, Position::START));
    Ok(Replay::AlreadyAppended(AppendResult {
        next_expected_version: last_version,
        first_position: stored[0].position,
        last_position,
    }))
}
