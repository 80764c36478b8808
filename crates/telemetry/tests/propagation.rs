//! Inject-then-extract round trips for every carrier keep the trace id.

use http::HeaderMap;
use opentelemetry::trace::{TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use telemetry::{Context, TelemetryError};
use tonic::metadata::MetadataMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Runs `f` under a thread-local subscriber with an OpenTelemetry layer (no exporter).
fn with_tracing<R>(f: impl FnOnce() -> R) -> R {
    telemetry::install_propagator();
    let provider = SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("telemetry-test"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f)
}

fn trace_id(span: &Span) -> TraceId {
    span.context().span().span_context().trace_id()
}

/// Injects inside a sender span, extracts into a fresh receiver span outside it.
fn assert_round_trip<C>(inject: impl FnOnce(&mut C), extract: impl FnOnce(&C) -> Context)
where
    C: Default,
{
    with_tracing(|| {
        let sender = tracing::info_span!("send");
        let sent = trace_id(&sender);
        assert_ne!(sent, TraceId::INVALID);

        let mut carrier = C::default();
        sender.in_scope(|| inject(&mut carrier));

        let unrelated = tracing::info_span!("unrelated");
        assert_ne!(
            trace_id(&unrelated),
            sent,
            "a span without a parent starts a new trace"
        );

        let receiver = tracing::info_span!("receive");
        telemetry::set_parent(&receiver, extract(&carrier)).expect("set parent");
        assert_eq!(trace_id(&receiver), sent);
        assert_ne!(
            receiver.context().span().span_context().span_id(),
            sender.context().span().span_context().span_id(),
        );
    });
}

#[test]
fn http_headers_round_trip() {
    assert_round_trip(
        |headers: &mut HeaderMap| {
            telemetry::inject_http_headers(headers);
            assert!(headers.contains_key(telemetry::TRACEPARENT));
        },
        telemetry::extract_http_headers,
    );
}

#[test]
fn kafka_headers_round_trip() {
    assert_round_trip(
        |headers: &mut Vec<(String, Vec<u8>)>| {
            headers.push(("event-type".to_owned(), b"OrderPlaced".to_vec()));
            telemetry::inject_kafka_headers(headers);
            assert!(headers.iter().any(|(k, _)| k == telemetry::TRACEPARENT));
        },
        |headers| telemetry::extract_kafka_headers(headers),
    );
}

#[test]
fn redis_stream_fields_round_trip() {
    assert_round_trip(
        |fields: &mut Vec<(String, String)>| {
            fields.push(("review_id".to_owned(), "r-1".to_owned()));
            telemetry::inject_stream_fields(fields);
            assert!(fields.iter().any(|(k, _)| k == telemetry::TRACEPARENT));
        },
        |fields| telemetry::extract_stream_fields(fields),
    );
}

#[test]
fn grpc_metadata_round_trip() {
    assert_round_trip(
        |metadata: &mut MetadataMap| {
            telemetry::inject_grpc_metadata(metadata);
            assert!(metadata.contains_key(telemetry::TRACEPARENT));
        },
        telemetry::extract_grpc_metadata,
    );
}

#[test]
fn extracting_from_an_empty_carrier_gives_no_parent() {
    with_tracing(|| {
        let cx = telemetry::extract_http_headers(&HeaderMap::new());
        assert!(!cx.span().span_context().is_valid());
    });
}

#[test]
fn current_traceparent_matches_the_current_span() {
    with_tracing(|| {
        assert_eq!(telemetry::current_traceparent(), None, "no current span");

        let span = tracing::info_span!("store event");
        let sc = span.context().span().span_context().clone();
        let traceparent = span
            .in_scope(telemetry::current_traceparent)
            .expect("traceparent inside a span");
        assert_eq!(
            traceparent,
            format!("00-{}-{}-01", sc.trace_id(), sc.span_id())
        );
    });
}

#[test]
fn traceparent_round_trips_through_event_metadata() {
    const STORED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    with_tracing(|| {
        let projector = tracing::info_span!("project event");
        telemetry::set_parent_from_traceparent(&projector, STORED).expect("valid traceparent");
        let current = projector
            .in_scope(telemetry::current_traceparent)
            .expect("traceparent inside a span");
        assert!(
            current.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{current}"
        );
        assert!(
            !current.contains("00f067aa0ba902b7"),
            "a child has its own span id"
        );
    });
}

#[test]
fn parent_errors_are_typed() {
    with_tracing(|| {
        let span = tracing::info_span!("consume");
        let err = telemetry::set_parent_from_traceparent(&span, "00-garbage")
            .expect_err("invalid traceparent");
        assert!(matches!(err, TelemetryError::InvalidTraceparent(_)));

        let started = tracing::info_span!("started");
        let _ = started.context();
        let stored = telemetry::context_from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .expect("valid traceparent");
        let err = telemetry::set_parent(&started, stored).expect_err("span already started");
        assert_eq!(err.code(), "TELEMETRY_SET_PARENT");
    });
}
