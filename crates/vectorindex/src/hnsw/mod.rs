//! The embedded adapter: an in-process HNSW graph (usearch) persisted to a directory.

mod catalog;
mod state;
mod storage;

pub use catalog::HnswCatalog;

use crate::error::IndexError;
use crate::model::ModelTag;
use crate::port::VectorIndex;
use crate::record::{Hit, SearchFilter, VectorRecord};
use async_trait::async_trait;
use state::State;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::RwLock;

/// Version of the HNSW engine (usearch) compiled in.
pub fn engine_version() -> &'static str {
    usearch::version()
}

/// Graph and search parameters of the embedded index.
#[derive(Debug, Clone)]
pub struct HnswConfig {
    /// Edges per node (HNSW `M`).
    pub connectivity: usize,
    /// Candidate list size while inserting (`ef_construction`).
    pub expansion_add: usize,
    /// Candidate list size while searching (`ef`).
    pub expansion_search: usize,
    /// Filters matching at most this many records are scored exactly instead of by graph search.
    pub exact_filter_limit: usize,
    /// Threads for batch inserts, and the most searches that run at once.
    pub threads: usize,
}

impl Default for HnswConfig {
    fn default() -> Self {
        Self {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
            exact_filter_limit: 4096,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A model-tagged HNSW index held in memory and persisted under `{dir}/`.
pub struct HnswIndex {
    tag: ModelTag,
    dir: PathBuf,
    state: Arc<RwLock<State>>,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("tag", &self.tag)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl HnswIndex {
    /// Opens (or creates) the index stored in `dir` for `tag`; refuses one built for another tag.
    pub async fn open(
        dir: impl Into<PathBuf>,
        tag: ModelTag,
        config: HnswConfig,
    ) -> Result<Self, IndexError> {
        let dir = dir.into();
        let (path, model) = (dir.clone(), tag.clone());
        let max_readers = config.threads.max(1) as u32;
        let state = blocking(move || storage::open(&path, &model, &config)).await?;
        tracing::info!(model = %tag.key(), dir = %dir.display(), records = state.len(), "hnsw index opened");
        Ok(Self {
            tag,
            dir,
            state: Arc::new(RwLock::with_max_readers(state, max_readers)),
        })
    }

    /// The directory holding this index's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Runs CPU- or disk-bound work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| IndexError::Task(e.to_string()))?
}

#[async_trait]
impl VectorIndex for HnswIndex {
    fn model(&self) -> &ModelTag {
        &self.tag
    }

    async fn upsert(&self, records: &[VectorRecord]) -> Result<(), IndexError> {
        if records.is_empty() {
            return Ok(());
        }
        let (state, tag, records) = (self.state.clone(), self.tag.clone(), records.to_vec());
        blocking(move || state.blocking_write().upsert(&tag, &records)).await
    }

    async fn remove(&self, ids: &[String]) -> Result<(), IndexError> {
        let (state, ids) = (self.state.clone(), ids.to_vec());
        blocking(move || state.blocking_write().remove(&ids)).await
    }

    async fn search(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        // A graph search takes about a millisecond: run it in place rather than pay a thread hop.
        self.state.read().await.search(&self.tag, query, filter, k)
    }

    async fn len(&self) -> Result<usize, IndexError> {
        Ok(self.state.read().await.len())
    }

    async fn flush(&self) -> Result<(), IndexError> {
        let (state, dir) = (self.state.clone(), self.dir.clone());
        blocking(move || storage::save(&dir, &state.blocking_read())).await
    }
}
