//! What can go wrong generating an answer.

use std::time::Duration;

/// An answer-generation failure.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The API key was rejected (the key itself is never part of the error).
    #[error("the language model rejected the API key")]
    Unauthorized,
    /// The model's API is rate limiting this client.
    #[error("the language model is rate limiting requests")]
    RateLimited,
    /// The model's API refused the request as invalid.
    #[error("the language model rejected the request (http {status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// What the API said, shortened.
        message: String,
    },
    /// The model's API failed on its side.
    #[error("the language model failed (http {status}): {message}")]
    Upstream {
        /// The HTTP status.
        status: u16,
        /// What the API said, shortened.
        message: String,
    },
    /// No answer (or no next chunk) within the allowed time.
    #[error("the language model did not answer within {0:?}")]
    Timeout(Duration),
    /// The model's API cannot be reached or the connection broke.
    #[error("cannot reach the language model: {0}")]
    Unavailable(String),
    /// The API answered something that is not a chat completion.
    #[error("malformed answer from the language model: {0}")]
    Malformed(String),
    /// The answer stream ended before the model said it was finished.
    #[error("the answer stream ended before the answer was complete")]
    Truncated,
    /// The adapter's configuration cannot work.
    #[error("invalid language model configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// A stable code for this error, for logs and GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "LLM_UNAUTHORIZED",
            Self::RateLimited => "LLM_RATE_LIMITED",
            Self::Rejected { .. } => "LLM_REJECTED",
            Self::Upstream { .. } => "LLM_UPSTREAM",
            Self::Timeout(_) => "LLM_TIMEOUT",
            Self::Unavailable(_) => "LLM_UNAVAILABLE",
            Self::Malformed(_) => "LLM_MALFORMED",
            Self::Truncated => "LLM_TRUNCATED",
            Self::Config(_) => "LLM_CONFIG",
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited
                | Self::Upstream { .. }
                | Self::Timeout(_)
                | Self::Unavailable(_)
                | Self::Truncated
        )
    }
}

/// At most `max` characters of `text`, for error messages quoting a remote answer.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
