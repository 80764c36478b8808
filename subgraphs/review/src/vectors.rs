//! The embedder and the vector index in use, held together so a re-embedding job can swap
//! both at once; queries are refused (`REINDEXING`) while the index holds another model's
//! vectors.

use std::sync::{Arc, PoisonError, RwLock};

use model::{Embedder, ModelInfo, TextKind};
use vectorindex::{ModelTag, VectorIndex};

use crate::error::ServiceError;

/// How reviews are indexed (which texts become vectors): part of the index's tag, so a change
/// re-embeds every review into a new index like a model change does.
pub const INDEXED_AS: &str = "sentences1";

/// The tag the index of `info`'s model is stored under: the model and [`INDEXED_AS`].
pub fn tag_of(info: &ModelInfo) -> ModelTag {
    ModelTag::new(
        info.name.clone(),
        format!("{}+{INDEXED_AS}", info.version),
        info.dimension,
    )
}

/// The embedder and vector index in use; cheap to clone, shared by search and the pipeline.
#[derive(Clone)]
pub struct ReviewVectors {
    current: Arc<RwLock<Current>>,
}

#[derive(Clone)]
struct Current {
    embedder: Arc<dyn Embedder>,
    index: Arc<dyn VectorIndex>,
}

impl std::fmt::Debug for ReviewVectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (embedder, index) = self.current();
        f.debug_struct("ReviewVectors")
            .field("embedder", &embedder.info().name)
            .field("index", &index.model().key())
            .finish()
    }
}

impl ReviewVectors {
    /// `embedder`'s vectors stored in `index`.
    pub fn new(embedder: Arc<dyn Embedder>, index: Arc<dyn VectorIndex>) -> Self {
        Self {
            current: Arc::new(RwLock::new(Current { embedder, index })),
        }
    }

    /// The embedder and index in use now.
    pub fn current(&self) -> (Arc<dyn Embedder>, Arc<dyn VectorIndex>) {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (current.embedder.clone(), current.index.clone())
    }

    /// Puts `embedder` and its `index` in use (after a re-embedding job).
    pub fn swap(&self, embedder: Arc<dyn Embedder>, index: Arc<dyn VectorIndex>) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Current { embedder, index };
    }

    /// The model key (`name@version`) of the embedder in use.
    pub fn model_key(&self) -> String {
        tag_of(self.current().0.info()).key()
    }

    /// Whether the index in use holds the embedder's vectors.
    pub fn is_consistent(&self) -> bool {
        let (embedder, index) = self.current();
        index.model() == &tag_of(embedder.info())
    }

    /// Embeds `texts` as `kind` for the index in use (in requests no larger than the embedder
    /// accepts): `REINDEXING` while the index holds another model's vectors.
    pub async fn embed(
        &self,
        texts: &[String],
        kind: TextKind,
    ) -> Result<(Vec<Vec<f32>>, Arc<dyn VectorIndex>), ServiceError> {
        let (embedder, index) = self.current();
        let tag = tag_of(embedder.info());
        if index.model() != &tag {
            return Err(ServiceError::Reindexing(tag.key()));
        }
        let vectors = model::embed_all(embedder.as_ref(), texts, kind).await?;
        Ok((vectors, index))
    }
}
