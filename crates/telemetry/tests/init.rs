//! `init` installs the global subscriber once; a second call is an error, not a panic.
//!
//! This binary holds a single test because it changes process-wide state (environment
//! variables and the global subscriber).

use telemetry::TelemetryError;

#[test]
fn init_installs_once_and_reports_the_second_call() {
    // SAFETY: this is the only test in this binary and it has started no threads that
    // read the environment; libtest reads its own variables before running tests.
    unsafe {
        std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT");
        std::env::remove_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        std::env::set_var("RUST_LOG", "=not a filter[");
    }
    let err = telemetry::init("telemetry-test").expect_err("invalid RUST_LOG");
    assert_eq!(err.code(), "TELEMETRY_INVALID_FILTER");

    // `warn` keeps the start-up info line out of test output unless TEST_LOG is set.
    let filter = if std::env::var_os("TEST_LOG").is_some() {
        "info"
    } else {
        "warn"
    };
    // SAFETY: as above.
    unsafe { std::env::set_var("RUST_LOG", filter) };
    let guard = telemetry::init("telemetry-test").expect("first init after a failed one");

    let err = telemetry::init("telemetry-test").expect_err("second init");
    assert!(matches!(err, TelemetryError::AlreadyInitialized), "{err}");

    let span = tracing::error_span!("after init");
    let traceparent = span
        .in_scope(telemetry::current_traceparent)
        .expect("the global subscriber carries trace context");
    let mut headers = http::HeaderMap::new();
    span.in_scope(|| telemetry::inject_http_headers(&mut headers));
    assert_eq!(
        headers
            .get(telemetry::TRACEPARENT)
            .and_then(|v| v.to_str().ok()),
        Some(traceparent.as_str()),
        "init installed the W3C propagator globally"
    );
    drop(guard);
}
