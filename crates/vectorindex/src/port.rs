//! The vector index port and the catalog of model-versioned indexes.

use crate::error::IndexError;
use crate::model::ModelTag;
use crate::record::{Hit, SearchFilter, VectorRecord};
use async_trait::async_trait;

/// A searchable store of review embeddings of one model.
#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// The model every vector in this index comes from.
    fn model(&self) -> &ModelTag;
    /// Inserts or replaces records (by id), as one batch.
    async fn upsert(&self, records: &[VectorRecord]) -> Result<(), IndexError>;
    /// Removes records by id; unknown ids are ignored.
    async fn remove(&self, ids: &[String]) -> Result<(), IndexError>;
    /// The `k` records most similar (cosine) to `query` that pass `filter`, best first.
    async fn search(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<Hit>, IndexError>;
    /// Number of records in the index.
    async fn len(&self) -> Result<usize, IndexError>;
    /// Whether the index holds no records.
    async fn is_empty(&self) -> Result<bool, IndexError> {
        Ok(self.len().await? == 0)
    }
    /// Makes every acknowledged change durable.
    async fn flush(&self) -> Result<(), IndexError>;
}

/// The set of indexes of one kind, one per model tag, with a pointer to the one in use.
#[async_trait]
pub trait IndexCatalog: Send + Sync {
    /// The index type this catalog opens.
    type Index: VectorIndex + std::fmt::Debug;
    /// Opens (creating if absent) the index for `tag`; refuses one stored for another tag.
    async fn open(&self, tag: &ModelTag) -> Result<Self::Index, IndexError>;
    /// The model tag of the index in use, if any.
    async fn current(&self) -> Result<Option<ModelTag>, IndexError>;
    /// Atomically makes `tag`'s index the one in use.
    async fn promote(&self, tag: &ModelTag) -> Result<(), IndexError>;
    /// Deletes `tag`'s index and its data.
    async fn retire(&self, tag: &ModelTag) -> Result<(), IndexError>;
}
