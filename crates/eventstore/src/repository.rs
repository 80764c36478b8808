//! Loads aggregates from their streams, runs commands and appends the resulting events.

use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::StoreError;
use crate::event::{EventData, Metadata, Snapshot};
use crate::state_cache::StateCache;
use crate::store::{Direction, EventStore};
use crate::stream::StreamId;
use crate::version::ExpectedVersion;

/// Events read per page while loading an aggregate.
const LOAD_PAGE: usize = 1_000;

/// Why a command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Domain(E),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event or snapshot does not decode into the aggregate's types.
    #[error("stored data of {stream} does not decode: {reason}")]
    Decode {
        /// The stream.
        stream: String,
        /// The decoder's message.
        reason: String,
    },
    /// Other writers kept winning the race for the stream.
    #[error("stream {stream} stayed contended after {attempts} attempts")]
    Contended {
        /// The stream.
        stream: String,
        /// How many times the command was tried.
        attempts: u32,
    },
}

impl<E: std::error::Error + 'static> RepositoryError<E> {
    /// A stable code for everything but domain errors, which carry their own.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Domain(_) => "DOMAIN",
            Self::Store(e) => e.code(),
            Self::Decode { .. } => "EVENT_CODEC",
            Self::Contended { .. } => "CONTENDED",
        }
    }
}

/// An aggregate's state and the stream version it reflects.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The folded state.
    pub state: A,
    /// The version of the last event folded in (0 for a new aggregate).
    pub version: u64,
}

/// The result of a command: the new state and the events it recorded.
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    /// The state after the events.
    pub state: A,
    /// The stream version after the append.
    pub version: u64,
    /// The recorded events (empty when the command changed nothing).
    pub events: Vec<A::Event>,
}

/// Loads, handles and appends for one aggregate type.
///
/// Clones share one state cache (see [`Repository::with_cache`]).
pub struct Repository<A> {
    store: Arc<dyn EventStore>,
    snapshot_every: Option<u64>,
    max_attempts: u32,
    cache: Option<Arc<StateCache<A>>>,
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            snapshot_every: self.snapshot_every,
            max_attempts: self.max_attempts,
            cache: self.cache.clone(),
        }
    }
}

impl<A: Aggregate> Repository<A> {
    /// A repository over `store`, retrying a command up to 5 times on version conflicts.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            snapshot_every: None,
            max_attempts: 5,
            cache: None,
        }
    }

    /// Keeps the states of up to `capacity` recently used aggregates in memory with their
    /// versions: a command then runs without reading its stream (the append's expected-version
    /// check catches anyone who wrote since, and only the newer events are read), and a load
    /// reads only the events after the cached version. A refusal or no-op decided on a cached
    /// state is confirmed against the stream before it is returned. Worth it for aggregates
    /// this process writes repeatedly; `capacity` 0 turns the cache off.
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = NonZeroUsize::new(capacity).map(|c| Arc::new(StateCache::<A>::new(c)));
        self
    }

    /// Saves a snapshot whenever the stream crosses a multiple of `every` events.
    pub fn with_snapshots(mut self, every: u64) -> Self {
        self.snapshot_every = Some(every.max(1));
        self
    }

    /// Sets how many times a command is tried when other writers win the race.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The stream of aggregate `id`.
    pub fn stream_of(id: &str) -> Result<StreamId, StoreError> {
        StreamId::of(A::CATEGORY, id)
    }

    /// Loads the aggregate: from its snapshot if there is one (repositories set up
    /// `with_snapshots`), then the events after it.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream = Self::stream_of(id)?;
        if let Some((state, version)) = self.cache.as_ref().and_then(|c| c.get(stream.as_str())) {
            return self.catch_up(&stream, Loaded { state, version }).await;
        }
        // Only repositories that take snapshots look for one: a round trip saved per load.
        let snapshot = match self.snapshot_every {
            Some(_) => self.store.load_snapshot(&stream).await?,
            None => None,
        };
        let start = match snapshot {
            Some(snapshot) => Loaded {
                state: serde_json::from_value(snapshot.state).map_err(|e| {
                    RepositoryError::Decode {
                        stream: stream.to_string(),
                        reason: format!("snapshot: {e}"),
                    }
                })?,
                version: snapshot.version,
            },
            None => Loaded {
                state: A::default(),
                version: 0,
            },
        };
        self.catch_up(&stream, start).await
    }

    /// Loads the aggregate when the caller knows its stream reached `version`: a cached state
    /// at least that new is returned without reading the stream (it may be behind events
    /// written after `version`; use [`Repository::load`] to read your own writes).
    pub async fn load_at_least(
        &self,
        id: &str,
        version: u64,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream = Self::stream_of(id)?;
        if let Some((state, cached)) = self.cache.as_ref().and_then(|c| c.get(stream.as_str()))
            && cached >= version
            && version > 0
        {
            return Ok(Loaded {
                state,
                version: cached,
            });
        }
        self.load(id).await
    }

    /// The cached state of aggregate `id` if there is one (`false`: it may be behind its
    /// stream), else the state loaded from the store (`true`). For commands that write several
    /// aggregates in one [`EventStore::append_multi`]; pair with [`Repository::refresh`] and
    /// [`Repository::remember`].
    pub async fn current(&self, id: &str) -> Result<(Loaded<A>, bool), RepositoryError<A::Error>> {
        let stream = Self::stream_of(id)?;
        match self.cache.as_ref().and_then(|c| c.get(stream.as_str())) {
            Some((state, version)) => Ok((Loaded { state, version }, false)),
            None => Ok((self.load(id).await?, true)),
        }
    }

    /// The cached state of aggregate `id`, or with nothing cached the empty state at version 0
    /// without reading the stream; `false`: not confirmed against the stream. For commands that
    /// usually create the aggregate: an append expecting version 0 fails if the stream exists,
    /// and [`Repository::refresh`] then reads it.
    pub fn current_or_empty(&self, id: &str) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream = Self::stream_of(id)?;
        let (state, version) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(stream.as_str()))
            .unwrap_or_default();
        Ok(Loaded { state, version })
    }

    /// Brings `loaded` (a state of aggregate `id`) up to date with its stream.
    pub async fn refresh(
        &self,
        id: &str,
        loaded: Loaded<A>,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let stream = Self::stream_of(id)?;
        self.catch_up(&stream, loaded).await
    }

    /// Records in the cache that aggregate `id` is `state` at `version`, after the caller
    /// appended its events itself.
    pub fn remember(&self, id: &str, state: &A, version: u64) {
        if let (Some(cache), Ok(stream)) = (&self.cache, Self::stream_of(id)) {
            cache.put(stream.as_str(), state, version);
        }
    }

    /// Records that the caller appended events of aggregate `id` itself (in an
    /// [`EventStore::append_multi`]), taking it from version `before` to `after` with `state`
    /// the result: caches it, and saves a snapshot when one is due.
    pub async fn appended(&self, id: &str, state: &A, before: u64, after: u64) {
        let Ok(stream) = Self::stream_of(id) else {
            return;
        };
        if let Some(cache) = &self.cache {
            cache.put(stream.as_str(), state, after);
        }
        self.maybe_snapshot(&stream, state, before, after).await;
    }

    /// Encodes `events` for the store with `metadata`.
    pub fn encode(
        events: &[A::Event],
        metadata: &Metadata,
    ) -> Result<Vec<EventData>, RepositoryError<A::Error>> {
        events
            .iter()
            .map(|e| EventData::json(e.event_type(), e).map(|d| d.with_metadata(metadata.clone())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Into::into)
    }

    /// Folds the events after `loaded.version` into it (and caches the result).
    async fn catch_up(
        &self,
        stream: &StreamId,
        mut loaded: Loaded<A>,
    ) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        loop {
            let page = self
                .store
                .read_stream(
                    stream,
                    Direction::Forward,
                    Some(loaded.version + 1),
                    LOAD_PAGE,
                )
                .await?;
            let full = page.len() == LOAD_PAGE;
            for recorded in page {
                let event: A::Event = recorded.decode().map_err(|e| {
                    if let Some(cache) = &self.cache {
                        cache.forget(stream.as_str());
                    }
                    RepositoryError::Decode {
                        stream: stream.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                loaded.state.apply(&event);
                loaded.version = recorded.version;
            }
            if !full {
                if let Some(cache) = &self.cache {
                    cache.put(stream.as_str(), &loaded.state, loaded.version);
                }
                return Ok(loaded);
            }
        }
    }

    /// Runs `command` against the current state and appends its events, retrying on conflicts.
    pub async fn execute(
        &self,
        id: &str,
        command: A::Command,
        metadata: Metadata,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let (current, verified) = self.current(id).await?;
        self.execute_from(id, current, verified, command, metadata)
            .await
    }

    /// Like [`Repository::execute`], for a command that usually creates the aggregate: with
    /// nothing cached it is decided on the empty state without reading the stream first (one
    /// round trip fewer); if the stream exists after all, the append expecting version 0 fails
    /// and the command is decided again on the stream's state.
    pub async fn execute_new(
        &self,
        id: &str,
        command: A::Command,
        metadata: Metadata,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let current = self.current_or_empty(id)?;
        self.execute_from(id, current, false, command, metadata)
            .await
    }

    /// Runs `command` starting from `current` (`verified`: read from the stream, not cached
    /// or assumed).
    async fn execute_from(
        &self,
        id: &str,
        mut current: Loaded<A>,
        mut verified: bool,
        command: A::Command,
        metadata: Metadata,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let stream = Self::stream_of(id)?;
        // A cached or assumed state may be behind the stream: what it refuses or ignores is
        // checked against the stream before it is believed.
        let mut attempts = 0;
        while attempts < self.max_attempts {
            let Loaded::<A> { mut state, version } = current;
            let decided = state.handle(command.clone());
            if !verified && decided.as_ref().map_or(true, Vec::is_empty) {
                current = self.catch_up(&stream, Loaded { state, version }).await?;
                verified = true;
                continue;
            }
            let events = decided.map_err(RepositoryError::Domain)?;
            if events.is_empty() {
                return Ok(Executed {
                    state,
                    version,
                    events,
                });
            }
            attempts += 1;
            let data = events
                .iter()
                .map(|e| {
                    EventData::json(e.event_type(), e).map(|d| d.with_metadata(metadata.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let expected = ExpectedVersion::Exact(version);
            match self.store.append(&stream, expected, data).await {
                Ok(done) => {
                    for event in &events {
                        state.apply(event);
                    }
                    self.appended(id, &state, version, done.next_expected_version)
                        .await;
                    return Ok(Executed {
                        state,
                        version: done.next_expected_version,
                        events,
                    });
                }
                Err(StoreError::WrongExpectedVersion { .. }) => {
                    tracing::debug!(stream = %stream, "version conflict; reading the newer events");
                    // The state at `version` is still true: only the newer events are read.
                    current = self.catch_up(&stream, Loaded { state, version }).await?;
                    verified = true;
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(RepositoryError::Contended {
            stream: stream.to_string(),
            attempts: self.max_attempts,
        })
    }

    async fn maybe_snapshot(&self, stream: &StreamId, state: &A, before: u64, after: u64) {
        let Some(every) = self.snapshot_every else {
            return;
        };
        if before / every == after / every {
            return;
        }
        let snapshot = match serde_json::to_value(state) {
            Ok(value) => Snapshot {
                version: after,
                state: value,
            },
            Err(err) => {
                tracing::warn!(stream = %stream, error = %err, "aggregate state does not serialise; no snapshot");
                return;
            }
        };
        // A snapshot is an optimisation: failing to save one must not fail the command.
        if let Err(err) = self.store.save_snapshot(stream, &snapshot).await {
            tracing::warn!(stream = %stream, error = %err, "snapshot not saved");
        }
    }
}
