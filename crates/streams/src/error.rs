//! What can go wrong talking to a stream broker.

/// A stream-broker failure.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The consumer group (or its stream) does not exist.
    #[error("consumer group {group:?} does not exist on stream {stream:?}")]
    NoGroup {
        /// The stream named in the call.
        stream: String,
        /// The group named in the call.
        group: String,
    },
    /// An entry id that is not `<milliseconds>-<sequence>`.
    #[error("invalid stream entry id {0:?} (expected <milliseconds>-<sequence>)")]
    InvalidId(String),
    /// An argument the broker cannot act on.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The broker cannot be reached or the connection broke; the call may be retried.
    #[error("stream broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the command.
    #[error("stream broker failed: {0}")]
    Backend(String),
    /// The broker answered in a shape this adapter does not understand.
    #[error("unexpected reply from the stream broker: {0}")]
    UnexpectedReply(String),
}

impl StreamError {
    /// A stable code for this error, for logs and GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoGroup { .. } => "STREAM_NO_GROUP",
            Self::InvalidId(_) => "STREAM_INVALID_ID",
            Self::InvalidArgument(_) => "STREAM_INVALID_ARGUMENT",
            Self::Unavailable(_) => "STREAM_UNAVAILABLE",
            Self::Backend(_) => "STREAM_BACKEND",
            Self::UnexpectedReply(_) => "STREAM_UNEXPECTED_REPLY",
        }
    }

    pub(crate) fn no_group(stream: &str, group: &str) -> Self {
        Self::NoGroup {
            stream: stream.to_owned(),
            group: group.to_owned(),
        }
    }
}

/// Rejects calls both adapters refuse alike.
pub(crate) fn check_count(count: usize) -> Result<(), StreamError> {
    if count == 0 {
        Err(StreamError::InvalidArgument("count must be at least 1"))
    } else {
        Ok(())
    }
}

/// Rejects an append without fields (a stream entry needs at least one).
pub(crate) fn check_fields(fields: &[(String, String)]) -> Result<(), StreamError> {
    if fields.is_empty() {
        Err(StreamError::InvalidArgument(
            "an entry needs at least one field",
        ))
    } else {
        Ok(())
    }
}
