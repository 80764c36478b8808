//! W3C trace context across hops: inject the current span's context, extract a parent.
//!
//! Carrier-specific helpers use OpenTelemetry's global propagator (set by
//! [`install_propagator`], which `init` calls); the `traceparent` helpers always speak
//! W3C TraceContext, since that is what they store.

use opentelemetry::Context;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::TelemetryError;
use crate::carrier::{
    HeaderExtractor, HeaderInjector, KafkaHeadersExtractor, KafkaHeadersInjector,
    MetadataExtractor, MetadataInjector, StreamFieldsExtractor, StreamFieldsInjector,
};

/// The carrier key of the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";

/// Sets the global text-map propagator to W3C TraceContext (idempotent).
pub fn install_propagator() {
    global::set_text_map_propagator(TraceContextPropagator::new());
}

/// Writes `cx` into `carrier` with the global propagator.
pub fn inject_context(cx: &Context, carrier: &mut dyn Injector) {
    global::get_text_map_propagator(|propagator| propagator.inject_context(cx, carrier));
}

/// Writes the current span's context into `carrier` with the global propagator.
pub fn inject_current(carrier: &mut dyn Injector) {
    inject_context(&Span::current().context(), carrier);
}

/// Reads a parent context from `carrier` with the global propagator (empty if none).
pub fn extract_context(carrier: &dyn Extractor) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(carrier))
}

/// Makes `parent` the parent of `span`; call before the span is first entered.
pub fn set_parent(span: &Span, parent: Context) -> Result<(), TelemetryError> {
    span.set_parent(parent)?;
    Ok(())
}

/// Injects the current span's context into HTTP headers.
pub fn inject_http_headers(headers: &mut http::HeaderMap) {
    inject_current(&mut HeaderInjector(headers));
}

/// Extracts a parent context from HTTP headers.
pub fn extract_http_headers(headers: &http::HeaderMap) -> Context {
    extract_context(&HeaderExtractor(headers))
}

/// Injects the current span's context into Kafka-style message headers.
pub fn inject_kafka_headers(headers: &mut Vec<(String, Vec<u8>)>) {
    inject_current(&mut KafkaHeadersInjector(headers));
}

/// Extracts a parent context from Kafka-style message headers.
pub fn extract_kafka_headers(headers: &[(String, Vec<u8>)]) -> Context {
    extract_context(&KafkaHeadersExtractor(headers))
}

/// Injects the current span's context into Redis stream entry fields.
pub fn inject_stream_fields(fields: &mut Vec<(String, String)>) {
    inject_current(&mut StreamFieldsInjector(fields));
}

/// Extracts a parent context from Redis stream entry fields.
pub fn extract_stream_fields(fields: &[(String, String)]) -> Context {
    extract_context(&StreamFieldsExtractor(fields))
}

/// Injects the current span's context into gRPC request or response metadata.
pub fn inject_grpc_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    inject_current(&mut MetadataInjector(metadata));
}

/// Extracts a parent context from gRPC metadata.
pub fn extract_grpc_metadata(metadata: &tonic::metadata::MetadataMap) -> Context {
    extract_context(&MetadataExtractor(metadata))
}

/// The W3C `traceparent` of the current span, for storing in event metadata.
///
/// `None` when the current span has no valid OpenTelemetry context (there is no
/// current span, or the subscriber has no OpenTelemetry layer).
pub fn current_traceparent() -> Option<String> {
    let mut fields = Vec::with_capacity(2);
    TraceContextPropagator::new().inject_context(
        &Span::current().context(),
        &mut StreamFieldsInjector(&mut fields),
    );
    fields
        .into_iter()
        .find(|(key, _)| key == TRACEPARENT)
        .map(|(_, value)| value)
}

/// Parses a W3C `traceparent` string into a remote parent context.
pub fn context_from_traceparent(traceparent: &str) -> Result<Context, TelemetryError> {
    let fields = [(TRACEPARENT.to_owned(), traceparent.trim().to_owned())];
    let cx = TraceContextPropagator::new().extract(&StreamFieldsExtractor(&fields));
    if cx.span().span_context().is_valid() {
        Ok(cx)
    } else {
        Err(TelemetryError::InvalidTraceparent(traceparent.to_owned()))
    }
}

/// Makes the context in `traceparent` the parent of `span`; call before it is entered.
pub fn set_parent_from_traceparent(span: &Span, traceparent: &str) -> Result<(), TelemetryError> {
    set_parent(span, context_from_traceparent(traceparent)?)
}

#[cfg(test)]
mod tests {
    use super::context_from_traceparent;
    use opentelemetry::trace::TraceContextExt as _;

    #[test]
    fn parses_a_valid_traceparent() {
        let cx =
            context_from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .expect("valid traceparent");
        let span = cx.span();
        let sc = span.span_context();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        assert!(sc.is_remote());
    }

    #[test]
    fn rejects_garbage_and_all_zero_ids() {
        for bad in [
            "",
            "not-a-traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            let err = context_from_traceparent(bad).expect_err(bad);
            assert_eq!(err.code(), "TELEMETRY_INVALID_TRACEPARENT");
        }
    }
}
