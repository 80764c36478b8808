//! The review-documents port: what readers ask of the review documents (a product's page,
//! reviews by id), whichever store holds the projection — the `reviews` read model on
//! Postgres/SQLite ([`ReviewViews`], embedded and test mode) or MongoDB
//! ([`crate::mongo_reviews::MongoReviews`], production).

use std::collections::HashMap;

use async_trait::async_trait;

use crate::cursor::Cursor;
use crate::reviews_view::{ReviewDoc, ReviewPage, ReviewViews};

/// Why the review documents could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    /// The Postgres/SQLite read model failed.
    #[error("read model: {0}")]
    Sql(#[from] sqlx::Error),
    /// MongoDB failed.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// The event store failed (projecting into MongoDB).
    #[error("event store: {0}")]
    Store(#[from] eventstore::StoreError),
    /// A stored document or event does not decode.
    #[error("review document does not decode: {0}")]
    Decode(String),
}

/// Reads of the review documents.
#[async_trait]
pub trait ReviewDocuments: Send + Sync {
    /// Which adapter this is, for logs.
    fn adapter(&self) -> &'static str;

    /// Up to `first` reviews of `product_id` after `after`, newest first (ties by id).
    async fn page(
        &self,
        product_id: &str,
        first: usize,
        after: Option<&Cursor>,
    ) -> Result<ReviewPage, DocumentsError>;

    /// The reviews among `ids` that the store has, by id.
    async fn get_many(&self, ids: &[String]) -> Result<HashMap<String, ReviewDoc>, DocumentsError>;

    /// One review, if the store has it.
    async fn get(&self, id: &str) -> Result<Option<ReviewDoc>, DocumentsError> {
        Ok(self.get_many(&[id.to_owned()]).await?.remove(id))
    }
}

#[async_trait]
impl ReviewDocuments for ReviewViews {
    fn adapter(&self) -> &'static str {
        "sql"
    }

    async fn page(
        &self,
        product_id: &str,
        first: usize,
        after: Option<&Cursor>,
    ) -> Result<ReviewPage, DocumentsError> {
        Ok(ReviewViews::page(self, product_id, first, after).await?)
    }

    async fn get_many(&self, ids: &[String]) -> Result<HashMap<String, ReviewDoc>, DocumentsError> {
        Ok(ReviewViews::get_many(self, ids).await?)
    }
}
