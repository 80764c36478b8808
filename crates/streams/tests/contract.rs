//! One contract suite for the stream-broker port, run against both adapters: the
//! in-process `MemoryBroker` and `RedisBroker` on the Redis at `REDIS_URL` (default
//! 127.0.0.1:6379). Every test uses its own stream names.

mod contract {
    pub mod cases;
}

use contract::cases;
use streams::{MemoryBroker, RedisBroker};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Instantiates every contract case as a test against the broker `$make` builds.
macro_rules! contract_suite {
    ($adapter:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $adapter {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    testkit::init_logs();
                    let broker = $make.await;
                    cases::$case(&broker).await;
                }
            )*
        }
    };
}

macro_rules! both_adapters {
    ($($case:ident),* $(,)?) => {
        contract_suite!(memory, async { MemoryBroker::new() }, [$($case),*]);
        contract_suite!(
            redis,
            async { RedisBroker::connect(&redis_url()).await.expect("connect to redis") },
            [$($case),*]
        );
    };
}

both_adapters!(
    append_returns_increasing_ids_and_range_pages_history,
    group_starts_at_the_end_and_ensure_group_is_idempotent,
    consumers_of_one_group_share_entries_without_duplicates,
    groups_are_independent,
    read_group_waits_for_an_append_and_times_out_empty,
    unacked_entry_is_claimed_by_another_consumer_after_min_idle,
    ack_removes_the_entry_from_pending,
    claim_drops_pending_entries_that_were_trimmed,
    missing_group_is_a_typed_error,
    bad_arguments_are_typed_errors,
    trimming_keeps_at_least_max_len_newest_entries,
    tail_sees_appends_after_it_started_in_order,
    tail_from_an_id_replays_what_follows_it,
    tail_ends_when_dropped_without_leaking_tasks,
    append_carries_the_current_trace_context,
);
