//! The embedded adapter: streams, consumer groups and pending lists held in process memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{check_count, check_fields};
use crate::id::EntryId;
use crate::trace::with_trace;
use crate::{StreamBroker, StreamEntry, StreamError};

/// How many entries a tail takes from the log per lock.
const TAIL_BATCH: usize = 128;

/// In-process stream broker with Redis Streams semantics; clones share the same streams.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    streams: Arc<Mutex<HashMap<String, StreamLog>>>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

/// An entry's fields as stored (reads hand out copies).
type Fields = Box<[(String, String)]>;

/// One stream: its entries, its groups and a signal that fires on every append.
struct StreamLog {
    entries: VecDeque<(EntryId, Fields)>,
    last_id: EntryId,
    groups: HashMap<String, Group>,
    appended: watch::Sender<EntryId>,
}

/// A consumer group: how far it has read and what its consumers have not acked yet.
struct Group {
    last_delivered: EntryId,
    pending: BTreeMap<EntryId, Pending>,
}

/// A delivered, unacked entry (which consumer holds it is not observable through the port).
struct Pending {
    delivered_at: Instant,
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, StreamLog>> {
        // The map stays consistent even if a holder panicked: every mutation is one step.
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StreamLog {
    fn new() -> Self {
        Self {
            entries: VecDeque::new(),
            last_id: EntryId::ZERO,
            groups: HashMap::new(),
            appended: watch::Sender::new(EntryId::ZERO),
        }
    }

    /// Index of the first entry with an id greater than `after`.
    fn first_after(&self, after: EntryId) -> usize {
        self.entries.partition_point(|(id, _)| *id <= after)
    }

    /// Up to `count` entries with ids greater than `after`, with their parsed ids.
    fn after(&self, after: EntryId, count: usize) -> impl Iterator<Item = (EntryId, StreamEntry)> {
        self.entries
            .range(self.first_after(after)..)
            .take(count)
            .map(|(id, fields)| (*id, to_entry(*id, fields)))
    }

    fn append(&mut self, fields: Vec<(String, String)>, max_len: Option<usize>) -> Option<EntryId> {
        let id = self.last_id.next(now_ms())?;
        self.last_id = id;
        self.entries.push_back((id, fields.into()));
        if let Some(max_len) = max_len {
            let excess = self.entries.len().saturating_sub(max_len);
            self.entries.drain(..excess);
        }
        self.appended.send_replace(id);
        Some(id)
    }

    fn deliver_new(
        &mut self,
        stream: &str,
        group: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StreamError> {
        let state = self
            .groups
            .get_mut(group)
            .ok_or_else(|| StreamError::no_group(stream, group))?;
        let start = self
            .entries
            .partition_point(|(id, _)| *id <= state.last_delivered);
        let now = Instant::now();
        let mut delivered = Vec::new();
        for (id, fields) in self.entries.range(start..).take(count) {
            state.last_delivered = *id;
            state.pending.insert(*id, Pending { delivered_at: now });
            delivered.push(to_entry(*id, fields));
        }
        Ok(delivered)
    }

    fn claim(
        &mut self,
        stream: &str,
        group: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StreamError> {
        let entries = &self.entries;
        let state = self
            .groups
            .get_mut(group)
            .ok_or_else(|| StreamError::no_group(stream, group))?;
        let now = Instant::now();
        let mut claimed = Vec::new();
        let mut trimmed = Vec::new();
        for (id, pending) in state.pending.iter_mut() {
            if claimed.len() >= count {
                break;
            }
            if now.saturating_duration_since(pending.delivered_at) < min_idle {
                continue;
            }
            match find(entries, *id) {
                Some(fields) => {
                    pending.delivered_at = now;
                    claimed.push(to_entry(*id, fields));
                }
                None => trimmed.push(*id),
            }
        }
        for id in trimmed {
            state.pending.remove(&id);
        }
        Ok(claimed)
    }
}

#[async_trait]
impl StreamBroker for MemoryBroker {
    async fn append(
        &self,
        stream: &str,
        fields: &[(String, String)],
        max_len: Option<usize>,
    ) -> Result<String, StreamError> {
        check_fields(fields)?;
        let fields = with_trace(fields);
        let mut streams = self.lock();
        let log = streams
            .entry(stream.to_owned())
            .or_insert_with(StreamLog::new);
        let id = log.append(fields, max_len).ok_or(StreamError::Backend(
            "the stream's entry ids are exhausted".to_owned(),
        ))?;
        Ok(id.to_string())
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), StreamError> {
        let mut streams = self.lock();
        let log = streams
            .entry(stream.to_owned())
            .or_insert_with(StreamLog::new);
        let last_id = log.last_id;
        log.groups.entry(group.to_owned()).or_insert_with(|| Group {
            last_delivered: last_id,
            pending: BTreeMap::new(),
        });
        Ok(())
    }

    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        _consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, StreamError> {
        check_count(count)?;
        // A wait too long to represent is a wait without end.
        let deadline = Instant::now().checked_add(block);
        loop {
            let mut appended = {
                let mut streams = self.lock();
                let log = streams
                    .get_mut(stream)
                    .ok_or_else(|| StreamError::no_group(stream, group))?;
                // Subscribe before looking, so an append right after the look still wakes us.
                let appended = log.appended.subscribe();
                let delivered = log.deliver_new(stream, group, count)?;
                if !delivered.is_empty() || block.is_zero() {
                    return Ok(delivered);
                }
                appended
            };
            let changed = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, appended.changed()).await,
                None => Ok(appended.changed().await),
            };
            match changed {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
        }
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), StreamError> {
        let ids = ids
            .iter()
            .map(|id| id.parse::<EntryId>())
            .collect::<Result<Vec<_>, _>>()?;
        let mut streams = self.lock();
        if let Some(state) = streams
            .get_mut(stream)
            .and_then(|log| log.groups.get_mut(group))
        {
            for id in ids {
                state.pending.remove(&id);
            }
        }
        Ok(())
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        _consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StreamError> {
        check_count(count)?;
        let mut streams = self.lock();
        let log = streams
            .get_mut(stream)
            .ok_or_else(|| StreamError::no_group(stream, group))?;
        log.claim(stream, group, min_idle, count)
    }

    async fn range(
        &self,
        stream: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StreamError> {
        check_count(count)?;
        let after = after.map(str::parse).transpose()?.unwrap_or(EntryId::ZERO);
        let streams = self.lock();
        Ok(streams
            .get(stream)
            .map(|log| log.after(after, count).map(|(_, entry)| entry).collect())
            .unwrap_or_default())
    }

    async fn tail(
        &self,
        stream: &str,
        after: Option<String>,
    ) -> Result<BoxStream<'static, Result<StreamEntry, StreamError>>, StreamError> {
        let after = after.as_deref().map(str::parse::<EntryId>).transpose()?;
        let (last, appended) = {
            let mut streams = self.lock();
            let log = streams
                .entry(stream.to_owned())
                .or_insert_with(StreamLog::new);
            (after.unwrap_or(log.last_id), log.appended.subscribe())
        };
        let tail = Tail {
            broker: self.clone(),
            stream: stream.to_owned(),
            last,
            appended,
            buffered: VecDeque::new(),
        };
        Ok(futures::stream::unfold(tail, Tail::next).boxed())
    }
}

/// The state of one live tail; dropping it ends the feed (no task runs on its behalf).
struct Tail {
    broker: MemoryBroker,
    stream: String,
    last: EntryId,
    appended: watch::Receiver<EntryId>,
    buffered: VecDeque<StreamEntry>,
}

impl Tail {
    async fn next(mut self) -> Option<(Result<StreamEntry, StreamError>, Self)> {
        loop {
            if let Some(entry) = self.buffered.pop_front() {
                return Some((Ok(entry), self));
            }
            // Mark the signal seen before looking, so an append after the look wakes us.
            self.appended.borrow_and_update();
            {
                let streams = self.broker.lock();
                if let Some(log) = streams.get(&self.stream) {
                    for (id, entry) in log.after(self.last, TAIL_BATCH) {
                        self.last = id;
                        self.buffered.push_back(entry);
                    }
                }
            }
            if self.buffered.is_empty() && self.appended.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// The fields of entry `id`, unless it was trimmed away.
fn find(entries: &VecDeque<(EntryId, Fields)>, id: EntryId) -> Option<&Fields> {
    let index = entries.partition_point(|(entry_id, _)| *entry_id < id);
    match entries.get(index) {
        Some((entry_id, fields)) if *entry_id == id => Some(fields),
        _ => None,
    }
}

fn to_entry(id: EntryId, fields: &[(String, String)]) -> StreamEntry {
    StreamEntry {
        id: id.to_string(),
        fields: fields.to_vec(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
