//! Events as written (`EventData`) and as read back (`RecordedEvent`), with their metadata.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;
use crate::stream::StreamId;
use crate::version::Position;

/// Cross-cutting facts about an event: who caused it, why, and in which trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Groups every event of one business flow (one order, one saga).
    pub correlation_id: Uuid,
    /// The command or event that caused this event.
    pub causation_id: Uuid,
    /// W3C `traceparent` of the span that wrote the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The authenticated user on whose behalf the event was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When the writer produced the event.
    pub timestamp: DateTime<Utc>,
}

impl Metadata {
    /// Metadata for a flow that starts here: correlation and causation are fresh ids.
    pub fn new() -> Self {
        let id = Uuid::now_v7();
        Self {
            correlation_id: id,
            causation_id: id,
            traceparent: None,
            user_id: None,
            timestamp: Utc::now(),
        }
    }

    /// Metadata for an event caused by `cause` within `correlation`.
    pub fn caused_by(correlation_id: Uuid, causation_id: Uuid) -> Self {
        Self {
            correlation_id,
            causation_id,
            ..Self::new()
        }
    }

    /// Sets the user id.
    pub fn with_user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets the W3C `traceparent`.
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }
}

impl Default for Metadata {
    fn default() -> Self {
        Self::new()
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct EventData {
    /// Unique id (UUID v7 unless the writer derives one); appends are idempotent by it.
    pub id: Uuid,
    /// Past-tense name such as `OrderPlaced`.
    pub event_type: String,
    /// The event body.
    pub data: serde_json::Value,
    /// Correlation, causation, trace and user.
    pub metadata: Metadata,
}

impl EventData {
    /// An event with a fresh UUID v7 id and fresh metadata.
    pub fn new(event_type: impl Into<String>, data: serde_json::Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            data,
            metadata: Metadata::new(),
        }
    }

    /// An event whose body is `value` serialised to JSON.
    pub fn json<T: Serialize>(
        event_type: impl Into<String>,
        value: &T,
    ) -> Result<Self, StoreError> {
        let data = serde_json::to_value(value).map_err(|e| StoreError::InvalidEvent {
            reason: format!("data does not serialise to JSON: {e}"),
        })?;
        Ok(Self::new(event_type, data))
    }

    /// An event whose body is raw bytes that must be JSON.
    pub fn from_json_slice(
        event_type: impl Into<String>,
        bytes: &[u8],
    ) -> Result<Self, StoreError> {
        let data = serde_json::from_slice(bytes).map_err(|e| StoreError::InvalidEvent {
            reason: format!("data is not JSON: {e}"),
        })?;
        Ok(Self::new(event_type, data))
    }

    /// Replaces the id.
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// Replaces the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// An event as stored: its data plus where it sits in its stream and in `$all`. Its JSON form
/// is the envelope the relay publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The event's id.
    pub id: Uuid,
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// Its version in the stream (1 for the first event).
    pub version: u64,
    /// Its place in `$all`.
    pub position: Position,
    /// Past-tense name such as `OrderPlaced`.
    pub event_type: String,
    /// The event body.
    pub data: serde_json::Value,
    /// Correlation, causation, trace and user.
    pub metadata: Metadata,
    /// When the store committed it.
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Deserialises the body into `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_value(self.data.clone()).map_err(|e| StoreError::Codec {
            event_id: self.id,
            reason: e.to_string(),
        })
    }
}

/// A saved aggregate state at a stream version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The stream version the state includes.
    pub version: u64,
    /// The serialised state.
    pub state: serde_json::Value,
}
