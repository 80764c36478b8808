//! The one error type of the evaluation.

use std::path::PathBuf;

/// Everything that can go wrong while loading the set or ranking it.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file of the set could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A line of the set is malformed or refers to something that does not exist.
    #[error("{path}:{line}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 for the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The embedder failed.
    #[error("embedding failed: {0}")]
    Model(#[from] model::ModelError),
    /// The vector index failed.
    #[error("vector index failed: {0}")]
    Index(#[from] vectorindex::IndexError),
    /// A temporary index directory could not be made.
    #[error("temporary index directory: {0}")]
    TempDir(std::io::Error),
}

impl EvalError {
    /// A stable code per variant.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "IO",
            Self::Format { .. } => "FORMAT",
            Self::Model(_) => "MODEL",
            Self::Index(_) => "INDEX",
            Self::TempDir(_) => "TEMP_DIR",
        }
    }
}
