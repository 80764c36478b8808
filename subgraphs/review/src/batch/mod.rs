//! The batch import of historical reviews: a chunked, restartable job over a JSON Lines or
//! CSV file, with its state in a job repository (see [`job`]).
//!
//! Each chunk (default 500 records) is read and checked on a blocking thread ([`source`]:
//! parse, clean, validate, drop duplicates by content hash), then denormalised (product name
//! and category from the catalog read model, order date from the orders read model), and its
//! `ReviewWritten` events are written together with the step's checkpoint:
//!
//! - on Postgres ([`ImportStore::Postgres`]) in ONE transaction: every event through
//!   `PgEventStore::append_in`, the step's new chunk number and counts, and the chunk's
//!   skipped lines. A crash loses the whole chunk or nothing; a rerun resumes after the last
//!   committed chunk.
//! - on other event stores ([`ImportStore::Store`], the embedded SQLite store) the events are
//!   appended first, then the checkpoint commits in the read-model database. Event ids and
//!   bodies are derived from the job and the record only, so after a crash between the two
//!   the rerun's appends are recognised by the store as replays and write nothing twice.
//!
//! Every skipped line is recorded with its reason and listed in the [`ImportReport`]; nothing
//! is dropped silently. A skip limit fails the job when too many lines are bad.
//!
//! Eligibility of imported reviews: they are history, from before (or beside) the platform,
//! so most of their orders are unknown to it and they are accepted without the live
//! "completed order of the caller" check. When a record names an order the platform does
//! know, it must agree with it (the order COMPLETED, containing the product, the author its
//! customer), else the line is skipped; the author defaults to that customer and the order
//! date comes from the order. One review per order line still holds: the review id is derived
//! from order and product, and a line whose review exists is skipped as already reviewed.
//! Records without an order get an id derived from their content hash.

pub mod job;
pub mod record;
pub mod report;
pub mod source;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use eventstore::{
    EventData, EventStore, ExpectedVersion, Metadata, PgEventStore, StoreError, StreamId,
};
use projections::ReadModels;
use sqlx::AnyPool;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

pub use job::{Counts, JobState, JobStatus, SkipKind, SkippedLine};
pub use report::ImportReport;
pub use source::Format;

use crate::orders::from_view as known_orders;
use crate::preprocess::{MAX_TEXT_CHARS, TextBounds};
use crate::products::product_facts;
use crate::review::{
    ImportSource, REVIEW_WRITTEN, Review, ReviewEvent, ReviewWritten, review_id_for_content,
    review_id_for_order_line,
};
use crate::reviews_view::ReviewViews;
use eventstore::Aggregate as _;
use source::{Chunk, Item, ReadPlan};

/// The job's name in the job repository.
pub const JOB_NAME: &str = "review-import";
/// Records per chunk unless told otherwise.
pub const DEFAULT_CHUNK_SIZE: usize = 500;
/// Most records per chunk.
pub const MAX_CHUNK_SIZE: usize = 10_000;
/// How often a chunk whose reviews turned out to exist is retried without them.
const CONFLICT_RETRIES: usize = 3;

/// The event store an import writes to.
#[derive(Clone)]
pub enum ImportStore {
    /// Postgres: a chunk's events and its checkpoint commit in one transaction (the job
    /// repository lives in the event store's database).
    Postgres(PgEventStore),
    /// Any other store: idempotent appends, then the checkpoint (the job repository lives in
    /// the read-model database).
    Store(Arc<dyn EventStore>),
}

impl ImportStore {
    fn events(&self) -> &dyn EventStore {
        match self {
            Self::Postgres(pg) => pg,
            Self::Store(store) => store.as_ref(),
        }
    }
}

/// How to run an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The file's layout; guessed from its extension when `None`.
    pub format: Option<Format>,
    /// Records per chunk, 1..=10,000 (a resumed job keeps the size it started with).
    pub chunk_size: usize,
    /// Fail the job once more than this many lines were skipped (duplicates not counted);
    /// `None` never fails for skips.
    pub skip_limit: Option<u64>,
    /// Allowed text length after cleaning (within 1..=2,000).
    pub bounds: TextBounds,
    /// Stop (resumably) after committing this many chunks in this run.
    pub max_chunks: Option<u64>,
    /// Receives the number of the last committed chunk after each commit.
    pub progress: Option<watch::Sender<u64>>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            format: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            skip_limit: None,
            bounds: TextBounds::default(),
            max_chunks: None,
            progress: None,
        }
    }
}

/// Why an import stopped without finishing.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The options are unusable.
    #[error("invalid import options: {0}")]
    InvalidOptions(String),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not in the expected format as a whole (a missing CSV column, say).
    #[error("{0}")]
    Format(String),
    /// More lines were skipped than allowed; the job is FAILED and resumable.
    #[error("{skipped} lines skipped, more than the limit of {limit}; the job is failed")]
    SkipLimit {
        /// The limit.
        limit: u64,
        /// Lines skipped.
        skipped: u64,
    },
    /// Another run of the same job committed the chunk first.
    #[error("job {0} is being run elsewhere")]
    Concurrent(Uuid),
    /// The event store failed.
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    /// The job repository or a read model failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The read-model database failed.
    #[error("read model: {0}")]
    ReadModel(#[from] projections::ProjectionError),
    /// The file reader stopped unexpectedly.
    #[error("file reader failed: {0}")]
    Reader(String),
}

impl BatchError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidOptions(_) => "INVALID_OPTIONS",
            Self::Io { .. } => "IO",
            Self::Format(_) => "BAD_FORMAT",
            Self::SkipLimit { .. } => "SKIP_LIMIT_EXCEEDED",
            Self::Concurrent(_) => "JOB_RUNNING_ELSEWHERE",
            Self::Store(e) => e.code(),
            Self::Database(_) | Self::ReadModel(_) => "DATABASE",
            Self::Reader(_) => "READER_FAILED",
        }
    }
}

/// Imports the reviews in `path` into `store`, reading products and orders from `models`.
///
/// Running it again for the same file resumes after the last committed chunk (or reports the
/// finished job).
pub async fn import(
    store: &ImportStore,
    models: &ReadModels,
    path: &Path,
    options: ImportOptions,
) -> Result<ImportReport, BatchError> {
    let started = Instant::now();
    check_options(&options)?;
    let format = match options.format.or_else(|| Format::from_path(path)) {
        Some(format) => format,
        None => {
            return Err(BatchError::InvalidOptions(format!(
                "cannot tell the format of {} from its name; give jsonl or csv",
                path.display()
            )));
        }
    };
    let io = |source| BatchError::Io {
        path: path.display().to_string(),
        source,
    };
    let canonical = tokio::fs::canonicalize(path).await.map_err(io)?;
    let hashed = canonical.clone();
    let file_hash = tokio::task::spawn_blocking(move || source::file_hash(&hashed))
        .await
        .map_err(|e| BatchError::Reader(e.to_string()))?
        .map_err(io)?;
    let key = job::JobKey {
        name: JOB_NAME.to_owned(),
        path: canonical.display().to_string(),
        file_hash,
    };
    let views = ReviewViews::open(models.clone()).await?;
    let repo = Repo::of(store, models.pool());
    repo.migrate().await?;
    let state = repo
        .start(&key, format.as_str(), options.chunk_size as u64)
        .await?;
    let run = Run {
        store,
        repo,
        views,
        state,
        key,
        options,
    };
    if run.state.status == JobStatus::Completed {
        return run.report(JobStatus::Completed, 0, 0, started).await;
    }
    tracing::info!(
        job_id = %run.state.job_id,
        path = %run.key.path,
        resume_after = run.state.chunks,
        "review import starting"
    );
    match run.chunks(format, started).await {
        Ok(report) => Ok(report),
        // Another run owns the job: its status is not this run's to change.
        Err(err @ BatchError::Concurrent(_)) => Err(err),
        Err(err) => {
            if let Err(mark) = run
                .repo
                .finish(run.state.job_id, JobStatus::Failed, Some(&err.to_string()))
                .await
            {
                tracing::warn!(error = %mark, "import failure not recorded");
            }
            Err(err)
        }
    }
}

fn check_options(options: &ImportOptions) -> Result<(), BatchError> {
    if !(1..=MAX_CHUNK_SIZE).contains(&options.chunk_size) {
        return Err(BatchError::InvalidOptions(format!(
            "chunk size must be 1 to {MAX_CHUNK_SIZE}, got {}",
            options.chunk_size
        )));
    }
    let b = options.bounds;
    if b.min_chars < 1 || b.min_chars > b.max_chars || b.max_chars > MAX_TEXT_CHARS {
        return Err(BatchError::InvalidOptions(format!(
            "text bounds must satisfy 1 <= min <= max <= {MAX_TEXT_CHARS}, got {}..={}",
            b.min_chars, b.max_chars
        )));
    }
    Ok(())
}

/// One run of a job.
struct Run<'a> {
    store: &'a ImportStore,
    repo: Repo<'a>,
    views: ReviewViews,
    state: JobState,
    key: job::JobKey,
    options: ImportOptions,
}

/// A chunk ready to write: its events and what it counts.
struct Prepared {
    writes: Vec<Write>,
    counts: Counts,
    skips: Vec<SkippedLine>,
}

/// One review's event.
struct Write {
    line: u64,
    review_id: Uuid,
    stream: StreamId,
    event: EventData,
}

impl Run<'_> {
    /// Reads, writes and commits chunks until the file ends or the run is told to stop.
    async fn chunks(&self, format: Format, started: Instant) -> Result<ImportReport, BatchError> {
        let (tx, mut rx) = mpsc::channel::<Result<Chunk, BatchError>>(2);
        let path = std::path::PathBuf::from(&self.key.path);
        let plan = ReadPlan {
            format,
            chunk_size: usize::try_from(self.state.chunk_size).unwrap_or(DEFAULT_CHUNK_SIZE),
            committed: self.state.chunks,
            bounds: self.options.bounds,
        };
        let reader = tokio::task::spawn_blocking(move || source::read(&path, plan, tx));
        let mut counts = self.state.counts;
        let mut chunks = self.state.chunks;
        let mut run_records = 0u64;
        let mut run_chunks = 0u64;
        let mut status = JobStatus::Completed;
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk?;
            let index = chunk.index;
            let prepared = self.prepare(chunk).await?;
            let skipped = counts.skipped + prepared.counts.skipped;
            if let Some(limit) = self.options.skip_limit
                && skipped > limit
            {
                return Err(BatchError::SkipLimit { limit, skipped });
            }
            let done = self.write(index, prepared).await?;
            counts.add(done);
            chunks = index;
            run_records += done.read;
            run_chunks += 1;
            metrics::counter!("reviews_imported_total").increment(done.written);
            if let Some(progress) = &self.options.progress {
                let _ = progress.send(index);
            }
            tracing::debug!(
                chunk = index,
                written = done.written,
                "import chunk committed"
            );
            if self.options.max_chunks.is_some_and(|max| run_chunks >= max) {
                status = JobStatus::Stopped;
                break;
            }
        }
        drop(rx);
        reader
            .await
            .map_err(|e| BatchError::Reader(e.to_string()))?;
        self.repo.finish(self.state.job_id, status, None).await?;
        let mut report = self.report(status, run_records, chunks, started).await?;
        report.counts = counts;
        tracing::info!(
            job_id = %self.state.job_id,
            status = status.as_str(),
            read = counts.read,
            written = counts.written,
            skipped = counts.skipped,
            duplicates = counts.duplicates,
            records_per_s = report.throughput(),
            "review import ended"
        );
        Ok(report)
    }

    async fn report(
        &self,
        status: JobStatus,
        run_records: u64,
        chunks: u64,
        started: Instant,
    ) -> Result<ImportReport, BatchError> {
        Ok(ImportReport {
            job_id: self.state.job_id,
            path: self.key.path.clone(),
            status,
            resumed_after_chunk: self.state.chunks,
            chunks: chunks.max(self.state.chunks),
            counts: self.state.counts,
            run_records,
            elapsed: started.elapsed(),
            skips: self.repo.skips(self.state.job_id).await?,
        })
    }

    /// Denormalises a chunk's candidates and checks them against the read models.
    async fn prepare(&self, chunk: Chunk) -> Result<Prepared, BatchError> {
        let mut counts = Counts {
            read: chunk.items.len() as u64,
            ..Counts::default()
        };
        let mut skips = Vec::new();
        let mut candidates = Vec::new();
        for item in chunk.items {
            match item {
                Item::Candidate(c) => candidates.push(*c),
                Item::Skip(skip) => skips.push(skip),
            }
        }
        let pool = self.views.models().pool();
        let product_ids = distinct(candidates.iter().map(|c| c.product_id.clone()));
        let order_ids = distinct(candidates.iter().filter_map(|c| c.order_id.clone()));
        let products = product_facts(pool, &product_ids).await?;
        let orders = known_orders(pool, &order_ids).await?;
        let mut lines_of: HashMap<Uuid, u64> = HashMap::new();
        let mut reviews = Vec::with_capacity(candidates.len());
        for c in candidates {
            let line = c.line;
            let skip = move |reason: String| SkippedLine {
                line,
                kind: SkipKind::Skipped,
                reason,
            };
            let Some(product) = products.get(&c.product_id) else {
                skips.push(skip(format!("unknown product {}", c.product_id)));
                continue;
            };
            let mut author_id = c.author_id.clone();
            let mut order_date = c.order_date;
            if let Some(order) = c.order_id.as_ref().and_then(|id| orders.get(id)) {
                if !order.is_completed() {
                    skips.push(skip(format!(
                        "order {} is {}, not completed",
                        order.order_id, order.status
                    )));
                    continue;
                }
                if order.line(&c.product_id).is_none() {
                    skips.push(skip(format!(
                        "order {} does not contain product {}",
                        order.order_id, c.product_id
                    )));
                    continue;
                }
                if author_id.as_ref().is_some_and(|a| *a != order.customer_id) {
                    skips.push(skip(format!(
                        "the author is not the customer of order {}",
                        order.order_id
                    )));
                    continue;
                }
                author_id = Some(order.customer_id.clone());
                order_date = order.placed_at.or(order_date);
            }
            let content_hash = c.hash.to_string();
            let review_id = match &c.order_id {
                Some(order) => review_id_for_order_line(order, &c.product_id),
                None => review_id_for_content(&content_hash),
            };
            if let Some(first) = lines_of.insert(review_id, c.line) {
                skips.push(skip(format!("order line already reviewed on line {first}")));
                lines_of.insert(review_id, first);
                continue;
            }
            reviews.push(ReviewWritten {
                review_id,
                product_id: c.product_id,
                product_name: product.name.clone(),
                product_category: Some(product.category.clone()),
                order_id: c.order_id,
                order_date,
                author_id,
                rating: c.rating,
                text: c.text,
                content_hash,
                created_at: c.created_at.unwrap_or(self.state.created_at),
                source: Some(ImportSource {
                    job_id: self.state.job_id.to_string(),
                    line: c.line,
                    external_id: c.external_id,
                }),
            });
        }
        let reviews = self.drop_stored(reviews, &mut skips).await?;
        let mut writes = Vec::with_capacity(reviews.len());
        for w in reviews {
            let line = w.source.as_ref().map_or(0, |s| s.line);
            let review_id = w.review_id;
            let event = EventData::json(REVIEW_WRITTEN, &ReviewEvent::ReviewWritten(w))?
                .with_id(Uuid::new_v5(&review_id, REVIEW_WRITTEN.as_bytes()))
                .with_metadata(Metadata::caused_by(self.state.job_id, self.state.job_id));
            writes.push(Write {
                line,
                review_id,
                stream: StreamId::of(Review::CATEGORY, review_id)?,
                event,
            });
        }
        for skip in &skips {
            counts.count_skip(skip.kind);
        }
        Ok(Prepared {
            writes,
            counts,
            skips,
        })
    }

    /// Drops reviews the read model already holds: the same content under another id is a
    /// duplicate; another content under the same id means the order line is reviewed. The same
    /// content under the same id is left to the event store (a replay of this job's own write
    /// after a crash, or a refusal).
    async fn drop_stored(
        &self,
        reviews: Vec<ReviewWritten>,
        skips: &mut Vec<SkippedLine>,
    ) -> Result<Vec<ReviewWritten>, BatchError> {
        let hashes = distinct(reviews.iter().map(|w| w.content_hash.clone()));
        let by_hash = self.views.ids_by_hash(&hashes).await?;
        let ids: Vec<String> = reviews.iter().map(|w| w.review_id.to_string()).collect();
        let stored = self.views.get_many(&ids).await?;
        let mut kept = Vec::with_capacity(reviews.len());
        for w in reviews {
            let id = w.review_id.to_string();
            let line = w.source.as_ref().map_or(0, |s| s.line);
            if let Some(other) = by_hash
                .get(&w.content_hash)
                .and_then(|ids| ids.iter().find(|other| **other != id))
            {
                skips.push(SkippedLine {
                    line,
                    kind: SkipKind::Duplicate,
                    reason: format!("same review already stored as review {other}"),
                });
                continue;
            }
            if stored
                .get(&id)
                .is_some_and(|doc| doc.content_hash != w.content_hash)
            {
                skips.push(already_reviewed(line, w.review_id));
                continue;
            }
            kept.push(w);
        }
        Ok(kept)
    }

    /// Writes a prepared chunk with its checkpoint; returns what it counted.
    async fn write(&self, index: u64, mut chunk: Prepared) -> Result<Counts, BatchError> {
        match self.store {
            ImportStore::Postgres(pg) => {
                for _ in 0..CONFLICT_RETRIES {
                    match self.write_in_transaction(pg, index, &chunk).await? {
                        true => {
                            chunk.counts.written = chunk.writes.len() as u64;
                            return Ok(chunk.counts);
                        }
                        false => self.drop_existing(&mut chunk).await?,
                    }
                }
                Err(BatchError::Store(StoreError::InvalidEvent {
                    reason: format!("chunk {index} kept meeting reviews written meanwhile"),
                }))
            }
            ImportStore::Store(store) => {
                let mut written = 0u64;
                for w in &chunk.writes {
                    match store
                        .append(&w.stream, ExpectedVersion::NoStream, vec![w.event.clone()])
                        .await
                    {
                        Ok(_) => written += 1,
                        Err(
                            StoreError::WrongExpectedVersion { .. }
                            | StoreError::DuplicateEventId { .. },
                        ) => {
                            let skip = self.existing(w).await?;
                            chunk.counts.count_skip(skip.kind);
                            chunk.skips.push(skip);
                        }
                        Err(err) => return Err(err.into()),
                    }
                }
                chunk.counts.written = written;
                chunk.skips.sort_by_key(|s| s.line);
                let mut tx = self.views.models().pool().begin().await?;
                let committed = job::on_any::commit_chunk(
                    &mut tx,
                    self.state.job_id,
                    index,
                    chunk.counts,
                    &chunk.skips,
                )
                .await?;
                if !committed {
                    return Err(BatchError::Concurrent(self.state.job_id));
                }
                tx.commit().await?;
                Ok(chunk.counts)
            }
        }
    }

    /// Appends every event and the checkpoint in one Postgres transaction; false (nothing
    /// written) when one of the reviews exists already.
    async fn write_in_transaction(
        &self,
        pg: &PgEventStore,
        index: u64,
        chunk: &Prepared,
    ) -> Result<bool, BatchError> {
        let mut tx = pg.pool().begin().await?;
        for w in &chunk.writes {
            let appended = pg
                .append_in(
                    &mut tx,
                    &w.stream,
                    ExpectedVersion::NoStream,
                    std::slice::from_ref(&w.event),
                )
                .await;
            match appended {
                Ok(_) => {}
                Err(
                    StoreError::WrongExpectedVersion { .. } | StoreError::DuplicateEventId { .. },
                ) => {
                    tx.rollback().await?;
                    return Ok(false);
                }
                Err(err) => return Err(err.into()),
            }
        }
        let mut counts = chunk.counts;
        counts.written = chunk.writes.len() as u64;
        let committed =
            job::on_postgres::commit_chunk(&mut tx, self.state.job_id, index, counts, &chunk.skips)
                .await?;
        if !committed {
            tx.rollback().await?;
            return Err(BatchError::Concurrent(self.state.job_id));
        }
        tx.commit().await?;
        pg.notify_committed();
        Ok(true)
    }

    /// Moves the chunk's reviews whose streams exist to the skipped lines.
    async fn drop_existing(&self, chunk: &mut Prepared) -> Result<(), BatchError> {
        let mut kept = Vec::with_capacity(chunk.writes.len());
        for w in std::mem::take(&mut chunk.writes) {
            if self.store.events().stream_version(&w.stream).await? > 0 {
                let skip = self.existing(&w).await?;
                chunk.counts.count_skip(skip.kind);
                chunk.skips.push(skip);
            } else {
                kept.push(w);
            }
        }
        chunk.skips.sort_by_key(|s| s.line);
        chunk.writes = kept;
        Ok(())
    }
}

impl Run<'_> {
    /// Why `w` cannot be written when its review's stream exists: the same content is a
    /// duplicate (of another import, or of this one before a crash on Postgres); another
    /// content means the order line is reviewed already.
    async fn existing(&self, w: &Write) -> Result<SkippedLine, BatchError> {
        let first = self
            .store
            .events()
            .read_stream(&w.stream, eventstore::Direction::Forward, None, 1)
            .await?;
        let stored_hash = first
            .first()
            .and_then(|e| e.data.get("content_hash"))
            .and_then(|h| h.as_str());
        let ours = w.event.data.get("content_hash").and_then(|h| h.as_str());
        if stored_hash.is_some() && stored_hash == ours {
            return Ok(SkippedLine {
                line: w.line,
                kind: SkipKind::Duplicate,
                reason: format!("same review already stored as review {}", w.review_id),
            });
        }
        Ok(already_reviewed(w.line, w.review_id))
    }
}

fn already_reviewed(line: u64, review_id: Uuid) -> SkippedLine {
    SkippedLine {
        line,
        kind: SkipKind::Skipped,
        reason: format!("already reviewed (review {review_id})"),
    }
}

fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    values.filter(|v| seen.insert(v.clone())).collect()
}

/// The job repository of an import, where its event store puts it.
enum Repo<'a> {
    /// In the Postgres event store's database.
    Postgres(&'a PgEventStore),
    /// In the read-model database.
    Any(&'a AnyPool),
}

impl<'a> Repo<'a> {
    fn of(store: &'a ImportStore, models: &'a AnyPool) -> Self {
        match store {
            ImportStore::Postgres(pg) => Self::Postgres(pg),
            ImportStore::Store(_) => Self::Any(models),
        }
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(pg) => job::on_postgres::migrate(&mut *pg.pool().acquire().await?).await,
            Self::Any(pool) => job::on_any::migrate(&mut *pool.acquire().await?).await,
        }
    }

    async fn start(
        &self,
        key: &job::JobKey,
        format: &str,
        chunk_size: u64,
    ) -> Result<JobState, sqlx::Error> {
        match self {
            Self::Postgres(pg) => {
                let mut tx = pg.pool().begin().await?;
                let state = job::on_postgres::start(&mut tx, key, format, chunk_size).await?;
                tx.commit().await?;
                Ok(state)
            }
            Self::Any(pool) => {
                let mut tx = pool.begin().await?;
                let state = job::on_any::start(&mut tx, key, format, chunk_size).await?;
                tx.commit().await?;
                Ok(state)
            }
        }
    }

    async fn finish(
        &self,
        job_id: Uuid,
        status: JobStatus,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(pg) => {
                job::on_postgres::finish(&mut *pg.pool().acquire().await?, job_id, status, error)
                    .await
            }
            Self::Any(pool) => {
                job::on_any::finish(&mut *pool.acquire().await?, job_id, status, error).await
            }
        }
    }

    async fn skips(&self, job_id: Uuid) -> Result<Vec<SkippedLine>, sqlx::Error> {
        match self {
            Self::Postgres(pg) => {
                job::on_postgres::skips(&mut *pg.pool().acquire().await?, job_id).await
            }
            Self::Any(pool) => job::on_any::skips(&mut *pool.acquire().await?, job_id).await,
        }
    }
}
