//! Errors of the vector index port.

use crate::model::ModelTag;

/// What went wrong in a vector index operation.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A vector's length differs from the model's dimension.
    #[error("vector for {id:?} has dimension {actual}, the model {model} produces {expected}")]
    DimensionMismatch {
        /// Record id (or `query`).
        id: String,
        /// The model's dimension.
        expected: usize,
        /// The vector's length.
        actual: usize,
        /// The model key (`name@version`).
        model: String,
    },
    /// A vector holds NaN/infinite values or is all zeros (no cosine defined).
    #[error("vector for {id:?} is not usable: {reason}")]
    InvalidVector {
        /// Record id (or `query`).
        id: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A record field is empty or malformed.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The stored index was built for another model than the one asked for.
    #[error("index was built for model {found}, refusing to use it for {expected}")]
    ModelMismatch {
        /// The model the caller embeds with.
        expected: ModelTag,
        /// The model the stored index holds.
        found: ModelTag,
    },
    /// The index is the one in use and cannot be retired.
    #[error("index for {0} is in use")]
    InUse(ModelTag),
    /// Reading or writing index files failed.
    #[error("index storage: {0}")]
    Io(#[from] std::io::Error),
    /// Index files exist but cannot be decoded.
    #[error("index files are corrupt: {0}")]
    Corrupt(String),
    /// The HNSW engine reported an error.
    #[error("hnsw engine: {0}")]
    Engine(String),
    /// MongoDB reported an error.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// A background task failed to complete.
    #[error("index task: {0}")]
    Task(String),
}

impl IndexError {
    /// Stable machine-readable code for clients (becomes GraphQL `extensions.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::DimensionMismatch { .. } => "VECTOR_DIMENSION_MISMATCH",
            Self::InvalidVector { .. } => "VECTOR_INVALID",
            Self::InvalidRecord(_) => "VECTOR_RECORD_INVALID",
            Self::ModelMismatch { .. } => "VECTOR_MODEL_MISMATCH",
            Self::InUse(_) => "VECTOR_INDEX_IN_USE",
            Self::Io(_) | Self::Corrupt(_) => "VECTOR_STORAGE",
            Self::Engine(_) | Self::Task(_) => "VECTOR_ENGINE",
            Self::Mongo(_) => "VECTOR_BACKEND",
        }
    }
}
