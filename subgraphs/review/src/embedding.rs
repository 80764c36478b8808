//! The embedding pipeline: every review in the `reviews` read model (written through
//! `writeReview` or imported by the batch job) is embedded as passages (the whole review and
//! each of its sentences, under the product name: [`assistant::search_text`]), labelled, and
//! put into the vector index with its product, category and the model's tag; searches score a
//! review by its best passage ([`vectorindex::passage`]).
//!
//! Progress is the `review_embeddings` table of the read-model database (review id × model
//! key), written only after the index has made the vectors durable: a catch-up embeds what
//! the table lacks for the model in use, in batches, so it is idempotent and resumes after a
//! crash. A model change runs [`EmbeddingPipeline::reembed`], which builds the new model's
//! index beside the old one and swaps it in when complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assistant::search_text::search_texts;
use chrono::Utc;
use futures::StreamExt as _;
use model::{Embedder, TextKind};
use sqlx::Row as _;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use vectorindex::passage::passage_id;
use vectorindex::{IndexCatalog, IndexError, VectorIndex, VectorRecord};

use crate::error::ServiceError;
use crate::labels::Labeller;
use crate::reviews_view::{REVIEWS, stored_time};
use crate::service::ReviewService;
use crate::vectors::{ReviewVectors, tag_of};

/// The table recording which reviews are in the index of which model.
pub const EMBEDDED: &str = "review_embeddings";
/// Reviews embedded per model call.
pub const DEFAULT_BATCH: usize = 32;
/// Reviews embedded between two index flushes (and progress writes).
const PER_FLUSH: usize = 512;
/// Category stored for reviews of products the catalog does not know.
const NO_CATEGORY: &str = "";

/// What one catch-up did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CatchUp {
    /// Reviews embedded and indexed.
    pub embedded: usize,
    /// Reviews labelled on the way.
    pub labelled: usize,
    /// How long it took, in seconds.
    pub seconds: f64,
}

impl CatchUp {
    /// Reviews embedded per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.embedded as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// A review waiting to be embedded.
struct Pending {
    id: String,
    product_id: String,
    product_name: String,
    category: Option<String>,
    text: String,
    labelled: bool,
}

/// Embeds, labels and indexes reviews; cheap to clone.
#[derive(Clone)]
pub struct EmbeddingPipeline {
    service: ReviewService,
    vectors: ReviewVectors,
    labeller: Option<Arc<dyn Labeller>>,
    batch: usize,
    /// Reviews embedded between index flushes (and between looks at shutdown).
    per_flush: usize,
    scope: String,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for EmbeddingPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingPipeline")
            .field("vectors", &self.vectors)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl EmbeddingPipeline {
    /// A pipeline over the service's read model into `vectors`, labelling with `labeller`
    /// when given; creates its progress table.
    pub async fn new(
        service: ReviewService,
        vectors: ReviewVectors,
        labeller: Option<Arc<dyn Labeller>>,
    ) -> Result<Self, ServiceError> {
        let pool = service.views().models().pool();
        // The review and AI-worker processes start together and both create it.
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {EMBEDDED} (
                review_id TEXT NOT NULL,
                model TEXT NOT NULL,
                embedded_at TEXT NOT NULL,
                PRIMARY KEY (review_id, model)
            )"
        );
        projections::run_ddl(pool, "review:embedded", &[ddl.as_str()]).await?;
        let pipeline = Self {
            service,
            vectors,
            labeller,
            batch: DEFAULT_BATCH,
            per_flush: PER_FLUSH,
            scope: String::new(),
            wake: Arc::new(Notify::new()),
        };
        pipeline.forget_lost_index().await?;
        Ok(pipeline)
    }

    /// The same pipeline embedding `batch` reviews per model call (at least one).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// The same pipeline flushing its index (and looking at shutdown) every `per_flush`
    /// reviews (at least one) instead of 512.
    pub fn with_per_flush(mut self, per_flush: usize) -> Self {
        self.per_flush = per_flush.max(1);
        self
    }

    /// The same pipeline recording its progress under `scope`: processes that each keep
    /// their own embedded index use one scope each, so neither takes the other's progress
    /// for its own.
    pub async fn with_scope(mut self, scope: impl Into<String>) -> Result<Self, ServiceError> {
        self.scope = scope.into();
        self.forget_lost_index().await?;
        Ok(self)
    }

    /// The progress key of `model_key` in this pipeline's scope.
    fn progress_key(&self, model_key: &str) -> String {
        if self.scope.is_empty() {
            model_key.to_owned()
        } else {
            format!("{}/{model_key}", self.scope)
        }
    }

    /// The embedder and index it writes to.
    pub fn vectors(&self) -> &ReviewVectors {
        &self.vectors
    }

    /// Wakes [`EmbeddingPipeline::run`] now (after a review was written).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// An index that lost its files (or was replaced by an empty one) holds nothing the
    /// progress table says it holds: forget that progress so a catch-up fills it again.
    async fn forget_lost_index(&self) -> Result<(), ServiceError> {
        let (_, index) = self.vectors.current();
        if !index.is_empty().await? {
            return Ok(());
        }
        let key = self.progress_key(&index.model().key());
        let forgotten = sqlx::query(&format!("DELETE FROM {EMBEDDED} WHERE model = $1"))
            .bind(key.as_str())
            .execute(self.service.views().models().pool())
            .await?
            .rows_affected();
        if forgotten > 0 {
            tracing::warn!(model = %key, forgotten, "vector index is empty; its reviews will be embedded again");
        }
        Ok(())
    }

    /// How many reviews of the read model are not in the index of the model in use.
    pub async fn missing(&self) -> Result<u64, ServiceError> {
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {REVIEWS} r WHERE NOT EXISTS \
             (SELECT 1 FROM {EMBEDDED} e WHERE e.review_id = r.id AND e.model = $1)"
        ))
        .bind(self.progress_key(&self.vectors.model_key()))
        .fetch_one(self.service.views().models().pool())
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Embeds every review missing from the index, then reports how many and how fast.
    #[tracing::instrument(skip_all)]
    pub async fn catch_up(&self) -> Result<CatchUp, ServiceError> {
        self.catch_up_until(&CancellationToken::new()).await
    }

    /// [`EmbeddingPipeline::catch_up`], stopping early (after the flush in progress) once
    /// `shutdown` is cancelled: a large backlog does not hold a stopping process.
    pub async fn catch_up_until(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<CatchUp, ServiceError> {
        let started = Instant::now();
        let mut done = CatchUp::default();
        while !shutdown.is_cancelled() {
            let (embedded, labelled) = self.step(self.per_flush).await?;
            done.embedded += embedded;
            done.labelled += labelled;
            if embedded < self.per_flush {
                break;
            }
        }
        done.seconds = started.elapsed().as_secs_f64();
        if done.embedded > 0 {
            metrics::gauge!("review_embedding_catch_up_per_second").set(done.rate());
            tracing::info!(
                embedded = done.embedded,
                labelled = done.labelled,
                seconds = done.seconds,
                per_second = done.rate(),
                model = %self.vectors.model_key(),
                "embedding catch-up"
            );
        }
        Ok(done)
    }

    /// Embeds up to `limit` missing reviews, flushes the index and records them.
    async fn step(&self, limit: usize) -> Result<(usize, usize), ServiceError> {
        if !self.vectors.is_consistent() {
            return Ok((0, 0));
        }
        let key = self.progress_key(&self.vectors.model_key());
        let pending = self.pending(&key, limit).await?;
        if pending.is_empty() {
            return Ok((0, 0));
        }
        let mut labelled = 0;
        let mut index = None;
        for chunk in pending.chunks(self.batch) {
            labelled += self.label(chunk).await;
            let passages = Passages::of(chunk);
            let (vectors, into) = self
                .vectors
                .embed(&passages.texts, TextKind::Passage)
                .await?;
            into.upsert(&passages.records(chunk, vectors)?).await?;
            index = Some(into);
        }
        if let Some(index) = index {
            index.flush().await?;
        }
        self.record(&key, pending.iter().map(|p| p.id.as_str()))
            .await?;
        metrics::counter!("reviews_embedded_total").increment(pending.len() as u64);
        Ok((pending.len(), labelled))
    }

    /// Labels the unlabelled reviews of `chunk`; a labeller failure is logged and skipped
    /// (labels are optional; the next write of the review's labels is a new event).
    async fn label(&self, chunk: &[Pending]) -> usize {
        let Some(labeller) = &self.labeller else {
            return 0;
        };
        let ids: Vec<Uuid> = chunk
            .iter()
            .filter(|p| !p.labelled)
            .filter_map(|p| Uuid::parse_str(&p.id).ok())
            .collect();
        if ids.is_empty() {
            return 0;
        }
        match self.service.label_reviews(labeller.as_ref(), &ids).await {
            Ok(count) => count,
            Err(err) => {
                tracing::warn!(code = err.code(), error = %err, "labelling reviews failed");
                0
            }
        }
    }

    async fn pending(&self, model: &str, limit: usize) -> Result<Vec<Pending>, ServiceError> {
        let rows = sqlx::query(&format!(
            "SELECT r.id, r.product_id, r.product_category, r.text, r.labels, r.product_name \
             FROM {REVIEWS} r \
             WHERE NOT EXISTS (SELECT 1 FROM {EMBEDDED} e WHERE e.review_id = r.id AND e.model = $1) \
             ORDER BY r.created_at, r.id LIMIT $2"
        ))
        .bind(model)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.service.views().models().pool())
        .await?;
        rows.iter()
            .map(|row| {
                let labels: Option<String> = row.try_get(4)?;
                Ok(Pending {
                    id: row.try_get(0)?,
                    product_id: row.try_get(1)?,
                    product_name: row.try_get(5)?,
                    category: row.try_get(2)?,
                    text: row.try_get(3)?,
                    labelled: labels.is_some(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(ServiceError::from)
    }

    /// Records `ids` as embedded for `model` (already recorded ones are left alone).
    async fn record(
        &self,
        model: &str,
        ids: impl Iterator<Item = &str>,
    ) -> Result<(), ServiceError> {
        let now = stored_time(&Utc::now());
        let ids: Vec<&str> = ids.collect();
        for chunk in ids.chunks(200) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, $1, $2)", i + 3))
                .collect();
            let sql = format!(
                "INSERT INTO {EMBEDDED} (review_id, model, embedded_at) VALUES {} \
                 ON CONFLICT (review_id, model) DO NOTHING",
                values.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(model).bind(now.as_str());
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(self.service.views().models().pool()).await?;
        }
        Ok(())
    }

    /// Catches up every `every` (and whenever woken) until `shutdown`; failures are logged
    /// and retried at the next turn.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        tracing::info!(model = %self.vectors.model_key(), "embedding pipeline started");
        while !shutdown.is_cancelled() {
            if let Err(err) = self.catch_up_until(&shutdown).await {
                tracing::warn!(code = err.code(), error = %err, "embedding catch-up failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
        tracing::info!("embedding pipeline stopped");
    }

    /// Re-embeds every review with `embedder` into a new index of `catalog` while the old
    /// one keeps serving, swaps both in when complete, retires the old index, then catches
    /// up on reviews written meanwhile. Returns how many reviews it re-embedded.
    #[tracing::instrument(skip_all, fields(model = %tag_of(embedder.info()).key()))]
    pub async fn reembed<C>(
        &self,
        catalog: &C,
        embedder: Arc<dyn Embedder>,
    ) -> Result<usize, ServiceError>
    where
        C: IndexCatalog,
        C::Index: 'static,
    {
        let tag = tag_of(embedder.info());
        let key = self.progress_key(&tag.key());
        let started = Instant::now();
        let reviews = Arc::new(AtomicUsize::new(0));
        let pages = futures::stream::unfold(Some(String::new()), |after| {
            let (this, embedder, key) = (self.clone(), embedder.clone(), key.clone());
            let reviews = reviews.clone();
            async move {
                let after = after?;
                match this.reembed_page(embedder.as_ref(), &key, &after).await {
                    Ok(None) => None,
                    Ok(Some((last, count, records))) => {
                        reviews.fetch_add(count, Ordering::Relaxed);
                        Some((Ok(records), Some(last)))
                    }
                    Err(err) => Some((Err(IndexError::Task(err.to_string())), None)),
                }
            }
        });
        let index = vectorindex::reindex(catalog, &tag, pages.boxed()).await?;
        let passages = index.len().await?;
        let total = reviews.load(Ordering::Relaxed);
        self.vectors.swap(embedder, Arc::new(index));
        tracing::info!(
            reviews = total,
            passages,
            seconds = started.elapsed().as_secs_f64(),
            "re-embedding complete; new index in use"
        );
        self.catch_up().await?;
        Ok(total)
    }

    /// The next page of reviews after id `after` (its last id, its size and its passages),
    /// embedded by `embedder` and recorded for `key`; `None` past the last review.
    async fn reembed_page(
        &self,
        embedder: &dyn Embedder,
        key: &str,
        after: &str,
    ) -> Result<Option<(String, usize, Vec<VectorRecord>)>, ServiceError> {
        let rows = sqlx::query(&format!(
            "SELECT id, product_id, product_category, text, product_name FROM {REVIEWS} \
             WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::try_from(self.batch).unwrap_or(i64::MAX))
        .fetch_all(self.service.views().models().pool())
        .await?;
        let pending: Vec<Pending> = rows
            .iter()
            .map(|row| {
                Ok(Pending {
                    id: row.try_get(0)?,
                    product_id: row.try_get(1)?,
                    product_name: row.try_get(4)?,
                    category: row.try_get(2)?,
                    text: row.try_get(3)?,
                    labelled: true,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let Some(last) = pending.last().map(|p| p.id.clone()) else {
            return Ok(None);
        };
        let passages = Passages::of(&pending);
        let vectors = model::embed_all(embedder, &passages.texts, TextKind::Passage).await?;
        let records = passages.records(&pending, vectors)?;
        // Recorded before the swap: the new model's progress is only read once it is in use.
        self.record(key, pending.iter().map(|p| p.id.as_str()))
            .await?;
        Ok(Some((last, pending.len(), records)))
    }
}

/// The search texts of some reviews, flattened for the embedder, and whose each one is.
struct Passages {
    texts: Vec<String>,
    /// (review position, passage number) of each text.
    owners: Vec<(usize, usize)>,
}

impl Passages {
    fn of(pending: &[Pending]) -> Self {
        let mut texts = Vec::with_capacity(pending.len() * 2);
        let mut owners = Vec::with_capacity(pending.len() * 2);
        for (at, p) in pending.iter().enumerate() {
            for (n, text) in search_texts(&p.product_name, &p.text)
                .into_iter()
                .enumerate()
            {
                texts.push(text);
                owners.push((at, n));
            }
        }
        Self { texts, owners }
    }

    /// One record per passage, from the embedder's vectors in text order.
    fn records(
        &self,
        pending: &[Pending],
        vectors: Vec<Vec<f32>>,
    ) -> Result<Vec<VectorRecord>, ServiceError> {
        if vectors.len() != self.texts.len() {
            return Err(ServiceError::Index(IndexError::InvalidRecord(format!(
                "the embedder returned {} vectors for {} texts",
                vectors.len(),
                self.texts.len()
            ))));
        }
        Ok(self
            .owners
            .iter()
            .zip(vectors)
            .map(|(&(at, n), vector)| {
                let p = &pending[at];
                VectorRecord {
                    id: passage_id(&p.id, n),
                    product_id: p.product_id.clone(),
                    category: p.category.clone().unwrap_or_else(|| NO_CATEGORY.to_owned()),
                    vector,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, text: &str) -> Pending {
        Pending {
            id: id.into(),
            product_id: "p1".into(),
            product_name: "마카롱".into(),
            category: None,
            text: text.into(),
            labelled: true,
        }
    }

    #[test]
    fn each_review_becomes_its_whole_text_and_its_sentences() {
        let reviews = [
            pending("a", "꼬끄가 쫀득해요"),
            pending("b", "맛은 좋아요. 배송이 늦었어요"),
        ];
        let passages = Passages::of(&reviews);
        assert_eq!(
            passages.texts,
            [
                "마카롱\n꼬끄가 쫀득해요",
                "마카롱\n맛은 좋아요. 배송이 늦었어요",
                "마카롱\n맛은 좋아요.",
                "마카롱\n배송이 늦었어요",
            ]
        );
        let vectors = vec![vec![1.0, 0.0]; 4];
        let records = passages.records(&reviews, vectors).unwrap();
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "b#1", "b#2"]);
        assert!(
            records
                .iter()
                .all(|r| r.product_id == "p1" && r.category.is_empty())
        );
        // A short answer from the embedder is an error, never a misaligned index.
        assert!(passages.records(&reviews, vec![vec![1.0, 0.0]; 3]).is_err());
    }
}
