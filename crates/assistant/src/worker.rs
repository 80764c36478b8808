//! The AI worker: answers inbound chat messages in a consumer group and takes over the
//! messages of workers that stopped midway.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use streams::{StreamBroker, StreamEntry, StreamError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::answer::{Answer, AnswerEvent, Answerer};
use crate::chat::{HISTORY_MAX_LEN, REPLIES_MAX_LEN};
use crate::chat_entry::{self, ChatEventKind, HistoryEntry, HistoryItem, Inbound};
use crate::error::AssistantError;
use crate::measure;
use crate::session::{ChatStreams, WORKER_GROUP};

/// How far before an inbound message its session's entries about it are looked for (they
/// are written after it; this only covers clock steps).
const LOOKBACK: Duration = Duration::from_secs(60);
/// How many entries one look-back read fetches.
const LOOKBACK_PAGE: usize = 500;
/// The longest pause after a broker failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How a worker reads and claims.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's consumer name in the group (unique per worker).
    pub consumer: String,
    /// How many messages one read takes.
    pub batch: usize,
    /// How long one read waits for a message.
    pub block: Duration,
    /// How long a message must sit unacked with another consumer before it is taken over;
    /// longer than the slowest answer, or a slow worker's message is answered twice.
    pub min_idle: Duration,
    /// How often pending messages of stopped workers are looked for.
    pub claim_every: Duration,
}

impl WorkerConfig {
    /// Defaults for consumer `consumer`: batches of 8, 2 s reads, take over after 2 min
    /// idle, look every 30 s.
    pub fn new(consumer: impl Into<String>) -> Self {
        Self {
            consumer: consumer.into(),
            batch: 8,
            block: Duration::from_secs(2),
            min_idle: Duration::from_secs(120),
            claim_every: Duration::from_secs(30),
        }
    }
}

/// Answers chat messages from the inbound stream (consumer group [`WORKER_GROUP`]), writing
/// each answer's chunks to its session's reply stream as they are made.
#[derive(Clone)]
pub struct ChatWorker {
    broker: Arc<dyn StreamBroker>,
    answerer: Answerer,
    streams: ChatStreams,
    config: WorkerConfig,
}

impl std::fmt::Debug for ChatWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatWorker")
            .field("streams", &self.streams)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a session already holds about a message.
#[derive(Debug, Default)]
struct Progress {
    /// The final history entry (answer or failure), if written.
    outcome: Option<HistoryItem>,
    /// Whether a final reply event (done or failed) was written.
    final_event: bool,
    /// Whether any reply event was written.
    started: bool,
}

impl ChatWorker {
    /// A worker answering with `answerer`, on the streams `streams` of `broker`.
    pub fn new(
        broker: Arc<dyn StreamBroker>,
        answerer: Answerer,
        streams: ChatStreams,
        config: WorkerConfig,
    ) -> Self {
        Self {
            broker,
            answerer,
            streams,
            config,
        }
    }

    /// Runs `count` workers named `{consumer}-{n}` until `shutdown`; returns when all stopped.
    pub async fn run_many(self, count: usize, shutdown: CancellationToken) {
        let mut workers = tokio::task::JoinSet::new();
        for n in 0..count.max(1) {
            let mut worker = self.clone();
            worker.config.consumer = format!("{}-{n}", self.config.consumer);
            workers.spawn(worker.run(shutdown.clone()));
        }
        while let Some(joined) = workers.join_next().await {
            if let Err(err) = joined {
                tracing::error!(error = %err, "chat worker task failed");
            }
        }
    }

    /// Answers messages until `shutdown`; a message being answered when it fires is left
    /// pending for another worker to take over.
    pub async fn run(self, shutdown: CancellationToken) {
        let inbound = self.streams.inbound();
        tracing::info!(consumer = %self.config.consumer, stream = %inbound, "chat worker started");
        let mut failures = 0u32;
        let mut group_ready = false;
        let mut next_claim = Instant::now();
        while !shutdown.is_cancelled() {
            let step = async {
                if !group_ready {
                    self.broker.ensure_group(&inbound, WORKER_GROUP).await?;
                    group_ready = true;
                }
                if Instant::now() >= next_claim {
                    next_claim = Instant::now() + self.config.claim_every;
                    self.claim(&inbound).await?;
                }
                let wait = self
                    .config
                    .block
                    .min(next_claim.saturating_duration_since(Instant::now()));
                let entries = self
                    .broker
                    .read_group(
                        &inbound,
                        WORKER_GROUP,
                        &self.config.consumer,
                        self.config.batch.max(1),
                        wait,
                    )
                    .await?;
                for entry in entries {
                    self.handle(&inbound, &entry, false).await?;
                }
                Ok::<_, AssistantError>(())
            };
            let outcome = tokio::select! {
                () = shutdown.cancelled() => break,
                outcome = step => outcome,
            };
            match outcome {
                Ok(()) => failures = 0,
                Err(err) => {
                    if matches!(err, AssistantError::Stream(StreamError::NoGroup { .. })) {
                        group_ready = false;
                    }
                    failures = failures.saturating_add(1);
                    let pause = backoff(failures);
                    tracing::warn!(code = err.code(), error = %err, retry_in_ms = pause.as_millis(), "chat worker step failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        tracing::info!(consumer = %self.config.consumer, "chat worker stopped");
    }

    /// Takes over and answers messages other consumers left pending for `min_idle`.
    async fn claim(&self, inbound: &str) -> Result<(), AssistantError> {
        loop {
            let claimed = self
                .broker
                .claim_stale(
                    inbound,
                    WORKER_GROUP,
                    &self.config.consumer,
                    self.config.min_idle,
                    self.config.batch.max(1),
                )
                .await?;
            if claimed.is_empty() {
                return Ok(());
            }
            measure::claimed(claimed.len());
            tracing::info!(count = claimed.len(), consumer = %self.config.consumer, "claimed chat messages of a stopped worker");
            let full = claimed.len() >= self.config.batch.max(1);
            for entry in &claimed {
                self.handle(inbound, entry, true).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Answers one inbound message and acks it. Broker failures are returned with the
    /// message unacked (another read or claim retries it); answer failures become a
    /// `Failed` event.
    async fn handle(
        &self,
        inbound: &str,
        entry: &StreamEntry,
        claimed: bool,
    ) -> Result<(), AssistantError> {
        let message = match Inbound::read(entry) {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(entry = %entry.id, error = %err, "dropping a malformed chat message");
                measure::chat_message("malformed");
                return self.ack(inbound, entry).await;
            }
        };
        let span = tracing::info_span!(
            "chat.answer",
            session = %message.session,
            message_id = %message.message_id,
            claimed
        );
        if let Err(err) = telemetry::set_parent(&span, entry.trace_context()) {
            tracing::debug!(error = %err, "chat message trace context not applied");
        }
        async {
            let progress = self.progress(&message, &entry.id, claimed).await?;
            if let Some(outcome) = progress.outcome {
                if !progress.final_event {
                    self.reply(&message, final_event(outcome)?).await?;
                }
                measure::chat_message("duplicate");
                tracing::info!("chat message already answered");
                return self.ack(inbound, entry).await;
            }
            if progress.started {
                self.reply(&message, ChatEventKind::Restarted).await?;
            }
            let outcome = self.answer(&message).await?;
            self.broker
                .append(
                    &self.streams.history(message.session),
                    &outcome.fields(message.message_id)?,
                    Some(HISTORY_MAX_LEN),
                )
                .await?;
            let answered = matches!(outcome, HistoryItem::Answer(_));
            self.reply(&message, final_event(outcome)?).await?;
            measure::chat_message(if answered { "answered" } else { "failed" });
            self.ack(inbound, entry).await
        }
        .instrument(span)
        .await
    }

    /// Streams the answer's chunks to the reply stream; the final history item (answer or
    /// failure) when done.
    async fn answer(&self, message: &Inbound) -> Result<HistoryItem, AssistantError> {
        let mut events = match self.answerer.ask_stream(&message.text, None).await {
            Ok(events) => events,
            Err(err) => return failure(err),
        };
        while let Some(event) = events.next().await {
            match event {
                Ok(AnswerEvent::Chunk(text)) => {
                    self.reply(message, ChatEventKind::Chunk { text }).await?;
                }
                Ok(AnswerEvent::Done(answer)) => return Ok(HistoryItem::Answer(answer)),
                Err(err) => return failure(err),
            }
        }
        failure(AssistantError::Llm(llm::LlmError::Truncated))
    }

    async fn reply(&self, message: &Inbound, event: ChatEventKind) -> Result<(), AssistantError> {
        self.broker
            .append(
                &self.streams.replies(message.session),
                &event.fields(message.message_id)?,
                Some(REPLIES_MAX_LEN),
            )
            .await?;
        Ok(())
    }

    async fn ack(&self, inbound: &str, entry: &StreamEntry) -> Result<(), AssistantError> {
        self.broker
            .ack(inbound, WORKER_GROUP, std::slice::from_ref(&entry.id))
            .await?;
        Ok(())
    }

    /// What the session already holds about `message` (delivered as inbound entry `id`):
    /// its entries are written after the message was sent, so only the recent ones are read.
    /// A first delivery only needs the history (a duplicate entry of an answered message);
    /// a claimed one also needs the replies a stopped worker may have written.
    async fn progress(
        &self,
        message: &Inbound,
        id: &str,
        claimed: bool,
    ) -> Result<Progress, AssistantError> {
        let since = lookback_cursor(id);
        let mut progress = Progress::default();
        self.scan(&self.streams.history(message.session), &since, |entry| {
            if chat_entry::message_id(entry).ok() == Some(message.message_id) {
                let read = HistoryEntry::read(entry)?;
                if !matches!(read.item, HistoryItem::Message { .. }) {
                    progress.outcome = Some(read.item);
                }
            }
            Ok(())
        })
        .await?;
        if !claimed {
            // History is written before the final reply: an outcome there is the whole story.
            progress.final_event = progress.outcome.is_some();
            return Ok(progress);
        }
        self.scan(&self.streams.replies(message.session), &since, |entry| {
            if chat_entry::message_id(entry).ok() == Some(message.message_id) {
                progress.started = true;
                progress.final_event |= matches!(entry.field("kind"), Some("done" | "failed"));
            }
            Ok(())
        })
        .await?;
        Ok(progress)
    }

    async fn scan(
        &self,
        stream: &str,
        since: &str,
        mut visit: impl FnMut(&StreamEntry) -> Result<(), AssistantError>,
    ) -> Result<(), AssistantError> {
        let mut after = since.to_owned();
        loop {
            let page = self
                .broker
                .range(stream, Some(&after), LOOKBACK_PAGE)
                .await?;
            for entry in &page {
                visit(entry)?;
            }
            match page.last() {
                Some(last) if page.len() == LOOKBACK_PAGE => after.clone_from(&last.id),
                _ => return Ok(()),
            }
        }
    }
}

/// The reply event that ends a message with `outcome`.
fn final_event(outcome: HistoryItem) -> Result<ChatEventKind, AssistantError> {
    match outcome {
        HistoryItem::Answer(Answer {
            model, citations, ..
        }) => Ok(ChatEventKind::Done { model, citations }),
        HistoryItem::Failed { code } => Ok(ChatEventKind::Failed { code }),
        HistoryItem::Message { .. } => Err(AssistantError::Corrupt(
            "a message is not the outcome of answering".to_owned(),
        )),
    }
}

/// A failed answer: broker failures propagate (the message stays pending), others are
/// the message's outcome.
fn failure(err: AssistantError) -> Result<HistoryItem, AssistantError> {
    match err {
        AssistantError::Stream(_) => Err(err),
        other => {
            tracing::warn!(code = other.code(), error = %other, "chat answer failed");
            Ok(HistoryItem::Failed {
                code: other.code().to_owned(),
            })
        }
    }
}

/// An entry id [`LOOKBACK`] before entry `id` (or the start of the stream).
fn lookback_cursor(id: &str) -> String {
    let millis = id
        .split_once('-')
        .and_then(|(ms, _)| ms.parse::<u64>().ok())
        .unwrap_or(0);
    let lookback = u64::try_from(LOOKBACK.as_millis()).unwrap_or(u64::MAX);
    format!("{}-0", millis.saturating_sub(lookback))
}

fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_millis(100u64 << exponent).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookback_and_backoff() {
        assert_eq!(lookback_cursor("1700000060000-3"), "1700000000000-0");
        assert_eq!(lookback_cursor("5-0"), "0-0");
        assert_eq!(lookback_cursor("garbage"), "0-0");
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(100), MAX_BACKOFF);
    }
}
