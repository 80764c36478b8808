//! Opening and dropping 1,000 subscriptions through the gateway leaves no tasks or memory
//! behind: tokio's alive-task count returns to its baseline (within 5 tasks), the subgraph
//! sees every upstream closed, and RSS does not grow from round to round (within 64 MiB).
//!
//! The RSS baseline is taken after the first round: the allocator keeps the pages of the first
//! 1,000 connections' buffers (about 280 MiB here, across gateway, subgraph and clients, all
//! in this process) for reuse, so "back to baseline" means later rounds reuse them instead
//! of growing.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use support::{Ws, start};

/// Connections used, and subscriptions per connection (1,000 in all).
const CONNECTIONS: usize = 10;
const PER_CONNECTION: usize = 100;
/// Tolerated difference from the baseline.
const TASK_MARGIN: usize = 5;
const RSS_MARGIN_BYTES: u64 = 16 * 1024 * 1024;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Resident set size from `/proc/self/statm` (pages × page size), after glibc has handed
/// its arenas' free memory back (otherwise freed memory it keeps counts as resident, and
/// varies by tens of MiB from run to run).
fn rss_bytes() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

async fn open_all(stack: &support::Stack) -> Vec<Ws> {
    let mut sockets = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut ws = Ws::connect(&stack.ws()).await;
        ws.init(None).await;
        for i in 0..PER_CONNECTION {
            ws.subscribe(
                &format!("s{i}"),
                "subscription { ticks(count: 1000000, intervalMs: 200) }",
            )
            .await;
        }
        sockets.push(ws);
    }
    // Every subscription delivered its first event: all 1,000 are live end to end.
    for ws in &mut sockets {
        let mut first = std::collections::HashSet::new();
        while first.len() < PER_CONNECTION {
            let message = ws.recv().await.unwrap();
            assert_eq!(message["type"], "next", "{message}");
            first.insert(message["id"].as_str().unwrap().to_owned());
        }
    }
    sockets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscriptions_leave_nothing_behind() {
    let stack = start(|config| {
        config.max_ws_connections_per_user = CONNECTIONS * 2;
        config.rate_limits.per_ip_burst = std::num::NonZeroU32::new(10_000).unwrap();
    })
    .await;
    let seen = stack.subgraph.seen.clone();
    let settled = || async {
        seen.open_streams.load(Ordering::SeqCst) == 0
            && seen.open_sockets.load(Ordering::SeqCst) == 0
    };

    // Warm up every lazily started part once, then take the baseline.
    let mut warm = Ws::connect(&stack.ws()).await;
    warm.init(None).await;
    warm.subscribe("w", "subscription { ticks(count: 1, intervalMs: 1) }")
        .await;
    assert_eq!(warm.recv().await.unwrap()["type"], "next");
    assert_eq!(warm.recv().await.unwrap()["type"], "complete");
    drop(warm);
    assert!(testkit::eventually(Duration::from_secs(10), settled).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tasks_before, rss_before) = (alive_tasks(), rss_bytes());

    // Round 1: the client completes each subscription, then closes cleanly.
    let mut sockets = open_all(&stack).await;
    assert_eq!(
        seen.open_streams.load(Ordering::SeqCst),
        CONNECTIONS * PER_CONNECTION
    );
    let tasks_open = alive_tasks();
    assert!(
        tasks_open > tasks_before + CONNECTIONS,
        "subscriptions are running ({tasks_open} tasks)"
    );
    for ws in &mut sockets {
        for i in 0..PER_CONNECTION {
            ws.send(json!({ "type": "complete", "id": format!("s{i}") }))
                .await;
        }
    }
    assert!(
        testkit::eventually(Duration::from_secs(30), || async {
            seen.open_streams.load(Ordering::SeqCst) == 0
        })
        .await,
        "every upstream subscription ended after complete"
    );
    drop(sockets);
    assert!(testkit::eventually(Duration::from_secs(30), settled).await);
    let rss_warm = rss_bytes();

    // Rounds 2 and 3: the clients just go away.
    for _ in 0..2 {
        let sockets = open_all(&stack).await;
        assert_eq!(
            seen.open_streams.load(Ordering::SeqCst),
            CONNECTIONS * PER_CONNECTION
        );
        drop(sockets);
        assert!(
            testkit::eventually(Duration::from_secs(30), settled).await,
            "every upstream subscription and socket ended after the clients left"
        );
    }

    let back = testkit::eventually(Duration::from_secs(30), || async {
        alive_tasks() <= tasks_before + TASK_MARGIN
    })
    .await;
    let (tasks_after, rss_after) = (alive_tasks(), rss_bytes());
    eprintln!(
        "tasks: {tasks_before} before, {tasks_open} open, {tasks_after} after; \
         rss: {} MiB before, {} MiB after round 1, {} MiB after round 3",
        rss_before / (1024 * 1024),
        rss_warm / (1024 * 1024),
        rss_after / (1024 * 1024)
    );
    assert!(
        back,
        "alive tasks back to baseline: {tasks_before} → {tasks_after}"
    );
    assert!(
        rss_after <= rss_before + RSS_MARGIN_BYTES && rss_warm <= rss_before + RSS_MARGIN_BYTES,
        "rss back within 16 MiB of the baseline: {rss_before} → {rss_warm} after round 1 → \
         {rss_after} after round 3"
    );
}
