//! `OpenAiLlm` against the local OpenAI-compatible test server, over real HTTP and SSE.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use llm::{
    AnswerStream, Fault, Llm, LlmConfig, LlmError, OpenAiLlm, OpenAiTestServer, Prompt, answer_for,
};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use tokio::time::Instant;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

const KEY: &str = "sk-test-0123456789";
const MODEL: &str = "test-model";

fn prompt() -> Prompt {
    Prompt::grounded(
        "리뷰만 근거로 한국어로 답하세요.",
        "덜 단 케이크가 뭐예요?",
        ["생크림이 가볍고 덜 달아서 좋아요", "초코가 진해요"],
    )
}

fn config(server: &OpenAiTestServer, key: &str) -> LlmConfig {
    let mut config = LlmConfig::new(server.base_url(), key, MODEL);
    config.request_timeout = Duration::from_secs(5);
    config.idle_timeout = Duration::from_secs(5);
    config
}

async fn setup() -> (OpenAiTestServer, OpenAiLlm) {
    testkit::init_logs();
    let server = OpenAiTestServer::start(KEY)
        .await
        .expect("start test server");
    let llm = OpenAiLlm::new(&config(&server, KEY)).expect("client");
    (server, llm)
}

async fn collect(mut deltas: AnswerStream) -> Vec<Result<String, LlmError>> {
    let mut items = Vec::new();
    while let Some(item) = deltas.next().await {
        items.push(item);
    }
    items
}

#[tokio::test]
async fn streaming_yields_chunks_in_order_as_they_are_made() {
    let (server, llm) = setup().await;
    server.set_chunk_delay(Duration::from_millis(100));
    let started = Instant::now();
    let mut deltas = llm.stream(&prompt()).await.expect("stream starts");
    let first = deltas.next().await.expect("a first delta").expect("ok");
    let first_at = started.elapsed();
    let mut text = first.clone();
    let mut count = 1;
    while let Some(delta) = deltas.next().await {
        text.push_str(&delta.expect("ok delta"));
        count += 1;
    }
    let total = started.elapsed();

    assert_eq!(
        text,
        "리뷰에 따르면 \"생크림이 가볍고 덜 달아서 좋아요\" [1]"
    );
    assert_eq!(text, answer_for(&prompt().user));
    assert_eq!(first, "리뷰에 ");
    assert_eq!(
        count,
        text.split_inclusive(' ').count(),
        "one delta per streamed chunk"
    );
    assert!(count >= 5, "{count} deltas");
    assert!(
        first_at + Duration::from_millis(300) < total,
        "the first delta ({first_at:?}) arrived long before the last ({total:?})"
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].authorized && requests[0].stream);
    assert_eq!(requests[0].model, MODEL);
    assert_eq!(requests[0].system, prompt().system);
    assert_eq!(requests[0].user, prompt().user);
}

#[tokio::test]
async fn non_streaming_completion_returns_the_whole_answer() {
    let (server, llm) = setup().await;
    let generated = llm.complete(&prompt()).await.expect("complete");
    assert_eq!(generated.text, answer_for(&prompt().user));
    assert_eq!(generated.model, MODEL);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        !requests[0].stream,
        "complete asks for a single JSON answer"
    );
}

/// An answerer that only streams, to exercise the trait's default `complete`.
struct StreamOnly(OpenAiLlm);

#[async_trait]
impl Llm for StreamOnly {
    fn model(&self) -> &str {
        self.0.model()
    }
    async fn stream(&self, prompt: &Prompt) -> Result<AnswerStream, LlmError> {
        self.0.stream(prompt).await
    }
}

#[tokio::test]
async fn default_complete_concatenates_the_stream() {
    let (server, llm) = setup().await;
    let generated = StreamOnly(llm).complete(&prompt()).await.expect("complete");
    assert_eq!(generated.text, answer_for(&prompt().user));
    assert_eq!(generated.model, MODEL);
    assert!(server.requests()[0].stream);
}

#[tokio::test]
async fn wrong_key_is_a_typed_error_that_never_shows_the_key() {
    let (server, _) = setup().await;
    let wrong = "sk-wrong-key-987654321";
    let llm = OpenAiLlm::new(&config(&server, wrong)).expect("client");
    let err = llm.stream(&prompt()).await.err().expect("rejected");
    assert!(matches!(err, LlmError::Unauthorized), "{err:?}");
    assert_eq!(err.code(), "LLM_UNAUTHORIZED");
    let err = llm.complete(&prompt()).await.unwrap_err();
    assert!(matches!(err, LlmError::Unauthorized), "{err:?}");
    for shown in [format!("{err}"), format!("{err:?}"), format!("{llm:?}")] {
        assert!(!shown.contains(wrong) && !shown.contains(KEY), "{shown}");
    }
    assert!(server.requests().iter().all(|r| !r.authorized));
}

#[tokio::test]
async fn server_error_is_a_typed_error() {
    let (server, llm) = setup().await;
    server.set_fault(Fault::ServerError);
    let err = llm.stream(&prompt()).await.err().expect("fails");
    assert!(
        matches!(&err, LlmError::Upstream { status: 500, message } if message.contains("crashed")),
        "{err:?}"
    );
    assert!(err.is_transient());
    // async-openai retries a 5xx three times before the error surfaces.
    assert_eq!(server.requests().len(), 4);
    let err = llm.complete(&prompt()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Upstream { status: 500, .. }),
        "{err:?}"
    );

    server.set_fault(Fault::None);
    assert!(
        llm.complete(&prompt()).await.is_ok(),
        "recovers with the server"
    );
}

#[tokio::test]
async fn slow_answer_times_out() {
    let (server, _) = setup().await;
    server.set_fault(Fault::SlowStart(Duration::from_secs(10)));
    let mut config = config(&server, KEY);
    config.request_timeout = Duration::from_millis(300);
    let llm = OpenAiLlm::new(&config).expect("client");

    let started = Instant::now();
    let err = llm.stream(&prompt()).await.err().expect("times out");
    assert!(
        matches!(err, LlmError::Timeout(t) if t == config.request_timeout),
        "{err:?}"
    );
    let err = llm.complete(&prompt()).await.unwrap_err();
    assert_eq!(err.code(), "LLM_TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up on time"
    );
}

#[tokio::test]
async fn stalled_stream_times_out_after_the_idle_limit() {
    let (server, _) = setup().await;
    server.set_fault(Fault::StallMidStream(Duration::from_secs(10)));
    let mut config = config(&server, KEY);
    config.idle_timeout = Duration::from_millis(300);
    let llm = OpenAiLlm::new(&config).expect("client");

    let started = Instant::now();
    let items = collect(llm.stream(&prompt()).await.expect("starts")).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_deref().ok(), Some("리뷰에 "));
    assert!(matches!(items[1], Err(LlmError::Timeout(_))), "{items:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn malformed_chunk_is_a_typed_error_without_panic() {
    let (server, llm) = setup().await;
    server.set_fault(Fault::MalformedChunk);
    let items = collect(llm.stream(&prompt()).await.expect("starts")).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items[0].is_ok());
    let err = items[1].as_ref().unwrap_err();
    assert!(matches!(err, LlmError::Malformed(_)), "{err:?}");
    assert_eq!(err.code(), "LLM_MALFORMED");
}

#[tokio::test]
async fn stream_cut_before_the_finish_is_truncated() {
    let (server, llm) = setup().await;
    server.set_fault(Fault::CutMidStream);
    let items = collect(llm.stream(&prompt()).await.expect("starts")).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(matches!(items[1], Err(LlmError::Truncated)), "{items:?}");
    let err = StreamOnly(llm).complete(&prompt()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Truncated),
        "a partial answer is not an answer"
    );
}

#[tokio::test]
async fn unreachable_api_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let llm =
        OpenAiLlm::new(&LlmConfig::new(format!("http://{addr}/v1"), KEY, MODEL)).expect("client");
    let err = llm.stream(&prompt()).await.err().expect("no server");
    assert!(matches!(err, LlmError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn bad_configuration_is_rejected() {
    for (base_url, model) in [("ftp://x/v1", MODEL), ("http://127.0.0.1:1/v1", " ")] {
        let err = OpenAiLlm::new(&LlmConfig::new(base_url, KEY, model)).unwrap_err();
        assert_eq!(err.code(), "LLM_CONFIG", "{base_url} {model:?}");
    }
}

#[tokio::test]
async fn requests_carry_the_current_trace_context() {
    let (server, llm) = setup().await;
    telemetry::install_propagator();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("llm-test"));
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let span = tracing::info_span!("ask_reviews");
    let trace_id = span.context().span().span_context().trace_id();
    llm.complete(&prompt())
        .instrument(span)
        .await
        .expect("complete");
    let traceparent = server.requests()[0]
        .traceparent
        .clone()
        .expect("traceparent header");
    assert!(traceparent.contains(&trace_id.to_string()), "{traceparent}");
}
