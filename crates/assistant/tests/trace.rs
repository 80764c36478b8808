//! Trace context crosses the chat pipeline: the sender's trace reaches the worker through
//! the inbound stream entry, the model request through its `traceparent` header, and the
//! reply entries through their fields, on both brokers.

mod support;

use std::sync::Arc;
use std::time::Duration;

use assistant::{Answerer, Chat, ChatStreams, ChatWorker, WorkerConfig};
use futures::StreamExt as _;
use llm::{LlmConfig, OpenAiLlm, OpenAiTestServer};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use streams::{MemoryBroker, RedisBroker, StreamBroker};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

const KEY: &str = "sk-trace-test";

async fn trace_crosses_the_pipeline(broker: Arc<dyn StreamBroker>) {
    testkit::init_logs();
    telemetry::install_propagator();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("assistant-test"));
    // A current-thread runtime: the worker task runs on this thread, under this subscriber.
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let server = OpenAiTestServer::start(KEY)
        .await
        .expect("start test server");
    let llm =
        OpenAiLlm::new(&LlmConfig::new(server.base_url(), KEY, "test-model")).expect("client");
    let answerer = Answerer::new(Arc::new(support::cakes()), Arc::new(llm));
    let streams = ChatStreams::new(format!("{}:", testkit::unique_name("assistant")));
    let chat = Chat::new(Arc::clone(&broker), streams.clone());
    let mut config = WorkerConfig::new("w1");
    config.block = Duration::from_millis(200);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(
        ChatWorker::new(Arc::clone(&broker), answerer, streams.clone(), config)
            .run(shutdown.clone()),
    );

    let session = chat.open("user-alice").await.expect("open").to_string();
    let mut events = chat
        .subscribe("user-alice", &session, None)
        .await
        .expect("subscribe");
    let span = tracing::info_span!("send_chat_message");
    let trace_id = span.context().span().span_context().trace_id().to_string();
    chat.send("user-alice", &session, "생크림 케이크 어때요?")
        .instrument(span)
        .await
        .expect("send");
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("an event in time")
            .expect("feed")
            .expect("event");
        if event.kind.is_final() {
            break;
        }
    }

    let traceparent = server.requests()[0]
        .traceparent
        .clone()
        .expect("the model request carries a traceparent");
    assert!(
        traceparent.contains(&trace_id),
        "{traceparent} not in trace {trace_id}"
    );
    let replies = broker
        .range(&replies_of(&streams, &session), None, 100)
        .await
        .expect("replies");
    assert!(!replies.is_empty());
    for reply in &replies {
        let field = reply.field("traceparent").expect("reply traceparent");
        assert!(field.contains(&trace_id), "{field}");
    }
    shutdown.cancel();
    worker.await.expect("worker stops");
}

fn replies_of(streams: &ChatStreams, session: &str) -> String {
    streams.replies(assistant::SessionId::parse(session).expect("session id"))
}

#[tokio::test]
async fn memory_broker_carries_the_senders_trace_to_the_model_and_the_replies() {
    trace_crosses_the_pipeline(Arc::new(MemoryBroker::new())).await;
}

#[tokio::test]
async fn redis_broker_carries_the_senders_trace_to_the_model_and_the_replies() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let broker = RedisBroker::connect(&url).await.expect("connect to redis");
    trace_crosses_the_pipeline(Arc::new(broker)).await;
}
