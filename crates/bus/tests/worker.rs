//! The keyed worker: one key's messages in order, keys in parallel, offsets committed so a
//! restarted worker resumes after what was done. Run on both adapters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{KafkaBus, KafkaConfig, MemoryBus, Message, MessageBus, OutgoingRecord};

fn by_key(msg: &Message) -> &[u8] {
    msg.key.as_deref().unwrap_or_default()
}

async fn keyed_worker_keeps_key_order_and_commits(bus: Arc<dyn MessageBus>) {
    let topic = testkit::unique_name("work");
    let group = testkit::unique_name("g");
    bus.ensure_topics(&[topic.as_str()], 3).await.unwrap();
    let records: Vec<_> = (0..300u32)
        .map(|i| {
            OutgoingRecord::new(
                topic.clone(),
                format!("k{}", i % 10),
                i.to_be_bytes().to_vec(),
            )
        })
        .collect();
    bus.publish(records).await.unwrap();

    let seen: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let run = |seen: Arc<Mutex<HashMap<String, Vec<u32>>>>,
               stop: tokio::sync::oneshot::Receiver<()>| {
        let (bus, topic, group) = (bus.clone(), topic.clone(), group.clone());
        tokio::spawn(async move {
            bus::worker::run_keyed_worker(
                bus.as_ref(),
                &[bus::Subscription::prompt(&group, &[topic.as_str()])],
                4,
                by_key,
                move |msg: Message| {
                    let seen = seen.clone();
                    async move {
                        let n = u32::from_be_bytes(msg.payload[..4].try_into().unwrap());
                        // Uneven work so lanes finish out of order.
                        tokio::time::sleep(Duration::from_millis(u64::from(n % 3))).await;
                        let key = String::from_utf8(msg.key.unwrap()).unwrap();
                        seen.lock().unwrap().entry(key).or_default().push(n);
                        Ok::<_, std::convert::Infallible>(vec![])
                    }
                },
                async {
                    let _ = stop.await;
                },
            )
            .await
        })
    };
    let (stop, rx) = tokio::sync::oneshot::channel();
    let worker = run(seen.clone(), rx);
    let all = testkit::eventually(Duration::from_secs(60), || async {
        seen.lock().unwrap().values().map(Vec::len).sum::<usize>() >= 300
    })
    .await;
    assert!(all, "every message handled");
    for (key, ns) in seen.lock().unwrap().iter() {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, &sorted, "{key} handled in order");
        assert_eq!(ns.len(), 30);
    }
    // Give the last commit a moment, then stop and start again: nothing is redelivered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
    let again: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let (stop, rx) = tokio::sync::oneshot::channel();
    let worker = run(again.clone(), rx);
    bus.publish(vec![OutgoingRecord::new(
        topic.clone(),
        "k0",
        999u32.to_be_bytes().to_vec(),
    )])
    .await
    .unwrap();
    let got_new = testkit::eventually(Duration::from_secs(60), || async {
        again.lock().unwrap().values().map(Vec::len).sum::<usize>() >= 1
    })
    .await;
    assert!(got_new, "the new record arrives");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        *again.lock().unwrap(),
        HashMap::from([("k0".to_owned(), vec![999])])
    );
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_worker_on_memory_bus() {
    keyed_worker_keeps_key_order_and_commits(Arc::new(MemoryBus::new())).await;
}

/// A Kafka bus on the test broker, with the short session timeout tests use.
fn kafka_bus() -> Arc<dyn MessageBus> {
    let config =
        KafkaConfig::new(testkit::kafka_brokers()).with_session_timeout(Duration::from_secs(6));
    Arc::new(KafkaBus::new(config).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_worker_on_kafka() {
    keyed_worker_keeps_key_order_and_commits(kafka_bus()).await;
}

/// A lane whose queue is full while it waits for its own publish must not stop the worker:
/// one hot key, far more messages than a lane queues, every handler publishing a record.
async fn a_full_lane_does_not_stall_publishing(bus: Arc<dyn MessageBus>) {
    const COUNT: u32 = 600;
    let topic = testkit::unique_name("hot");
    let replies = testkit::unique_name("hot-replies");
    let group = testkit::unique_name("g");
    bus.ensure_topics(&[topic.as_str(), replies.as_str()], 1)
        .await
        .unwrap();
    let records: Vec<_> = (0..COUNT)
        .map(|i| OutgoingRecord::new(topic.clone(), "hot", i.to_be_bytes().to_vec()))
        .collect();
    bus.publish(records).await.unwrap();

    let handled = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = {
        let (bus, topic, replies, group, handled) = (
            bus.clone(),
            topic.clone(),
            replies.clone(),
            group.clone(),
            handled.clone(),
        );
        tokio::spawn(async move {
            bus::worker::run_keyed_worker(
                bus.as_ref(),
                &[bus::Subscription::prompt(&group, &[topic.as_str()])],
                1,
                by_key,
                move |msg: Message| {
                    let (replies, handled) = (replies.clone(), handled.clone());
                    async move {
                        handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        Ok::<_, std::convert::Infallible>(vec![OutgoingRecord::new(
                            replies.as_str(),
                            "hot",
                            msg.payload,
                        )])
                    }
                },
                async {
                    let _ = stopped.await;
                },
            )
            .await
        })
    };
    let all = testkit::eventually(Duration::from_secs(60), || async {
        handled.load(std::sync::atomic::Ordering::SeqCst) >= COUNT
    })
    .await;
    assert!(
        all,
        "only {} of {COUNT} messages handled: the worker stalled",
        handled.load(std::sync::atomic::Ordering::SeqCst)
    );
    stop.send(()).unwrap();
    let stopped_in_time = tokio::time::timeout(Duration::from_secs(15), worker).await;
    assert!(stopped_in_time.is_ok(), "the worker stops when asked");

    // Every reply was published, in the key's order.
    let mut replies_seen = bus
        .subscribe(&testkit::unique_name("check"), &[replies.as_str()])
        .await
        .unwrap();
    for expected in 0..COUNT {
        let msg = tokio::time::timeout(Duration::from_secs(30), replies_seen.recv())
            .await
            .expect("every reply published")
            .unwrap();
        let n = u32::from_be_bytes(msg.payload[..4].try_into().unwrap());
        assert_eq!(n, expected, "replies in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_lane_does_not_stall_the_memory_bus_worker() {
    a_full_lane_does_not_stall_publishing(Arc::new(MemoryBus::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_lane_does_not_stall_the_kafka_worker() {
    a_full_lane_does_not_stall_publishing(kafka_bus()).await;
}

/// A handler that panics ends its lane; the worker stops with an error instead of silently
/// no longer handling that lane's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_stops_the_worker_with_an_error() {
    let bus = Arc::new(MemoryBus::new());
    let topic = testkit::unique_name("boom");
    bus.ensure_topics(&[topic.as_str()], 1).await.unwrap();
    bus.publish(vec![OutgoingRecord::new(
        topic.clone(),
        "k",
        b"boom".to_vec(),
    )])
    .await
    .unwrap();
    let topics = [topic.as_str()];
    let subscriptions = [bus::Subscription::prompt("g", &topics)];
    let worker = bus::worker::run_keyed_worker(
        bus.as_ref(),
        &subscriptions,
        2,
        by_key,
        |msg: Message| async move {
            assert_ne!(msg.payload, b"boom", "the handler panics");
            Ok::<_, std::convert::Infallible>(vec![])
        },
        std::future::pending(),
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops");
    let err = ended.unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
}

/// A worker that is dropped mid-message (its task aborted, as when its process is stopped)
/// stops its lanes with it: the handler in progress does not go on to finish by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_worker_stops_its_lanes() {
    let bus = Arc::new(MemoryBus::new());
    let topic = testkit::unique_name("slow");
    bus.ensure_topics(&[topic.as_str()], 1).await.unwrap();
    bus.publish(vec![OutgoingRecord::new(topic.clone(), "k", b"x".to_vec())])
        .await
        .unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (bus, topic) = (bus.clone(), topic.clone());
        let (started, finished) = (started.clone(), finished.clone());
        tokio::spawn(async move {
            let topics = [topic.as_str()];
            bus::worker::run_keyed_worker(
                bus.as_ref(),
                &[bus::Subscription::prompt("g", &topics)],
                2,
                by_key,
                move |_msg: Message| {
                    let (started, finished) = (started.clone(), finished.clone());
                    async move {
                        started.notify_one();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        finished.store(true, std::sync::atomic::Ordering::SeqCst);
                        Ok::<_, std::convert::Infallible>(vec![])
                    }
                },
                std::future::pending(),
            )
            .await
        })
    };
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the handler started");
    worker.abort();
    assert!(worker.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !finished.load(std::sync::atomic::Ordering::SeqCst),
        "the handler went on after its worker was dropped"
    );
}

/// A message whose handling fails is counted under the group that received it, not under the
/// worker's joined name, so a merged worker's failures stay attributable.
#[tokio::test(flavor = "current_thread")]
async fn failures_are_counted_under_the_group_of_their_message() {
    use metrics_exporter_prometheus::PrometheusBuilder;

    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // A current-thread runtime: the worker and its lanes run on this thread, under this recorder.
    let _guard = metrics::set_default_local_recorder(&recorder);

    let bus = Arc::new(MemoryBus::new());
    let (replies, events) = (
        testkit::unique_name("replies"),
        testkit::unique_name("events"),
    );
    bus.ensure_topics(&[replies.as_str(), events.as_str()], 1)
        .await
        .unwrap();
    bus.publish(vec![
        OutgoingRecord::new(replies.clone(), "k1", b"r".to_vec()),
        OutgoingRecord::new(events.clone(), "k2", b"e".to_vec()),
        OutgoingRecord::new(events.clone(), "k3", b"e".to_vec()),
    ])
    .await
    .unwrap();
    // Each message fails once, then succeeds.
    let failed: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let done = Arc::new(tokio::sync::Notify::new());
    let (reply_topics, event_topics) = ([replies.as_str()], [events.as_str()]);
    let subscriptions = [
        bus::Subscription::prompt("saga-replies", &reply_topics),
        bus::Subscription::prompt("saga", &event_topics),
    ];
    let handled = Arc::new(Mutex::new(0u32));
    let worker = bus::worker::run_keyed_worker(
        bus.as_ref(),
        &subscriptions,
        2,
        by_key,
        {
            let (failed, handled, done) = (failed.clone(), handled.clone(), done.clone());
            move |msg: Message| {
                let (failed, handled, done) = (failed.clone(), handled.clone(), done.clone());
                async move {
                    let key = String::from_utf8(msg.key.unwrap()).unwrap();
                    let first = {
                        let mut failed = failed.lock().unwrap();
                        let tries = failed.entry(key).or_default();
                        *tries += 1;
                        *tries == 1
                    };
                    if first {
                        return Err("not yet");
                    }
                    *handled.lock().unwrap() += 1;
                    if *handled.lock().unwrap() == 3 {
                        done.notify_one();
                    }
                    Ok(vec![])
                }
            }
        },
        done.notified(),
    );
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("every message handled")
        .unwrap();
    let text = handle.render();
    assert!(
        text.contains(r#"worker_failures_total{group="saga-replies"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"worker_failures_total{group="saga"} 2"#),
        "{text}"
    );
}
