//! Errors of the projection runtime, each with a stable code.

/// What went wrong while projecting.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read-model database failed; the batch's transaction was rolled back.
    #[error("read-model database: {0}")]
    Database(#[from] sqlx::Error),
    /// The event store failed.
    #[error("event store: {0}")]
    Store(#[from] eventstore::StoreError),
    /// The message bus failed.
    #[error("message bus: {0}")]
    Bus(#[from] bus::BusError),
    /// An event could not be decoded.
    #[error("event {event_id} cannot be decoded: {reason}")]
    Decode {
        /// The event (or message) that failed.
        event_id: String,
        /// The decoder's message.
        reason: String,
    },
    /// An event arrived whose predecessor in its stream was never applied.
    #[error(
        "stream {stream} skips from version {applied} to {received}: rebuild the read model from the event store"
    )]
    Gap {
        /// The stream.
        stream: String,
        /// The last version applied.
        applied: u64,
        /// The version received.
        received: u64,
    },
    /// The projection is not registered or its name is unusable.
    #[error("projection {0:?} is not registered or has an invalid name")]
    UnknownProjection(String),
}

impl ProjectionError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Database(_) => "READ_MODEL_DATABASE",
            Self::Store(e) => e.code(),
            Self::Bus(e) => e.code(),
            Self::Decode { .. } => "PROJECTION_DECODE",
            Self::Gap { .. } => "PROJECTION_GAP",
            Self::UnknownProjection(_) => "UNKNOWN_PROJECTION",
        }
    }
}
