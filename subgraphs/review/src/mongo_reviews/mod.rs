//! The production adapter of the review documents: a denormalised `reviews` collection in
//! MongoDB, one document per review (`_id` the review id; product id, name and category, order
//! id and date, author id — no other personal data of the author —, rating, text, labels,
//! `created_at`), its schema and indexes kept in `subgraphs/review/mongo/*.json` and created
//! idempotently by [`MongoReviews::ensure_schema`]. Vectors live in `review_vectors`
//! (`crates/vectorindex`, with the Atlas Vector Search index definition).
//!
//! The projection writes are idempotent: a `ReviewWritten` upserts by review id (a replay
//! rewrites the same fields and keeps recorded labels), a `ReviewLabelled` sets the labels.

pub mod definition;
pub mod pipeline;

use std::collections::HashMap;

use std::time::Duration;

use async_trait::async_trait;
use eventstore::{EventStore, Position, RecordedEvent};
use futures::StreamExt as _;
use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use mongodb::{Collection, Database};
use tokio_util::sync::CancellationToken;

use crate::cursor::Cursor;
use crate::documents::{DocumentsError, ReviewDocuments};
use crate::labels::Labels;
use crate::review::{REVIEW_LABELLED, REVIEW_WRITTEN, ReviewLabelled, ReviewWritten};
use crate::reviews_view::{ReviewDoc, ReviewPage};

/// The event-store checkpoint of the projection into MongoDB.
pub const CHECKPOINT: &str = "mongo_reviews";
/// The database when `MONGODB_URI` names none.
pub const DEFAULT_DATABASE: &str = "bloody_sweet";
/// The collection's name.
pub const COLLECTION: &str = "reviews";
/// Most ids looked up in one query.
const IDS_PER_QUERY: usize = 500;

/// The review documents in a MongoDB collection; cheap to clone.
#[derive(Debug, Clone)]
pub struct MongoReviews {
    collection: Collection<Document>,
}

impl MongoReviews {
    /// The `reviews` collection of `db` (no I/O; see [`Self::ensure_schema`]).
    pub fn new(db: &Database) -> Self {
        Self {
            collection: db.collection(COLLECTION),
        }
    }

    /// Connects to `uri` and opens the `reviews` collection of the database the URI names
    /// ([`DEFAULT_DATABASE`] when it names none), creating its schema and indexes.
    pub async fn connect(uri: &str) -> Result<Self, DocumentsError> {
        let client = mongodb::Client::with_uri_str(uri).await?;
        let db = client
            .default_database()
            .unwrap_or_else(|| client.database(DEFAULT_DATABASE));
        let reviews = Self::new(&db);
        reviews.ensure_schema().await?;
        Ok(reviews)
    }

    /// Creates the collection with its validator if absent, and its indexes (a no-op when they
    /// exist with the same name and keys).
    pub async fn ensure_schema(&self) -> Result<(), DocumentsError> {
        let db = self
            .collection
            .client()
            .database(&self.collection.namespace().db);
        let name = self.collection.name();
        if !db.list_collection_names().await?.iter().any(|n| n == name) {
            db.create_collection(name)
                .validator(definition::validator()?)
                .await?;
        }
        self.collection
            .create_indexes(definition::indexes()?)
            .await?;
        Ok(())
    }

    /// Upserts the document of a written review by its id.
    pub async fn upsert(&self, review: &ReviewDoc) -> Result<(), DocumentsError> {
        self.collection
            .update_one(doc! { "_id": &review.id }, pipeline::written_update(review))
            .upsert(true)
            .await?;
        Ok(())
    }

    /// Records `labels` on review `id`; `false` when the review is not stored (yet).
    pub async fn set_labels(&self, id: &str, labels: &Labels) -> Result<bool, DocumentsError> {
        let result = self
            .collection
            .update_one(doc! { "_id": id }, pipeline::labels_update(labels)?)
            .await?;
        Ok(result.matched_count > 0)
    }

    /// Applies one review event to the collection (unknown types are skipped).
    pub async fn apply(&self, event: &RecordedEvent) -> Result<(), DocumentsError> {
        let decode =
            |e: eventstore::StoreError| DocumentsError::Decode(format!("event {}: {e}", event.id));
        match event.event_type.as_str() {
            REVIEW_WRITTEN => {
                let written: ReviewWritten = event.decode().map_err(decode)?;
                self.upsert(&ReviewDoc::of(&written, None)).await
            }
            REVIEW_LABELLED => {
                let labelled: ReviewLabelled = event.decode().map_err(decode)?;
                let id = labelled.review_id.to_string();
                if self.set_labels(&id, &labelled.labels).await? {
                    Ok(())
                } else {
                    Err(DocumentsError::Decode(format!(
                        "labels for review {id} before it was written"
                    )))
                }
            }
            other => {
                tracing::debug!(
                    event_type = other,
                    "mongo reviews skip an unknown event type"
                );
                Ok(())
            }
        }
    }

    /// Projects the `review` events of `store` into the collection from the saved checkpoint
    /// until `shutdown`, saving the position after each event (a replay after a crash rewrites
    /// the same documents); a failure is logged and retried from the checkpoint.
    pub async fn project(&self, store: &dyn EventStore, shutdown: CancellationToken) {
        loop {
            match self.project_once(store, &shutdown).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "mongo reviews projection failed; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn project_once(
        &self,
        store: &dyn EventStore,
        shutdown: &CancellationToken,
    ) -> Result<(), DocumentsError> {
        let after = store
            .load_checkpoint(CHECKPOINT)
            .await?
            .unwrap_or(Position::START);
        let mut events = store.subscribe_all(after);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                next = events.next() => match next {
                    Some(event) => event?,
                    None => return Ok(()),
                },
            };
            if event.stream_id.category() == "review" {
                self.apply(&event).await?;
            }
            store.save_checkpoint(CHECKPOINT, event.position).await?;
        }
    }
}

#[async_trait]
impl ReviewDocuments for MongoReviews {
    fn adapter(&self) -> &'static str {
        "mongodb"
    }

    async fn page(
        &self,
        product_id: &str,
        first: usize,
        after: Option<&Cursor>,
    ) -> Result<ReviewPage, DocumentsError> {
        let docs: Vec<Document> = self
            .collection
            .find(pipeline::page_filter(product_id, after))
            .sort(pipeline::page_sort())
            .limit(pipeline::page_limit(first))
            .await?
            .try_collect()
            .await?;
        let has_next_page = docs.len() > first;
        let reviews = docs
            .iter()
            .take(first)
            .map(pipeline::review_of)
            .collect::<Result<_, _>>()?;
        Ok(ReviewPage {
            reviews,
            has_next_page,
        })
    }

    async fn get_many(&self, ids: &[String]) -> Result<HashMap<String, ReviewDoc>, DocumentsError> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let mut cursor = self.collection.find(pipeline::ids_filter(chunk)).await?;
            while let Some(doc) = cursor.try_next().await? {
                let review = pipeline::review_of(&doc)?;
                found.insert(review.id.clone(), review);
            }
        }
        Ok(found)
    }
}
