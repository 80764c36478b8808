//! The port: what the chat needs from a stream broker.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::{StreamEntry, StreamError};

/// An append-only stream store with consumer groups (Redis Streams semantics).
///
/// Entry ids are `<milliseconds>-<sequence>` strings, increasing within a stream. Every
/// adapter adds the current span's W3C trace context to appended entries ([`crate::with_trace`]).
#[async_trait]
pub trait StreamBroker: Send + Sync + 'static {
    /// Appends one entry (`XADD`), trimming the stream to about `max_len` entries (never
    /// fewer) when given; returns the new entry's id.
    async fn append(
        &self,
        stream: &str,
        fields: &[(String, String)],
        max_len: Option<usize>,
    ) -> Result<String, StreamError>;

    /// Creates consumer group `group` reading entries appended from now on, creating the
    /// stream if needed (`XGROUP CREATE .. $ MKSTREAM`); succeeds if the group exists.
    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), StreamError>;

    /// Delivers up to `count` entries no consumer of `group` has seen yet to `consumer`,
    /// recording them as pending until acked (`XREADGROUP .. >`). Waits up to `block` for
    /// the first entry; `Duration::ZERO` returns at once (the Redis adapter caps a wait at
    /// about 24 days).
    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, StreamError>;

    /// Marks entries as processed by `group`, removing them from its pending list (`XACK`).
    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), StreamError>;

    /// Hands up to `count` entries pending in `group` for at least `min_idle` (their consumer
    /// likely crashed) over to `consumer` (`XAUTOCLAIM`). Pending entries whose stream entry
    /// was trimmed away are dropped from the pending list, not returned.
    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StreamError>;

    /// Up to `count` entries in id order, those after `after` when given (`XRANGE`).
    async fn range(
        &self,
        stream: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StreamError>;

    /// A live feed of the entries appended after `after` (after the stream's current end
    /// when `None`), in order. It ends after yielding an error, or when dropped.
    async fn tail(
        &self,
        stream: &str,
        after: Option<String>,
    ) -> Result<BoxStream<'static, Result<StreamEntry, StreamError>>, StreamError>;
}
