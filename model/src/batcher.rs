//! Dynamic batching with back-pressure and a priority lane: requests queue (bounded in texts)
//! for one inference thread. Small requests (single queries, a review's clauses) wait in the
//! priority lane and run first; bulk requests wait in the bulk lane and run in chunks of at most
//! `bulk_chunk_texts` texts, so between two chunks of a bulk load any waiting small request
//! runs: a query waits for at most one chunk, not for a whole bulk batch. After an idle spell
//! the thread gathers requests for up to `max_batch_wait` (or `max_batch_texts` texts) first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::embedding::TextKind;
use crate::engine::Engine;
use crate::error::ModelError;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, ModelError>>;

/// One request waiting for the inference thread, with the vectors of its texts done so far.
struct Job {
    texts: Vec<String>,
    kind: TextKind,
    reply: Reply,
    queued_at: Instant,
    /// Texts taken for inference so far (a bulk job runs chunk by chunk).
    taken: usize,
    vectors: Vec<Vec<f32>>,
}

/// The two lanes; the inference thread waits on the condition variable beside it.
#[derive(Default)]
struct Lanes {
    priority: VecDeque<Job>,
    bulk: VecDeque<Job>,
    /// Set when the last handle is dropped: finish what is queued, then stop.
    closed: bool,
}

impl Lanes {
    fn is_empty(&self) -> bool {
        self.priority.is_empty() && self.bulk.is_empty()
    }

    fn texts_waiting(&self) -> usize {
        self.priority
            .iter()
            .chain(&self.bulk)
            .map(|job| job.texts.len() - job.taken)
            .sum()
    }
}

/// State shared by the handle and the inference thread.
struct Shared {
    lanes: Mutex<Lanes>,
    wake: Condvar,
    /// Texts queued and not yet taken for inference (bounded by the queue capacity).
    queued: AtomicUsize,
    /// Texts embedded since start, both lanes.
    embedded: AtomicU64,
    /// Engine calls since start.
    engine_calls: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Lanes> {
        // A panic while holding the lock leaves the lanes consistent (they are only pushed to
        // and popped from), so a poisoned lock is still usable.
        self.lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The handle to the inference thread; dropping it stops the thread once the queue is empty.
pub struct Batcher {
    shared: Arc<Shared>,
    limits: BatchLimits,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("limits", &self.limits)
            .field("queued", &self.shared.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Batching limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most texts one engine call gathers from the priority lane, and the most an idle thread
    /// waits for before starting.
    pub max_batch_texts: usize,
    /// Longest wait for more texts after a request arrives at an idle thread.
    pub max_batch_wait: Duration,
    /// Most texts queued (both lanes).
    pub queue_capacity: usize,
    /// Requests of at most this many texts go to the priority lane.
    pub priority_max_texts: usize,
    /// Most texts of the bulk lane per engine call; small requests run between two chunks.
    pub bulk_chunk_texts: usize,
}

/// Counters of the inference thread, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherStats {
    /// Texts embedded since start (both lanes; counted before their requests are answered).
    pub embedded_texts: u64,
    /// Engine calls since start.
    pub engine_calls: u64,
    /// Texts queued and not yet taken for inference.
    pub queued_texts: usize,
}

impl Batcher {
    /// Starts the inference thread over `engine`.
    pub fn start(engine: Arc<Engine>, limits: BatchLimits) -> Result<Self, ModelError> {
        let limits = BatchLimits {
            max_batch_texts: limits.max_batch_texts.max(1),
            queue_capacity: limits.queue_capacity.max(1),
            bulk_chunk_texts: limits.bulk_chunk_texts.max(1),
            ..limits
        };
        let shared = Arc::new(Shared {
            lanes: Mutex::new(Lanes::default()),
            wake: Condvar::new(),
            queued: AtomicUsize::new(0),
            embedded: AtomicU64::new(0),
            engine_calls: AtomicU64::new(0),
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("model-inference".into())
            .spawn(move || run(&engine, &worker, limits))
            .map_err(|e| ModelError::io("model-inference thread", e))?;
        Ok(Self { shared, limits })
    }

    /// The inference thread's counters.
    pub fn stats(&self) -> BatcherStats {
        BatcherStats {
            embedded_texts: self.shared.embedded.load(Ordering::Acquire),
            engine_calls: self.shared.engine_calls.load(Ordering::Acquire),
            queued_texts: self.shared.queued.load(Ordering::Acquire),
        }
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
        let capacity = self.limits.queue_capacity;
        let reserved =
            self.shared
                .queued
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                    (queued + n <= capacity).then_some(queued + n)
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
            taken: 0,
            vectors: Vec::with_capacity(n),
        };
        {
            let mut lanes = self.shared.lock();
            if n <= self.limits.priority_max_texts {
                lanes.priority.push_back(job);
            } else {
                lanes.bulk.push_back(job);
            }
        }
        self.shared.wake.notify_one();
        answer.await.map_err(|_| ModelError::Stopped)?
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// Texts of one engine call and where their vectors go: (job position in its lane, count).
struct Work {
    kind: TextKind,
    texts: Vec<String>,
    parts: Vec<(usize, usize)>,
    from_priority: bool,
}

/// The inference thread: wait for work, take the next engine call's texts (priority lane
/// first), run it, hand out the vectors; until the handle is gone and the lanes are empty.
fn run(engine: &Engine, shared: &Shared, limits: BatchLimits) {
    let mut idle = true;
    loop {
        let work = {
            let mut lanes = shared.lock();
            while lanes.is_empty() && !lanes.closed {
                lanes = shared
                    .wake
                    .wait(lanes)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                idle = true;
            }
            if lanes.is_empty() {
                break;
            }
            if idle {
                lanes = gather(shared, lanes, limits);
                idle = false;
            }
            take(&shared.queued, &mut lanes, limits)
        };
        let Some(work) = work else { continue };
        let taken = work.texts.len();
        release(&shared.queued, taken);
        let started = Instant::now();
        let result = engine.embed(&work.texts, work.kind);
        shared.engine_calls.fetch_add(1, Ordering::AcqRel);
        if result.is_ok() {
            shared.embedded.fetch_add(taken as u64, Ordering::AcqRel);
        }
        metrics::histogram!("model_batch_texts").record(taken as f64);
        metrics::histogram!("model_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("model_embedded_texts_total").increment(taken as u64);
        let mut lanes = shared.lock();
        deliver(&shared.queued, &mut lanes, work, result);
    }
    tracing::debug!("model inference thread stopped");
}

/// Gives `texts` back to the queue's capacity.
fn release(queued: &AtomicUsize, texts: usize) {
    if texts > 0 {
        queued.fetch_sub(texts, Ordering::AcqRel);
        metrics::gauge!("model_queue_texts").decrement(texts as f64);
    }
}

/// After an idle spell, waits up to `max_batch_wait` for `max_batch_texts` texts to gather.
fn gather<'a>(
    shared: &'a Shared,
    mut lanes: MutexGuard<'a, Lanes>,
    limits: BatchLimits,
) -> MutexGuard<'a, Lanes> {
    let deadline = Instant::now() + limits.max_batch_wait;
    while lanes.texts_waiting() < limits.max_batch_texts && !lanes.closed {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        lanes = shared
            .wake
            .wait_timeout(lanes, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    lanes
}

/// The next engine call: priority jobs (whole, up to `max_batch_texts` texts, one kind) if any
/// wait, else the next chunk of the bulk lane (up to `bulk_chunk_texts` texts, one kind, in
/// arrival order). Jobs whose caller has gone are dropped here. `None` when nothing is left.
fn take(queued: &AtomicUsize, lanes: &mut Lanes, limits: BatchLimits) -> Option<Work> {
    for lane in [&mut lanes.priority, &mut lanes.bulk] {
        lane.retain(|job| {
            let gone = job.reply.is_closed();
            if gone {
                tracing::debug!(texts = job.texts.len(), "dropping a cancelled request");
                release(queued, job.texts.len() - job.taken);
            }
            !gone
        });
    }
    let (lane, from_priority, budget) = if lanes.priority.is_empty() {
        (&mut lanes.bulk, false, limits.bulk_chunk_texts)
    } else {
        (&mut lanes.priority, true, limits.max_batch_texts)
    };
    let kind = lane.front()?.kind;
    let mut work = Work {
        kind,
        texts: Vec::new(),
        parts: Vec::new(),
        from_priority,
    };
    for (position, job) in lane.iter_mut().enumerate() {
        let room = budget.saturating_sub(work.texts.len());
        if room == 0 {
            break;
        }
        if job.kind != kind {
            continue;
        }
        let left = job.texts.len() - job.taken;
        // Priority jobs are small and run whole; a bulk job is cut at the chunk boundary.
        let count = if from_priority {
            if left > room && !work.texts.is_empty() {
                break;
            }
            left
        } else {
            left.min(room)
        };
        if job.taken == 0 {
            metrics::histogram!("model_queue_wait_seconds")
                .record(job.queued_at.elapsed().as_secs_f64());
        }
        work.texts
            .extend(job.texts[job.taken..job.taken + count].iter().cloned());
        job.taken += count;
        work.parts.push((position, count));
    }
    Some(work)
}

/// Hands the vectors of one engine call to their jobs; answers and removes every job that is
/// complete (or, on error, every job in the call).
fn deliver(
    queued: &AtomicUsize,
    lanes: &mut Lanes,
    work: Work,
    result: Result<Vec<Vec<f32>>, ModelError>,
) {
    let lane = if work.from_priority {
        &mut lanes.priority
    } else {
        &mut lanes.bulk
    };
    match result {
        Ok(vectors) => {
            let mut vectors = vectors.into_iter();
            for &(position, count) in &work.parts {
                if let Some(job) = lane.get_mut(position) {
                    job.vectors.extend(vectors.by_ref().take(count));
                }
            }
        }
        Err(error) => {
            tracing::error!(error = %error, code = error.code(), "model batch failed");
            let message = error.to_string();
            // Positions shift as jobs are removed: remove from the back.
            for &(position, _) in work.parts.iter().rev() {
                if let Some(job) = lane.remove(position) {
                    // Its remaining texts leave the queue with it.
                    release(queued, job.texts.len() - job.taken);
                    let _ = job.reply.send(Err(ModelError::Batch(message.clone())));
                }
            }
            return;
        }
    }
    // Complete jobs are answered and leave the lane, back to front so positions stay valid.
    for &(position, _) in work.parts.iter().rev() {
        let complete = lane
            .get(position)
            .is_some_and(|job| job.vectors.len() == job.texts.len());
        if complete && let Some(job) = lane.remove(position) {
            // The caller may have gone away (cancelled); nothing to do then.
            let _ = job.reply.send(Ok(job.vectors));
        }
    }
}
