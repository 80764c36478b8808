//! Dynamic batching with back-pressure: requests queue (bounded in texts) for one inference
//! thread, which gathers them for up to `max_batch_wait` or `max_batch_texts` texts and runs
//! them as one engine call per text kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::embedding::TextKind;
use crate::engine::Engine;
use crate::error::ModelError;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, ModelError>>;

/// One request waiting for the inference thread.
struct Job {
    texts: Vec<String>,
    kind: TextKind,
    reply: Reply,
    queued_at: Instant,
}

/// The handle to the inference thread; dropping every handle stops the thread after its batch.
#[derive(Debug)]
pub struct Batcher {
    sender: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// Batching limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most texts per batch.
    pub max_batch_texts: usize,
    /// Longest wait for more texts after a batch's first request.
    pub max_batch_wait: Duration,
    /// Most texts queued.
    pub queue_capacity: usize,
}

impl Batcher {
    /// Starts the inference thread over `engine`.
    pub fn start(engine: Arc<Engine>, limits: BatchLimits) -> Result<Self, ModelError> {
        let capacity = limits.queue_capacity.max(1);
        let (sender, receiver) = std::sync::mpsc::sync_channel(capacity);
        let queued = Arc::new(AtomicUsize::new(0));
        let worker_queued = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("model-inference".into())
            .spawn(move || run(&engine, &receiver, &worker_queued, limits))
            .map_err(|e| ModelError::io("model-inference thread", e))?;
        Ok(Self {
            sender,
            queued,
            capacity,
        })
    }

    /// Queues `texts` and waits for their vectors; `Overloaded` when the queue has no room.
    pub async fn embed(
        &self,
        texts: Vec<String>,
        kind: TextKind,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let n = texts.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let reserved = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + n <= self.capacity).then_some(queued + n)
            });
        if reserved.is_err() {
            metrics::counter!("model_rejected_texts_total").increment(n as u64);
            return Err(ModelError::Overloaded);
        }
        metrics::gauge!("model_queue_texts").increment(n as f64);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            texts,
            kind,
            reply,
            queued_at: Instant::now(),
        };
        if let Err(error) = self.sender.try_send(job) {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            metrics::gauge!("model_queue_texts").decrement(n as f64);
            return Err(match error {
                TrySendError::Full(_) => ModelError::Overloaded,
                TrySendError::Disconnected(_) => ModelError::Stopped,
            });
        }
        answer.await.map_err(|_| ModelError::Stopped)?
    }
}

/// The inference thread: gather a batch, run it, answer every job; until all senders are gone.
fn run(engine: &Engine, receiver: &Receiver<Job>, queued: &AtomicUsize, limits: BatchLimits) {
    while let Ok(first) = receiver.recv() {
        let deadline = Instant::now() + limits.max_batch_wait;
        let mut texts = first.texts.len();
        let mut batch = vec![first];
        while texts < limits.max_batch_texts {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(job) => {
                    texts += job.texts.len();
                    batch.push(job);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        queued.fetch_sub(texts, Ordering::AcqRel);
        metrics::gauge!("model_queue_texts").decrement(texts as f64);
        for job in &batch {
            metrics::histogram!("model_queue_wait_seconds")
                .record(job.queued_at.elapsed().as_secs_f64());
        }
        run_batch(engine, batch, texts);
    }
    tracing::debug!("model inference thread stopped");
}

/// Runs one gathered batch (one engine call per text kind) and answers its jobs.
fn run_batch(engine: &Engine, batch: Vec<Job>, texts: usize) {
    let started = Instant::now();
    let (queries, passages): (Vec<Job>, Vec<Job>) = batch
        .into_iter()
        .partition(|job| job.kind == TextKind::Query);
    for (jobs, kind) in [(queries, TextKind::Query), (passages, TextKind::Passage)] {
        if jobs.is_empty() {
            continue;
        }
        let all: Vec<&str> = jobs
            .iter()
            .flat_map(|job| job.texts.iter().map(String::as_str))
            .collect();
        match engine.embed(&all, kind) {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                for job in jobs {
                    let mine: Vec<Vec<f32>> = vectors.by_ref().take(job.texts.len()).collect();
                    // The caller may have gone away (cancelled); nothing to do then.
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, code = error.code(), "model batch failed");
                let message = error.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(ModelError::Batch(message.clone())));
                }
            }
        }
    }
    metrics::histogram!("model_batch_texts").record(texts as f64);
    metrics::histogram!("model_batch_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("model_embedded_texts_total").increment(texts as u64);
}
