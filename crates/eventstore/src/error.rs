//! Errors of the event store, each with a stable code.

use uuid::Uuid;

use crate::version::ExpectedVersion;

/// What went wrong in the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream's version was not what the writer expected; nothing was written.
    #[error("wrong expected version for stream {stream}: expected {expected}, actual {actual}")]
    WrongExpectedVersion {
        /// The stream appended to.
        stream: String,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's version (0 when it does not exist).
        actual: u64,
    },
    /// An event id was already used for a different event; nothing was written.
    #[error("event id {id} is already used by a different event")]
    DuplicateEventId {
        /// The reused id.
        id: Uuid,
    },
    /// The stream id is malformed; nothing was written.
    #[error("invalid stream id {stream:?}: {reason}")]
    InvalidStreamId {
        /// The offending id (truncated).
        stream: String,
        /// Why it was refused.
        reason: String,
    },
    /// An expected-version value that names no known state.
    #[error(
        "invalid expected version {0:?}: use any, no_stream, stream_exists or a version number"
    )]
    InvalidExpectedVersion(String),
    /// An event breaks a limit or is malformed; nothing was written.
    #[error("invalid event: {reason}")]
    InvalidEvent {
        /// Why it was refused.
        reason: String,
    },
    /// Stored data could not be decoded into the requested type.
    #[error("event {event_id} cannot be decoded: {reason}")]
    Codec {
        /// The event.
        event_id: Uuid,
        /// The decoder's message.
        reason: String,
    },
    /// The database refused or failed the operation; a write was certainly not applied.
    #[error("event store unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The connection failed while a write was in flight: it may or may not have been applied.
    /// Reload (or retry with the same event ids, which is idempotent) instead of assuming.
    #[error("event store write outcome unknown: {0}")]
    Indeterminate(#[source] sqlx::Error),
    /// The schema could not be migrated.
    #[error("event store migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// A stable, machine-readable code (used as GraphQL `extensions.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongExpectedVersion { .. } => "WRONG_EXPECTED_VERSION",
            Self::DuplicateEventId { .. } => "DUPLICATE_EVENT_ID",
            Self::InvalidStreamId { .. } => "INVALID_STREAM_ID",
            Self::InvalidExpectedVersion(_) => "INVALID_EXPECTED_VERSION",
            Self::InvalidEvent { .. } => "INVALID_EVENT",
            Self::Codec { .. } => "EVENT_CODEC",
            Self::Unavailable(_) => "EVENT_STORE_UNAVAILABLE",
            Self::Indeterminate(_) => "EVENT_STORE_INDETERMINATE",
            Self::Migration(_) => "EVENT_STORE_MIGRATION",
        }
    }

    /// Whether a write that failed with this error was certainly not applied.
    pub fn certainly_aborted(&self) -> bool {
        !matches!(self, Self::Indeterminate(_))
    }

    /// Whether `err` cut a request off in flight (the database may have acted on it).
    pub(crate) fn in_flight(err: &sqlx::Error) -> bool {
        matches!(
            err,
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed
        )
    }

    /// Classifies a database error from a read or a write.
    pub(crate) fn from_db(err: sqlx::Error, writing: bool) -> Self {
        if writing && Self::in_flight(&err) {
            Self::Indeterminate(err)
        } else {
            Self::Unavailable(err)
        }
    }
}
