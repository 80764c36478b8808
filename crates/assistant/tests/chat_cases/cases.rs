//! The chat cases, each run against both brokers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use assistant::{
    Answerer, Chat, ChatEvent, ChatEventKind, ChatEvents, ChatStreams, ChatWorker, ExtractiveLlm,
    HistoryItem, WorkerConfig,
};
use futures::StreamExt as _;
use llm::{Fault, LlmConfig, OpenAiLlm, OpenAiTestServer};
use streams::StreamBroker;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::cakes;

const KEY: &str = "sk-chat-test";
const ALICE: &str = "user-alice";
const BOB: &str = "user-bob";
const WAIT: Duration = Duration::from_secs(20);

fn streams() -> ChatStreams {
    ChatStreams::new(format!("{}:", testkit::unique_name("assistant")))
}

fn config(consumer: &str) -> WorkerConfig {
    WorkerConfig {
        consumer: consumer.to_owned(),
        batch: 4,
        block: Duration::from_millis(200),
        min_idle: Duration::from_millis(400),
        claim_every: Duration::from_millis(100),
    }
}

fn extractive() -> Answerer {
    Answerer::new(Arc::new(cakes()), Arc::new(ExtractiveLlm::new()))
}

async fn remote() -> (OpenAiTestServer, Answerer) {
    let server = OpenAiTestServer::start(KEY)
        .await
        .expect("start test server");
    let mut config = LlmConfig::new(server.base_url(), KEY, "test-model");
    config.request_timeout = Duration::from_secs(10);
    config.idle_timeout = Duration::from_secs(30);
    let llm = OpenAiLlm::new(&config).expect("client");
    (server, Answerer::new(Arc::new(cakes()), Arc::new(llm)))
}

/// A running worker and the token that stops it.
struct Running {
    handle: JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Running {
    fn start(
        broker: &Arc<dyn StreamBroker>,
        answerer: Answerer,
        streams: &ChatStreams,
        consumer: &str,
    ) -> Self {
        let worker = ChatWorker::new(
            Arc::clone(broker),
            answerer,
            streams.clone(),
            config(consumer),
        );
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        Self { handle, shutdown }
    }

    /// Stops the worker and checks that it stops promptly.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.handle)
            .await
            .expect("the worker stops on shutdown")
            .expect("the worker task ends cleanly");
    }
}

/// Events until `count` messages have a final event, then whatever follows within `linger`.
async fn collect(events: &mut ChatEvents, count: usize, linger: Duration) -> Vec<ChatEvent> {
    let mut seen = Vec::new();
    let mut finals = 0;
    while finals < count {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("the next event in time")
            .expect("the feed goes on")
            .expect("a readable event");
        finals += usize::from(event.kind.is_final());
        seen.push(event);
    }
    while let Ok(Some(event)) = tokio::time::timeout(linger, events.next()).await {
        seen.push(event.expect("a readable event"));
    }
    seen
}

/// The text of each message's last attempt (chunks after its last `Restarted`).
fn texts(events: &[ChatEvent]) -> HashMap<Uuid, String> {
    let mut texts: HashMap<Uuid, String> = HashMap::new();
    for event in events {
        match &event.kind {
            ChatEventKind::Chunk { text } => {
                texts.entry(event.message_id).or_default().push_str(text)
            }
            ChatEventKind::Restarted => {
                texts.insert(event.message_id, String::new());
            }
            _ => {}
        }
    }
    texts
}

fn finals(events: &[ChatEvent], message_id: Uuid) -> usize {
    events
        .iter()
        .filter(|e| e.message_id == message_id && e.kind.is_final())
        .count()
}

pub async fn round_trip_streams_chunks_then_done_and_keeps_history(broker: Arc<dyn StreamBroker>) {
    let streams = streams();
    let chat = Chat::new(Arc::clone(&broker), streams.clone());
    let worker = Running::start(&broker, extractive(), &streams, "w1");
    let session = chat.open(ALICE).await.expect("open").to_string();
    let mut events = chat
        .subscribe(ALICE, &session, None)
        .await
        .expect("subscribe");

    let sent = chat
        .send(ALICE, &session, "생크림이 덜 단 케이크 있어요?")
        .await
        .expect("send");
    let seen = collect(&mut events, 1, Duration::ZERO).await;

    let chunks = seen
        .iter()
        .filter(|e| matches!(e.kind, ChatEventKind::Chunk { .. }))
        .count();
    assert!(chunks >= 5, "token-by-token chunks expected: {seen:?}");
    assert!(seen.iter().all(|e| e.message_id == sent.message_id));
    let Some(ChatEventKind::Done { model, citations }) = seen.last().map(|e| &e.kind) else {
        panic!("the feed ends with Done: {seen:?}");
    };
    assert_eq!(model, assistant::EXTRACTIVE_MODEL);
    let shelf = cakes();
    assert!(!citations.is_empty());
    assert!(citations.iter().all(|c| shelf.get(&c.review.id).is_some()));
    let streamed = texts(&seen).remove(&sent.message_id).unwrap_or_default();
    assert!(
        streamed.contains("생크림이 가볍고 덜 달아서 부담 없어요."),
        "{streamed}"
    );

    let history = chat.history(ALICE, &session).await.expect("history");
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history.iter().all(|h| h.message_id == sent.message_id));
    assert_eq!(
        history[0].item,
        HistoryItem::Message {
            text: "생크림이 덜 단 케이크 있어요?".to_owned()
        }
    );
    let HistoryItem::Answer(answer) = &history[1].item else {
        panic!("the second entry is the answer: {history:?}");
    };
    assert_eq!(answer.text, streamed);
    assert_eq!(&answer.citations, citations);
    worker.stop().await;
}

pub async fn users_cannot_read_subscribe_to_or_write_another_users_session(
    broker: Arc<dyn StreamBroker>,
) {
    let streams = streams();
    let chat = Chat::new(Arc::clone(&broker), streams.clone());
    let session = chat.open(ALICE).await.expect("open").to_string();

    let code = |result: Result<_, assistant::AssistantError>| result.err().map(|e| e.code());
    assert_eq!(
        code(chat.send(BOB, &session, "몰래 보내기").await.map(|_| ())),
        Some("FORBIDDEN")
    );
    assert_eq!(
        code(chat.history(BOB, &session).await.map(|_| ())),
        Some("FORBIDDEN")
    );
    assert_eq!(
        code(chat.subscribe(BOB, &session, None).await.map(|_| ())),
        Some("FORBIDDEN")
    );

    let unknown = Uuid::new_v4().to_string();
    assert_eq!(
        code(chat.send(ALICE, &unknown, "안녕").await.map(|_| ())),
        Some("NOT_FOUND")
    );
    assert_eq!(
        code(chat.history(ALICE, &unknown).await.map(|_| ())),
        Some("NOT_FOUND")
    );
    assert_eq!(
        code(chat.subscribe(ALICE, &unknown, None).await.map(|_| ())),
        Some("NOT_FOUND")
    );

    for (user, session, text) in [
        (ALICE, "not-a-uuid", "안녕"),
        (ALICE, session.as_str(), "   "),
        (ALICE, session.as_str(), &"가".repeat(501)),
        ("", session.as_str(), "안녕"),
    ] {
        assert_eq!(
            code(chat.send(user, session, text).await.map(|_| ())),
            Some("BAD_USER_INPUT")
        );
    }
    assert_eq!(
        code(
            chat.subscribe(ALICE, &session, Some("yesterday"))
                .await
                .map(|_| ())
        ),
        Some("BAD_USER_INPUT")
    );
    // A second chat front (another replica) reads ownership from the broker alone.
    let other_front = Chat::new(Arc::clone(&broker), streams);
    assert_eq!(
        code(other_front.history(BOB, &session).await.map(|_| ())),
        Some("FORBIDDEN")
    );
    assert!(
        chat.history(ALICE, &session)
            .await
            .expect("history")
            .is_empty()
    );
}

pub async fn worker_killed_mid_message_is_taken_over_and_answered_once(
    broker: Arc<dyn StreamBroker>,
) {
    let streams = streams();
    let (server, answerer) = remote().await;
    // The first worker gets one chunk out, then the model stalls: the worker is killed
    // after it read the message and before it acked it.
    server.set_fault(Fault::StallMidStream(Duration::from_secs(60)));
    let chat = Chat::new(Arc::clone(&broker), streams.clone());
    let session = chat.open(ALICE).await.expect("open").to_string();
    let mut events = chat
        .subscribe(ALICE, &session, None)
        .await
        .expect("subscribe");
    let first = Running::start(&broker, answerer.clone(), &streams, "w1");

    let sent = chat
        .send(ALICE, &session, "생크림이 덜 단 케이크 있어요?")
        .await
        .expect("send");
    let partial = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("a first chunk")
        .expect("feed")
        .expect("event");
    assert!(
        matches!(partial.kind, ChatEventKind::Chunk { .. }),
        "{partial:?}"
    );
    first.handle.abort();
    assert!(first.handle.await.is_err_and(|e| e.is_cancelled()));

    server.set_fault(Fault::None);
    let second = Running::start(&broker, answerer, &streams, "w2");
    let mut seen = vec![partial];
    seen.extend(collect(&mut events, 1, Duration::from_millis(800)).await);

    assert_eq!(
        finals(&seen, sent.message_id),
        1,
        "exactly one Done: {seen:?}"
    );
    let restarted = seen
        .iter()
        .position(|e| e.kind == ChatEventKind::Restarted)
        .expect("the takeover announces a restart");
    assert!(restarted >= 1, "{seen:?}");
    let text = texts(&seen).remove(&sent.message_id).unwrap_or_default();
    assert!(
        text.starts_with("리뷰에 따르면 \"") && text.ends_with("[1]"),
        "{text}"
    );
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        2,
        "answered once more, by the second worker"
    );
    assert_eq!(text, llm::answer_for(&requests[1].user));

    let history = chat.history(ALICE, &session).await.expect("history");
    let answers: Vec<_> = history
        .iter()
        .filter_map(|h| match &h.item {
            HistoryItem::Answer(answer) => Some(answer),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "{history:?}");
    assert_eq!(answers[0].text, text);
    second.stop().await;
}

pub async fn duplicate_inbound_entry_of_an_answered_message_is_not_answered_again(
    broker: Arc<dyn StreamBroker>,
) {
    let streams = streams();
    let chat = Chat::new(Arc::clone(&broker), streams.clone());
    let worker = Running::start(&broker, extractive(), &streams, "w1");
    let session = chat.open(ALICE).await.expect("open").to_string();
    let mut events = chat
        .subscribe(ALICE, &session, None)
        .await
        .expect("subscribe");
    let first = chat
        .send(ALICE, &session, "배송 빨랐어요?")
        .await
        .expect("send");
    collect(&mut events, 1, Duration::ZERO).await;

    // At-least-once delivery: the same message appears on the inbound stream again.
    let inbound = broker
        .range(&streams.inbound(), None, 10)
        .await
        .expect("inbound");
    assert_eq!(inbound.len(), 1);
    let payload: Vec<(String, String)> = inbound[0]
        .payload()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    broker
        .append(&streams.inbound(), &payload, None)
        .await
        .expect("re-append");
    // A later message is answered after the duplicate (one worker, in order).
    let second = chat
        .send(ALICE, &session, "포장 어때요?")
        .await
        .expect("send");
    let seen = collect(&mut events, 1, Duration::from_millis(300)).await;

    assert!(
        seen.iter().all(|e| e.message_id == second.message_id),
        "{seen:?}"
    );
    assert_eq!(finals(&seen, second.message_id), 1);
    let history = chat.history(ALICE, &session).await.expect("history");
    let answers_to_first = history
        .iter()
        .filter(|h| h.message_id == first.message_id && matches!(h.item, HistoryItem::Answer(_)))
        .count();
    assert_eq!(answers_to_first, 1, "{history:?}");
    worker.stop().await;
}

pub async fn several_workers_answer_every_message_exactly_once(broker: Arc<dyn StreamBroker>) {
    let streams = streams();
    let chat = Chat::new(Arc::clone(&broker), streams.clone());
    let shutdown = CancellationToken::new();
    let pool = ChatWorker::new(
        Arc::clone(&broker),
        extractive(),
        streams.clone(),
        config("pool"),
    );
    let workers = tokio::spawn(pool.run_many(3, shutdown.clone()));

    let mut feeds = Vec::new();
    for user in [ALICE, BOB] {
        let session = chat.open(user).await.expect("open").to_string();
        let events = chat
            .subscribe(user, &session, None)
            .await
            .expect("subscribe");
        feeds.push((user, session, events));
    }
    let questions = [
        "딸기 신선해요?",
        "초코 너무 달아요?",
        "치즈 가격 비싸요?",
        "배송 빨랐어요?",
    ];
    let mut sent = Vec::new();
    for (user, session, _) in &feeds {
        for question in questions {
            sent.push(
                chat.send(user, session, question)
                    .await
                    .expect("send")
                    .message_id,
            );
        }
    }
    let mut seen = Vec::new();
    for (_, _, events) in &mut feeds {
        seen.extend(collect(events, questions.len(), Duration::from_millis(300)).await);
    }
    for message_id in &sent {
        assert_eq!(finals(&seen, *message_id), 1, "{message_id}: {seen:?}");
        assert!(
            seen.iter().any(
                |e| e.message_id == *message_id && matches!(e.kind, ChatEventKind::Done { .. })
            ),
            "{message_id} answered"
        );
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), workers)
        .await
        .expect("the pool stops on shutdown")
        .expect("pool task");
}

pub async fn failed_answer_is_reported_to_the_subscriber_and_kept_in_history(
    broker: Arc<dyn StreamBroker>,
) {
    let streams = streams();
    let (server, answerer) = remote().await;
    server.set_fault(Fault::ServerError);
    let chat = Chat::new(Arc::clone(&broker), streams.clone());
    let worker = Running::start(&broker, answerer, &streams, "w1");
    let session = chat.open(ALICE).await.expect("open").to_string();
    let mut events = chat
        .subscribe(ALICE, &session, None)
        .await
        .expect("subscribe");
    let sent = chat
        .send(ALICE, &session, "생크림 케이크 어때요?")
        .await
        .expect("send");
    let seen = collect(&mut events, 1, Duration::ZERO).await;

    let failed = ChatEventKind::Failed {
        code: "LLM_UPSTREAM".to_owned(),
    };
    assert_eq!(seen.last().map(|e| &e.kind), Some(&failed), "{seen:?}");
    let history = chat.history(ALICE, &session).await.expect("history");
    assert_eq!(
        history.last().map(|h| (h.message_id, &h.item)),
        Some((
            sent.message_id,
            &HistoryItem::Failed {
                code: "LLM_UPSTREAM".to_owned()
            }
        ))
    );
    worker.stop().await;
}

pub async fn subscriber_resumes_after_an_event_id(broker: Arc<dyn StreamBroker>) {
    let streams = streams();
    let chat = Chat::new(Arc::clone(&broker), streams.clone());
    let worker = Running::start(&broker, extractive(), &streams, "w1");
    let session = chat.open(ALICE).await.expect("open").to_string();
    let mut events = chat
        .subscribe(ALICE, &session, None)
        .await
        .expect("subscribe");
    chat.send(ALICE, &session, "딸기 신선해요?")
        .await
        .expect("send");
    let all = collect(&mut events, 1, Duration::ZERO).await;
    drop(events);

    let cut = all.len() / 2;
    let mut resumed = chat
        .subscribe(ALICE, &session, Some(&all[cut - 1].id))
        .await
        .expect("resume");
    let rest = collect(&mut resumed, 1, Duration::ZERO).await;
    assert_eq!(rest, all[cut..].to_vec());
    worker.stop().await;
}
