//! The timed phases, each written against the ports so every adapter runs the same code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bus::MessageBus;
use eventstore::{EventStore, ExpectedVersion, Position};
use futures::StreamExt;
use relay::{Relay, RelayConfig};

use crate::workload::Append;

/// How many operations a phase did and how long they took.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Appends or events, depending on the phase.
    pub count: u64,
    /// Wall-clock time of the phase.
    pub elapsed: Duration,
}

impl Measured {
    /// Operations per second.
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs one task per writer; each appends its streams' events one at a time, tracking versions.
pub async fn single_appends(
    store: Arc<dyn EventStore>,
    plan: Vec<Vec<Append>>,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let writers = plan.into_iter().map(|streams| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut appends = 0u64;
            for (stream, events) in streams {
                let mut version = 0u64;
                for event in events {
                    let done = store
                        .append(&stream, ExpectedVersion::Exact(version), vec![event])
                        .await
                        .with_context(|| format!("single append to {stream}"))?;
                    version = done.next_expected_version;
                    appends += 1;
                }
            }
            anyhow::Ok(appends)
        })
    });
    let count = join_writers(writers).await?;
    Ok(Measured {
        count,
        elapsed: started.elapsed(),
    })
}

/// Runs one task per writer; each appends whole batches to fresh streams.
pub async fn batched_appends(
    store: Arc<dyn EventStore>,
    plan: Vec<Vec<Append>>,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let writers = plan.into_iter().map(|batches| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut events = 0u64;
            for (stream, batch) in batches {
                let n = batch.len() as u64;
                store
                    .append(&stream, ExpectedVersion::NoStream, batch)
                    .await
                    .with_context(|| format!("batched append to {stream}"))?;
                events += n;
            }
            anyhow::Ok(events)
        })
    });
    let count = join_writers(writers).await?;
    Ok(Measured {
        count,
        elapsed: started.elapsed(),
    })
}

async fn join_writers(
    writers: impl Iterator<Item = tokio::task::JoinHandle<anyhow::Result<u64>>>,
) -> anyhow::Result<u64> {
    let mut total = 0;
    for result in futures::future::join_all(writers).await {
        total += result.context("writer task panicked")??;
    }
    Ok(total)
}

/// What a catch-up read found: its timing and the last event's position.
#[derive(Debug, Clone, Copy)]
pub struct CaughtUp {
    /// Events read and the time it took.
    pub measured: Measured,
    /// Position of the last event read.
    pub last: Position,
}

/// Pages through `$all` with `read_all` from the start until `expected` events are read.
///
/// An empty page before that means an older transaction elsewhere in the cluster holds `$all`
/// back; the read waits briefly and tries again (the wait counts, as it would for a reader).
pub async fn catch_up_read_all(
    store: &dyn EventStore,
    page_size: usize,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<CaughtUp> {
    let started = Instant::now();
    let mut after = Position::START;
    let mut count = 0u64;
    while count < expected {
        let page = store.read_all(after, page_size).await.context("read_all")?;
        match page.last() {
            Some(last) => {
                after = last.position;
                count += page.len() as u64;
            }
            None => {
                if started.elapsed() > timeout {
                    bail!("read_all stalled after {count} of {expected} events");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    Ok(CaughtUp {
        measured: Measured {
            count,
            elapsed: started.elapsed(),
        },
        last: after,
    })
}

/// Reads `expected` events of `$all` from the start through `subscribe_all`.
pub async fn catch_up_subscribe(
    store: &dyn EventStore,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut events = store.subscribe_all(Position::START);
    let mut count = 0u64;
    let read = async {
        while count < expected {
            match events.next().await {
                Some(Ok(_)) => count += 1,
                Some(Err(err)) => return Err(err).context("subscribe_all"),
                None => bail!("subscription ended after {count} events"),
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, read)
        .await
        .with_context(|| {
            format!("subscribe_all did not deliver {expected} events in {timeout:?}")
        })??;
    Ok(Measured {
        count,
        elapsed: started.elapsed(),
    })
}

/// Runs the relay from the start of `$all` until its checkpoint reaches `last`.
///
/// The clock includes creating the topics. `expected` is the number of events up to `last`.
pub async fn relay_to(
    store: Arc<dyn EventStore>,
    bus: Arc<dyn MessageBus>,
    config: RelayConfig,
    last: Position,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<Measured> {
    let name = config.name.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let relay = tokio::spawn(Relay::new(Arc::clone(&store), bus, config).run(async {
        let _ = stop_rx.await;
    }));
    let reached = loop {
        let checkpoint = store
            .load_checkpoint(&name)
            .await
            .context("load the relay checkpoint")?;
        if checkpoint.is_some_and(|p| p >= last) {
            break true;
        }
        if relay.is_finished() || started.elapsed() > timeout {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let elapsed = started.elapsed();
    let _ = stop_tx.send(());
    let stopped = relay.await.context("relay task panicked")?;
    stopped.context("relay stopped with an error")?;
    if !reached {
        bail!("the relay did not reach position {last} within {timeout:?}");
    }
    Ok(Measured {
        count: expected,
        elapsed,
    })
}
