//! The vector index port: nearest-neighbour search over review embeddings, model-versioned.
//!
//! Layout: [`port`] holds the [`VectorIndex`] trait and the [`IndexCatalog`] of indexes per
//! model; [`reindex`] opens the index in use and swaps in a re-embedded one; [`hnsw`] is the
//! embedded adapter (usearch HNSW graph persisted to a directory); [`atlas`] is the production
//! adapter (MongoDB Atlas `$vectorSearch`). Every vector carries its [`ModelTag`]; an index
//! refuses vectors of another dimension and refuses to open for another model.
//!
//! This crate knows nothing of reviews beyond ids, products and categories, and never embeds text.

pub mod atlas;
pub mod error;
pub mod exact;
pub mod hnsw;
pub mod model;
pub mod passage;
pub mod port;
pub mod record;
pub mod reindex;

pub use atlas::{AtlasCatalog, AtlasIndex};
pub use error::IndexError;
pub use hnsw::{HnswCatalog, HnswConfig, HnswIndex};
pub use model::ModelTag;
pub use port::{IndexCatalog, VectorIndex};
pub use record::{Hit, SearchFilter, VectorRecord};
pub use reindex::{open_current, reindex};
