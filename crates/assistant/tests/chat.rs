//! The chat pipeline on both stream brokers: the in-process `MemoryBroker` and
//! `RedisBroker` on the Redis at `REDIS_URL` (default 127.0.0.1:6379). Every test uses its
//! own stream prefix.

mod support;

mod chat_cases {
    pub mod cases;
}

use chat_cases::cases;
use streams::{MemoryBroker, RedisBroker};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Instantiates every case as a test against the broker `$make` builds.
macro_rules! chat_suite {
    ($adapter:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $adapter {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    testkit::init_logs();
                    let broker: std::sync::Arc<dyn streams::StreamBroker> =
                        std::sync::Arc::new($make.await);
                    cases::$case(broker).await;
                }
            )*
        }
    };
}

macro_rules! both_brokers {
    ($($case:ident),* $(,)?) => {
        chat_suite!(memory, async { MemoryBroker::new() }, [$($case),*]);
        chat_suite!(
            redis,
            async { RedisBroker::connect(&redis_url()).await.expect("connect to redis") },
            [$($case),*]
        );
    };
}

both_brokers!(
    round_trip_streams_chunks_then_done_and_keeps_history,
    users_cannot_read_subscribe_to_or_write_another_users_session,
    worker_killed_mid_message_is_taken_over_and_answered_once,
    duplicate_inbound_entry_of_an_answered_message_is_not_answered_again,
    several_workers_answer_every_message_exactly_once,
    failed_answer_is_reported_to_the_subscriber_and_kept_in_history,
    subscriber_resumes_after_an_event_id,
);
