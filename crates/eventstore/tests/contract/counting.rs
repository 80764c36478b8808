//! A store that passes every call to a real one and counts stream reads, so a test can tell
//! whether a command read its stream before appending.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use eventstore::{
    AppendResult, Direction, EventData, EventStore, ExpectedVersion, Position, RecordedEvent,
    Snapshot, StoreError, StreamAppend, StreamId,
};
use futures::stream::BoxStream;

pub struct CountingStore {
    inner: Arc<dyn EventStore>,
    stream_reads: AtomicUsize,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn EventStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            stream_reads: AtomicUsize::new(0),
        })
    }

    /// Stream reads (`read_stream`, `stream_version`, `load_snapshot`) so far.
    pub fn stream_reads(&self) -> usize {
        self.stream_reads.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.stream_reads.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        self.inner.append(stream, expected, events).await
    }

    async fn append_multi(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        self.inner.append_multi(appends).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.count();
        self.inner.read_stream(stream, direction, from, limit).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.count();
        self.inner.stream_version(stream).await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }

    fn subscribe_all(
        &self,
        after: Position,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        self.inner.subscribe_all(after)
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        self.inner.load_checkpoint(name).await
    }

    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError> {
        self.inner.save_checkpoint(name, position).await
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.count();
        self.inner.load_snapshot(stream).await
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        self.inner.save_snapshot(stream, snapshot).await
    }

    fn adapter(&self) -> &'static str {
        self.inner.adapter()
    }
}
