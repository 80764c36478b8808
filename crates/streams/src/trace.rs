//! W3C trace context carried in stream entry fields.

use telemetry::TRACEPARENT;

/// The trace-state field name (W3C `tracestate`).
const TRACESTATE: &str = "tracestate";

/// `fields` plus the current span's W3C trace context (`traceparent`, `tracestate`),
/// replacing any the caller passed; unchanged when there is no current trace.
pub fn with_trace(fields: &[(String, String)]) -> Vec<(String, String)> {
    let mut traced = Vec::with_capacity(fields.len() + 2);
    traced.extend_from_slice(fields);
    telemetry::inject_stream_fields(&mut traced);
    traced
}

/// Whether a field name belongs to the trace context rather than the payload.
pub fn is_trace_field(name: &str) -> bool {
    name == TRACEPARENT || name == TRACESTATE
}
