//! The one error type of the model crate, with a stable code and a gRPC status per variant.

use std::path::PathBuf;

/// Everything that can go wrong while loading, converting or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A request breaks the service's input rules (no texts, an empty text, too many, too long).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The request queue is full; the caller should back off and retry.
    #[error("the model is overloaded: the request queue is full")]
    Overloaded,
    /// The inference worker has stopped (the service is shutting down).
    #[error("the model worker has stopped")]
    Stopped,
    /// A file of the model directory (or a file to convert) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A model file is malformed (bad manifest, config, packed weights or tokenizer).
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tensor engine failed.
    #[error("inference failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A batch failed; every request in it gets this error (with the cause's message).
    #[error("batch inference failed: {0}")]
    Batch(String),
    /// The tokenizer failed on an input.
    #[error("tokenization failed: {0}")]
    Tokenizer(String),
    /// A call to a remote model service failed.
    #[error("model service call failed: {0}")]
    Remote(#[from] tonic::Status),
    /// Connecting to a remote model service failed.
    #[error("cannot connect to the model service: {0}")]
    Connect(#[from] tonic::transport::Error),
}

impl ModelError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "MODEL_INVALID_INPUT",
            Self::Overloaded => "MODEL_OVERLOADED",
            Self::Stopped => "MODEL_STOPPED",
            Self::Io { .. } => "MODEL_IO",
            Self::Format { .. } => "MODEL_FORMAT",
            Self::Tensor(_) => "MODEL_INFERENCE",
            Self::Batch(_) => "MODEL_BATCH",
            Self::Tokenizer(_) => "MODEL_TOKENIZER",
            Self::Remote(_) => "MODEL_REMOTE",
            Self::Connect(_) => "MODEL_CONNECT",
        }
    }

    /// Builds a [`ModelError::Format`] for `path`.
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Builds a [`ModelError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<ModelError> for tonic::Status {
    fn from(error: ModelError) -> Self {
        let message = error.to_string();
        match error {
            ModelError::InvalidInput(_) => tonic::Status::invalid_argument(message),
            ModelError::Overloaded => tonic::Status::resource_exhausted(message),
            ModelError::Stopped => tonic::Status::unavailable(message),
            ModelError::Remote(status) => status,
            ModelError::Connect(_) => tonic::Status::unavailable(message),
            ModelError::Io { .. }
            | ModelError::Format { .. }
            | ModelError::Tensor(_)
            | ModelError::Batch(_)
            | ModelError::Tokenizer(_) => tonic::Status::internal(message),
        }
    }
}
