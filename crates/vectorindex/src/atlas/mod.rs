//! The production adapter: MongoDB Atlas Vector Search (`$vectorSearch`) over `review_vectors`.
//!
//! All models share one collection; every document carries its `model` (`name@version`) and
//! every search filters on it. Each vector dimension has its own vector search index
//! (`{prefix}_{dimension}`), defined in `mongo/review_vectors.vector-index.json`.

pub mod definition;
pub mod pipeline;

use crate::error::IndexError;
use crate::model::ModelTag;
use crate::port::{IndexCatalog, VectorIndex};
use crate::record::{Hit, SearchFilter, VectorRecord, normalized, validated};
use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReplaceOneModel;
use mongodb::{Collection, Database};
use std::time::Duration;

/// Names and tuning of the Atlas adapter.
#[derive(Debug, Clone)]
pub struct AtlasConfig {
    /// Collection of vector documents.
    pub collection: String,
    /// Prefix of vector search index names (suffixed by the dimension).
    pub vector_index_prefix: String,
    /// Collection holding the pointer to the model in use.
    pub catalog_collection: String,
    /// ANN candidates per requested result (`numCandidates = k * this`).
    pub candidates_per_result: usize,
}

impl Default for AtlasConfig {
    fn default() -> Self {
        Self {
            collection: "review_vectors".into(),
            vector_index_prefix: "review_vectors_embedding".into(),
            catalog_collection: "vector_index_catalog".into(),
            candidates_per_result: 20,
        }
    }
}

/// One model's vectors in the Atlas collection.
#[derive(Debug, Clone)]
pub struct AtlasIndex {
    tag: ModelTag,
    collection: Collection<Document>,
    index_name: String,
    candidates_per_result: usize,
}

impl AtlasIndex {
    /// The index of `tag`'s vectors in `db` (no I/O; see [`AtlasCatalog::open`] for setup).
    pub fn new(db: &Database, tag: ModelTag, config: &AtlasConfig) -> Self {
        Self {
            index_name: definition::vector_index_name(&config.vector_index_prefix, tag.dimension),
            collection: db.collection(&config.collection),
            candidates_per_result: config.candidates_per_result,
            tag,
        }
    }

    /// Creates the collection (with its validator), its indexes and the vector index if absent.
    pub async fn ensure_schema(&self, prefix: &str) -> Result<(), IndexError> {
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
        let mut existing = self
            .collection
            .list_search_indexes()
            .name(&self.index_name)
            .await?;
        if existing.try_next().await?.is_none() {
            self.collection
                .create_search_index(definition::vector_index(prefix, self.tag.dimension)?)
                .await?;
            tracing::info!(index = %self.index_name, "vector search index created");
        }
        Ok(())
    }

    /// Waits until Atlas reports the vector index queryable, up to `timeout`.
    pub async fn wait_until_queryable(&self, timeout: Duration) -> Result<bool, IndexError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut cursor = self
                .collection
                .list_search_indexes()
                .name(&self.index_name)
                .await?;
            if let Some(index) = cursor.try_next().await?
                && index.get_bool("queryable").unwrap_or(false)
            {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Dimension of one stored vector of this model, if any is stored.
    async fn stored_dimension(&self) -> Result<Option<usize>, IndexError> {
        let pipeline = [
            doc! { "$match": { "model": self.tag.key() } },
            doc! { "$limit": 1 },
            doc! { "$project": { "_id": 0, "n": { "$size": "$embedding" } } },
        ];
        let mut cursor = self.collection.aggregate(pipeline).await?;
        Ok(cursor
            .try_next()
            .await?
            .and_then(|d| d.get_i32("n").ok())
            .and_then(|n| usize::try_from(n).ok()))
    }
}

#[async_trait]
impl VectorIndex for AtlasIndex {
    fn model(&self) -> &ModelTag {
        &self.tag
    }

    async fn upsert(&self, records: &[VectorRecord]) -> Result<(), IndexError> {
        let namespace = self.collection.namespace();
        let models = records
            .iter()
            .map(|r| {
                let vector = validated(&self.tag, r)?;
                Ok(ReplaceOneModel::builder()
                    .namespace(namespace.clone())
                    .filter(doc! { "_id": pipeline::document_id(&self.tag, &r.id) })
                    .replacement(pipeline::record_document(&self.tag, r, &vector))
                    .upsert(true)
                    .build())
            })
            .collect::<Result<Vec<_>, IndexError>>()?;
        if !models.is_empty() {
            // One round trip; replace-with-upsert makes a re-upsert replace, never duplicate.
            self.collection
                .client()
                .bulk_write(models)
                .ordered(false)
                .await?;
        }
        Ok(())
    }

    async fn remove(&self, ids: &[String]) -> Result<(), IndexError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<Bson> = ids
            .iter()
            .map(|id| Bson::String(pipeline::document_id(&self.tag, id)))
            .collect();
        self.collection
            .delete_many(doc! { "_id": { "$in": ids } })
            .await?;
        Ok(())
    }

    async fn search(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let query = normalized(&self.tag, "query", query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let stages = pipeline::search_pipeline(
            &self.index_name,
            &self.tag,
            &query,
            filter,
            k,
            self.candidates_per_result,
        );
        let documents: Vec<Document> = self
            .collection
            .aggregate(stages)
            .await?
            .try_collect()
            .await?;
        Ok(documents.iter().filter_map(pipeline::hit_from).collect())
    }

    async fn len(&self) -> Result<usize, IndexError> {
        let n = self
            .collection
            .count_documents(doc! { "model": self.tag.key() })
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn flush(&self) -> Result<(), IndexError> {
        // Acknowledged writes are already durable on the replica set.
        Ok(())
    }
}

/// The models' vectors in one Atlas database, with a pointer document to the one in use.
#[derive(Debug, Clone)]
pub struct AtlasCatalog {
    db: Database,
    config: AtlasConfig,
}

/// The database used when a connection string names none.
pub const DEFAULT_DATABASE: &str = "bloody_sweet";

impl AtlasCatalog {
    /// A catalog over `db`.
    pub fn new(db: Database, config: AtlasConfig) -> Self {
        Self { db, config }
    }

    /// A catalog over the database `uri` names ([`DEFAULT_DATABASE`] when it names none).
    pub async fn connect(uri: &str, config: AtlasConfig) -> Result<Self, IndexError> {
        let client = mongodb::Client::with_uri_str(uri).await?;
        let db = client
            .default_database()
            .unwrap_or_else(|| client.database(DEFAULT_DATABASE));
        Ok(Self::new(db, config))
    }

    fn pointers(&self) -> Collection<Document> {
        self.db.collection(&self.config.catalog_collection)
    }
}

#[async_trait]
impl IndexCatalog for AtlasCatalog {
    type Index = AtlasIndex;

    async fn open(&self, tag: &ModelTag) -> Result<AtlasIndex, IndexError> {
        let index = AtlasIndex::new(&self.db, tag.clone(), &self.config);
        index
            .ensure_schema(&self.config.vector_index_prefix)
            .await?;
        match index.stored_dimension().await? {
            Some(found) if found != tag.dimension => Err(IndexError::ModelMismatch {
                expected: tag.clone(),
                found: ModelTag::new(&tag.name, &tag.version, found),
            }),
            _ => Ok(index),
        }
    }

    async fn current(&self) -> Result<Option<ModelTag>, IndexError> {
        let pointer = self
            .pointers()
            .find_one(doc! { "_id": &self.config.collection })
            .await?;
        let Some(pointer) = pointer else {
            return Ok(None);
        };
        let model = pointer
            .get_document("model")
            .map_err(|e| IndexError::Corrupt(format!("catalog pointer: {e}")))?;
        let field = |name: &str| {
            model
                .get_str(name)
                .map(str::to_owned)
                .map_err(|e| IndexError::Corrupt(format!("catalog pointer {name}: {e}")))
        };
        let dimension = model
            .get_i64("dimension")
            .ok()
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| IndexError::Corrupt("catalog pointer dimension".into()))?;
        Ok(Some(ModelTag::new(
            field("name")?,
            field("version")?,
            dimension,
        )))
    }

    async fn promote(&self, tag: &ModelTag) -> Result<(), IndexError> {
        // A single-document replace is atomic: readers see the old or the new model.
        self.pointers()
            .replace_one(
                doc! { "_id": &self.config.collection },
                definition::catalog_pointer(&self.config.collection, tag),
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    async fn retire(&self, tag: &ModelTag) -> Result<(), IndexError> {
        if self.current().await?.as_ref() == Some(tag) {
            return Err(IndexError::InUse(tag.clone()));
        }
        self.db
            .collection::<Document>(&self.config.collection)
            .delete_many(doc! { "model": tag.key() })
            .await?;
        Ok(())
    }
}
