//! What can go wrong asking the assistant.

use crate::retrieval::RetrievalError;

/// An assistant failure; [`AssistantError::code`] is its GraphQL `extensions.code`.
#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    /// The caller's input is not acceptable (empty or too long question, bad id).
    #[error("{0}")]
    BadInput(String),
    /// The chat session belongs to another user.
    #[error("this chat session belongs to another user")]
    Forbidden,
    /// No chat session with this id exists.
    #[error("no chat session with this id exists")]
    SessionNotFound,
    /// Finding the reviews to ground the answer on failed.
    #[error(transparent)]
    Retrieval(#[from] RetrievalError),
    /// Generating the answer failed.
    #[error(transparent)]
    Llm(#[from] llm::LlmError),
    /// The stream broker failed.
    #[error(transparent)]
    Stream(#[from] streams::StreamError),
    /// A stored chat entry could not be read back.
    #[error("a stored chat entry is malformed: {0}")]
    Corrupt(String),
}

impl AssistantError {
    /// A stable code for this error, for logs and GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadInput(_) => "BAD_USER_INPUT",
            Self::Forbidden => "FORBIDDEN",
            Self::SessionNotFound => "NOT_FOUND",
            Self::Retrieval(RetrievalError::Unavailable(_)) => "RETRIEVAL_UNAVAILABLE",
            Self::Retrieval(RetrievalError::Failed(_)) => "RETRIEVAL_FAILED",
            Self::Llm(err) => err.code(),
            Self::Stream(err) => err.code(),
            Self::Corrupt(_) => "CHAT_CORRUPT",
        }
    }
}
