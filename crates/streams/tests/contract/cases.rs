//! The contract cases, generic over the adapter.

use std::time::Duration;

use futures::StreamExt as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use streams::{StreamBroker, StreamEntry, StreamError};
use tokio::time::{Instant, timeout};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

const NO_WAIT: Duration = Duration::ZERO;

fn stream_name() -> String {
    testkit::unique_name("streams_test")
}

fn msg(text: &str) -> Vec<(String, String)> {
    vec![("text".to_owned(), text.to_owned())]
}

fn texts(entries: &[StreamEntry]) -> Vec<&str> {
    entries
        .iter()
        .map(|entry| entry.field("text").expect("text field"))
        .collect()
}

async fn append_all<B: StreamBroker>(broker: &B, stream: &str, texts: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for text in texts {
        ids.push(
            broker
                .append(stream, &msg(text), None)
                .await
                .expect("append"),
        );
    }
    ids
}

pub async fn append_returns_increasing_ids_and_range_pages_history<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    assert!(broker.range(&stream, None, 10).await.unwrap().is_empty());
    let fields = vec![
        ("session".to_owned(), "s1".to_owned()),
        ("text".to_owned(), "덜 단 케이크 추천해줘".to_owned()),
        ("role".to_owned(), "user".to_owned()),
    ];
    let first = broker.append(&stream, &fields, None).await.unwrap();
    let ids = append_all(broker, &stream, &["b", "c", "d"]).await;
    let mut all_ids = vec![first.clone()];
    all_ids.extend(ids.iter().cloned());
    let mut sorted = all_ids.clone();
    sorted.sort_by_key(|id| {
        let (ms, seq) = id.split_once('-').expect("ms-seq id");
        (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
    });
    assert_eq!(sorted, all_ids, "ids increase");

    let all = broker.range(&stream, None, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].id, first);
    assert_eq!(all[0].fields, fields, "fields keep their order and text");

    let page = broker.range(&stream, Some(&first), 2).await.unwrap();
    assert_eq!(texts(&page), vec!["b", "c"]);
    let rest = broker.range(&stream, Some(&page[1].id), 10).await.unwrap();
    assert_eq!(texts(&rest), vec!["d"]);
    let none = broker.range(&stream, Some(&ids[2]), 10).await.unwrap();
    assert!(none.is_empty());
}

pub async fn group_starts_at_the_end_and_ensure_group_is_idempotent<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    append_all(broker, &stream, &["before"]).await;
    broker.ensure_group(&stream, "workers").await.unwrap();
    broker.ensure_group(&stream, "workers").await.unwrap();
    let nothing = broker
        .read_group(&stream, "workers", "w1", 10, NO_WAIT)
        .await
        .unwrap();
    assert!(
        nothing.is_empty(),
        "entries before the group are not delivered"
    );
    append_all(broker, &stream, &["after"]).await;
    broker.ensure_group(&stream, "workers").await.unwrap();
    let got = broker
        .read_group(&stream, "workers", "w1", 10, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(
        texts(&got),
        vec!["after"],
        "re-ensuring keeps the group's position"
    );

    // A group can be created before its stream exists.
    let fresh = stream_name();
    broker.ensure_group(&fresh, "workers").await.unwrap();
    append_all(broker, &fresh, &["first"]).await;
    let got = broker
        .read_group(&fresh, "workers", "w1", 10, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(texts(&got), vec!["first"]);
}

pub async fn consumers_of_one_group_share_entries_without_duplicates<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    broker.ensure_group(&stream, "workers").await.unwrap();
    append_all(broker, &stream, &["1", "2", "3", "4", "5"]).await;
    let a = broker
        .read_group(&stream, "workers", "a", 2, NO_WAIT)
        .await
        .unwrap();
    let b = broker
        .read_group(&stream, "workers", "b", 10, NO_WAIT)
        .await
        .unwrap();
    let again = broker
        .read_group(&stream, "workers", "a", 10, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(texts(&a), vec!["1", "2"], "count limits a read");
    assert_eq!(texts(&b), vec!["3", "4", "5"]);
    assert!(again.is_empty(), "each entry goes to one consumer once");
}

pub async fn groups_are_independent<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    broker.ensure_group(&stream, "answerers").await.unwrap();
    broker.ensure_group(&stream, "auditors").await.unwrap();
    append_all(broker, &stream, &["x", "y"]).await;
    let answered = broker
        .read_group(&stream, "answerers", "w", 10, NO_WAIT)
        .await
        .unwrap();
    let ids: Vec<String> = answered.iter().map(|e| e.id.clone()).collect();
    broker.ack(&stream, "answerers", &ids).await.unwrap();
    let audited = broker
        .read_group(&stream, "auditors", "w", 10, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(texts(&answered), vec!["x", "y"]);
    assert_eq!(audited, answered, "another group still gets every entry");

    // The auditors never acked: their entries stay claimable, the answerers' do not.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stale = Duration::from_millis(10);
    let answerers = broker
        .claim_stale(&stream, "answerers", "other", stale, 10)
        .await
        .unwrap();
    let auditors = broker
        .claim_stale(&stream, "auditors", "other", stale, 10)
        .await
        .unwrap();
    assert!(answerers.is_empty());
    assert_eq!(texts(&auditors), vec!["x", "y"]);
}

pub async fn read_group_waits_for_an_append_and_times_out_empty<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    broker.ensure_group(&stream, "workers").await.unwrap();

    let started = Instant::now();
    let empty = broker
        .read_group(&stream, "workers", "w", 10, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(empty.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(180), "it waited");

    let started = Instant::now();
    let (got, _) = tokio::join!(
        broker.read_group(&stream, "workers", "w", 10, Duration::from_secs(10)),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            broker.append(&stream, &msg("wake"), None).await.unwrap();
        }
    );
    assert_eq!(texts(&got.unwrap()), vec!["wake"]);

    // A block too long to represent waits like any other and still wakes on an append.
    let (got, _) = tokio::join!(
        broker.read_group(&stream, "workers", "w", 10, Duration::MAX),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            broker.append(&stream, &msg("late"), None).await.unwrap();
        }
    );
    assert_eq!(texts(&got.unwrap()), vec!["late"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the append woke the reader long before its block ran out"
    );
}

pub async fn unacked_entry_is_claimed_by_another_consumer_after_min_idle<B: StreamBroker>(
    broker: &B,
) {
    let stream = stream_name();
    broker.ensure_group(&stream, "workers").await.unwrap();
    append_all(broker, &stream, &["question"]).await;
    // Worker "crashed" reads the message and dies before acking.
    let taken = broker
        .read_group(&stream, "workers", "crashed", 10, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(texts(&taken), vec!["question"]);

    let min_idle = Duration::from_millis(300);
    let early = broker
        .claim_stale(&stream, "workers", "rescuer", min_idle, 10)
        .await
        .unwrap();
    assert!(early.is_empty(), "not stale yet");
    let never = broker
        .claim_stale(&stream, "workers", "rescuer", Duration::MAX, 10)
        .await
        .unwrap();
    assert!(never.is_empty(), "nothing is idle forever");
    let fresh = broker
        .read_group(&stream, "workers", "rescuer", 10, NO_WAIT)
        .await
        .unwrap();
    assert!(fresh.is_empty(), "a pending entry is not delivered as new");

    tokio::time::sleep(min_idle + Duration::from_millis(100)).await;
    let claimed = broker
        .claim_stale(&stream, "workers", "rescuer", min_idle, 10)
        .await
        .unwrap();
    assert_eq!(
        claimed, taken,
        "the rescuer gets the crashed worker's entry"
    );
    let twice = broker
        .claim_stale(&stream, "workers", "third", min_idle, 10)
        .await
        .unwrap();
    assert!(twice.is_empty(), "claiming resets the idle time");

    broker
        .ack(&stream, "workers", std::slice::from_ref(&claimed[0].id))
        .await
        .unwrap();
    tokio::time::sleep(min_idle + Duration::from_millis(100)).await;
    let after_ack = broker
        .claim_stale(&stream, "workers", "third", min_idle, 10)
        .await
        .unwrap();
    assert!(
        after_ack.is_empty(),
        "an acked entry is never claimed again"
    );
}

pub async fn ack_removes_the_entry_from_pending<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    broker.ensure_group(&stream, "workers").await.unwrap();
    append_all(broker, &stream, &["done", "dropped", "also done"]).await;
    let got = broker
        .read_group(&stream, "workers", "w", 10, NO_WAIT)
        .await
        .unwrap();
    broker
        .ack(&stream, "workers", &[got[0].id.clone(), got[2].id.clone()])
        .await
        .unwrap();
    broker.ack(&stream, "workers", &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let claimed = broker
        .claim_stale(&stream, "workers", "other", Duration::from_millis(50), 10)
        .await
        .unwrap();
    assert_eq!(texts(&claimed), vec!["dropped"]);
}

pub async fn claim_drops_pending_entries_that_were_trimmed<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    broker.ensure_group(&stream, "workers").await.unwrap();
    broker.append(&stream, &msg("old"), Some(10)).await.unwrap();
    let taken = broker
        .read_group(&stream, "workers", "crashed", 1, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(texts(&taken), vec!["old"]);
    for i in 0..300 {
        broker
            .append(&stream, &msg(&i.to_string()), Some(10))
            .await
            .unwrap();
    }
    let history = broker.range(&stream, None, 1000).await.unwrap();
    assert!(history.iter().all(|e| e.id != taken[0].id), "trimmed away");
    tokio::time::sleep(Duration::from_millis(60)).await;
    let claimed = broker
        .claim_stale(&stream, "workers", "rescuer", Duration::from_millis(50), 10)
        .await
        .unwrap();
    assert!(claimed.is_empty(), "a trimmed entry cannot be handed over");
}

pub async fn missing_group_is_a_typed_error<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    let read = broker
        .read_group(&stream, "nobody", "w", 1, NO_WAIT)
        .await
        .unwrap_err();
    assert!(matches!(read, StreamError::NoGroup { .. }), "{read:?}");
    assert_eq!(read.code(), "STREAM_NO_GROUP");
    append_all(broker, &stream, &["x"]).await;
    let blocking = broker
        .read_group(&stream, "nobody", "w", 1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(blocking, StreamError::NoGroup { .. }),
        "{blocking:?}"
    );
    let claim = broker
        .claim_stale(&stream, "nobody", "w", NO_WAIT, 1)
        .await
        .unwrap_err();
    assert!(matches!(claim, StreamError::NoGroup { .. }), "{claim:?}");
}

pub async fn bad_arguments_are_typed_errors<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    broker.ensure_group(&stream, "workers").await.unwrap();
    for bad in ["", "abc", "1-", "12", "1-2-3", "$", "(1-0"] {
        let err = broker.range(&stream, Some(bad), 1).await.unwrap_err();
        assert!(matches!(err, StreamError::InvalidId(_)), "{bad:?}: {err:?}");
        let err = broker
            .ack(&stream, "workers", &[bad.to_owned()])
            .await
            .unwrap_err();
        assert!(matches!(err, StreamError::InvalidId(_)), "{bad:?}: {err:?}");
        let err = broker.tail(&stream, Some(bad.to_owned())).await.err();
        assert!(matches!(err, Some(StreamError::InvalidId(_))), "{bad:?}");
    }
    let err = broker.append(&stream, &[], None).await.unwrap_err();
    assert_eq!(err.code(), "STREAM_INVALID_ARGUMENT");
    let err = broker.range(&stream, None, 0).await.unwrap_err();
    assert_eq!(err.code(), "STREAM_INVALID_ARGUMENT");
    let err = broker
        .read_group(&stream, "workers", "w", 0, NO_WAIT)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "STREAM_INVALID_ARGUMENT");
    let err = broker
        .claim_stale(&stream, "workers", "w", NO_WAIT, 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "STREAM_INVALID_ARGUMENT");
}

pub async fn trimming_keeps_at_least_max_len_newest_entries<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    let mut last = String::new();
    for i in 0..500 {
        last = broker
            .append(&stream, &msg(&i.to_string()), Some(10))
            .await
            .unwrap();
    }
    let kept = broker.range(&stream, None, 1000).await.unwrap();
    // `MAXLEN ~` trims whole blocks: never below max_len, far below what was appended.
    assert!(kept.len() >= 10, "kept {}", kept.len());
    assert!(kept.len() < 250, "kept {}", kept.len());
    assert_eq!(kept.last().map(|e| e.id.as_str()), Some(last.as_str()));
    assert_ne!(kept[0].field("text"), Some("0"), "the oldest is gone");
    let newest: Vec<String> = (490..500).map(|i| i.to_string()).collect();
    assert_eq!(texts(&kept[kept.len() - 10..]), newest);
}

pub async fn tail_sees_appends_after_it_started_in_order<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    append_all(broker, &stream, &["history"]).await;
    let mut tail = broker.tail(&stream, None).await.unwrap();
    let appends = async {
        for text in ["안", "녕", "하세요"] {
            tokio::time::sleep(Duration::from_millis(30)).await;
            broker.append(&stream, &msg(text), None).await.unwrap();
        }
    };
    let read = async {
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let entry = timeout(Duration::from_secs(10), tail.next())
                .await
                .expect("tail delivers within 10 s")
                .expect("tail still open")
                .expect("tail entry");
            seen.push(entry.field("text").unwrap_or_default().to_owned());
        }
        seen
    };
    let ((), seen) = tokio::join!(appends, read);
    assert_eq!(
        seen,
        vec!["안", "녕", "하세요"],
        "only new entries, in order"
    );
}

pub async fn tail_from_an_id_replays_what_follows_it<B: StreamBroker>(broker: &B) {
    let stream = stream_name();
    let ids = append_all(broker, &stream, &["a", "b", "c"]).await;
    let mut tail = broker.tail(&stream, Some(ids[0].clone())).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let entry = timeout(Duration::from_secs(10), tail.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("entry");
        seen.push(entry);
    }
    assert_eq!(texts(&seen), vec!["b", "c"]);
    assert_eq!(seen[1].id, ids[2]);
}

pub async fn tail_ends_when_dropped_without_leaking_tasks<B: StreamBroker>(broker: &B) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let stream = stream_name();
    broker.range(&stream, None, 1).await.unwrap();
    let baseline = metrics.num_alive_tasks();

    let mut tails = Vec::new();
    for _ in 0..3 {
        tails.push(broker.tail(&stream, None).await.unwrap());
    }
    broker.append(&stream, &msg("one"), None).await.unwrap();
    for tail in &mut tails {
        let entry = timeout(Duration::from_secs(10), tail.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("entry");
        assert_eq!(entry.field("text"), Some("one"));
    }
    // Leave one tail parked in a blocking read when it is dropped.
    let mut parked = broker.tail(&stream, None).await.unwrap();
    assert!(
        timeout(Duration::from_millis(100), parked.next())
            .await
            .is_err(),
        "nothing new yet"
    );
    drop(parked);
    drop(tails);

    let settled = testkit::eventually(Duration::from_secs(10), || async {
        metrics.num_alive_tasks() <= baseline
    })
    .await;
    assert!(
        settled,
        "tasks alive {} > {baseline} after dropping every tail",
        metrics.num_alive_tasks()
    );
}

pub async fn append_carries_the_current_trace_context<B: StreamBroker>(broker: &B) {
    telemetry::install_propagator();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("streams-test"));
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let stream = stream_name();
    let span = tracing::info_span!("send_chat_message");
    let trace_id = span.context().span().span_context().trace_id();
    broker
        .append(&stream, &msg("traced"), None)
        .instrument(span)
        .await
        .unwrap();
    let untraced = broker.append(&stream, &msg("plain"), None).await.unwrap();

    let entries = broker.range(&stream, None, 10).await.unwrap();
    let traceparent = entries[0].field("traceparent").expect("traceparent field");
    assert!(traceparent.contains(&trace_id.to_string()), "{traceparent}");
    assert_eq!(
        entries[0].payload().collect::<Vec<_>>(),
        vec![("text", "traced")]
    );
    let received = entries[0].trace_context();
    assert_eq!(received.span().span_context().trace_id(), trace_id);
    assert_eq!(entries[1].id, untraced);
    assert_eq!(entries[1].field("traceparent"), None, "no span, no context");
}
