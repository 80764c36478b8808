//! How an event becomes a bus record: topic, key, headers and JSON envelope.

use bus::OutgoingRecord;
use eventstore::RecordedEvent;

/// Header holding the event id (consumers deduplicate by it).
pub const HEADER_EVENT_ID: &str = "event-id";
/// Header holding the event type.
pub const HEADER_EVENT_TYPE: &str = "event-type";
/// Header holding the event's position in `$all`.
pub const HEADER_POSITION: &str = "position";

/// The topic of a stream category: `{prefix}{category}.events`.
pub fn topic_for(prefix: &str, category: &str) -> String {
    format!("{prefix}{category}.events")
}

/// The record published for an event: keyed by stream id, the envelope as JSON payload, with
/// id, type, position and W3C trace context in headers.
pub fn to_record(prefix: &str, event: &RecordedEvent) -> Result<OutgoingRecord, serde_json::Error> {
    let mut headers = vec![
        (
            HEADER_EVENT_ID.to_owned(),
            event.id.to_string().into_bytes(),
        ),
        (
            HEADER_EVENT_TYPE.to_owned(),
            event.event_type.clone().into_bytes(),
        ),
        (
            HEADER_POSITION.to_owned(),
            event.position.0.to_string().into_bytes(),
        ),
    ];
    if let Some(tp) = &event.metadata.traceparent {
        headers.push(("traceparent".to_owned(), tp.clone().into_bytes()));
    }
    let payload = serde_json::to_vec(event)?;
    Ok(OutgoingRecord {
        topic: topic_for(prefix, event.stream_id.category()),
        key: event.stream_id.to_string(),
        payload,
        headers,
    })
}
