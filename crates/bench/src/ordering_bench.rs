//! The `ordering` benchmark: concurrent customers take orders from `placeOrder` to PAID through
//! the real stack (Postgres event store and read models, Kafka, the Toss test server over HTTP),
//! measuring PAID orders per second and the latency of each order and of each of its stages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::hops;
use crate::order_watch::OrderWatch;
use crate::ordering_client::{self, ClientStats, Shared};
use crate::ordering_report::Outcome;
use crate::ordering_stack::Stack;
use crate::profile::{self, CpuSnapshot, DbCounters, Groups};
use crate::scratch_db::ScratchDb;
use crate::spectator::Spectator;

/// How the run is shaped.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Concurrent clients, each placing and paying one order at a time.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Warm-up before the measured window, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// Products on sale; each order takes one or two of one of them.
    #[arg(long, default_value_t = 20)]
    pub products: usize,
    /// Initial stock of each product (the inventory accepts at most 10,000; 20 products of
    /// 10,000 last for about 130,000 orders).
    #[arg(long, default_value_t = 10_000)]
    pub stock: i64,
    /// Partitions of the topics (`KAFKA_PARTITIONS`). One by default: the benchmark runs one
    /// consumer per group, which spreads work over lanes by key within a partition, so more
    /// partitions add only broker requests (on tansu each partition is fetched, listed and
    /// produced to on its own). A deployment with several replicas per group wants more.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// The longest the broker may hold a saga or command consumer's fetch, in ms
    /// (`KAFKA_FETCH_WAIT_MS`, by default the platform's).
    #[arg(long, default_value_t = bus::DEFAULT_PROMPT_FETCH_WAIT.as_millis() as u64)]
    pub fetch_wait_ms: u64,
    /// Longest one order may take to reach PAID before it counts as failed, in seconds.
    #[arg(long, default_value_t = 60)]
    pub order_timeout_s: u64,
    /// Longest a client waits for a change signal before reading its order anyway, in ms.
    #[arg(long, default_value_t = 200)]
    pub fallback_poll_ms: u64,
    /// Interval of the `pg_stat_activity` samples during the measured window, in ms (0: off).
    #[arg(long, default_value_t = 100)]
    pub pg_sample_ms: u64,
    /// Before the clients start, measure the CPU the idle platform uses for this many seconds
    /// (0: skip).
    #[arg(long, default_value_t = 0.0)]
    pub idle_baseline_s: f64,
    /// Diagnostic: a librdkafka property `KEY=VALUE` for every Kafka client of the platform
    /// (repeatable), e.g. `fetch.wait.max.ms=100` or `linger.ms=0`; the platform's own settings
    /// take none, so figures with this flag are not the platform's.
    #[arg(long = "kafka-property", value_parser = key_value)]
    pub kafka_properties: Vec<(String, String)>,
    /// Diagnostic: run a spare consumer group on the event topics that times the relay's share
    /// of the saga's hops (it costs the broker another consumer of every event, so figures
    /// with it are not the platform's alone).
    #[arg(long)]
    pub spectator: bool,
    /// Diagnostic: the platform's embedded in-process bus instead of Kafka (Postgres and the
    /// Toss test server as usual), to see what the application does when the broker answers
    /// at once; the figures are not the platform's on Kafka, and the BENCH line says so.
    #[arg(long)]
    pub in_process_bus: bool,
    /// Keep the Postgres database afterwards (its name is logged), e.g. to inspect it.
    #[arg(long)]
    pub keep_database: bool,
}

/// Runs the benchmark on a scratch database of the server at `database_url` and returns the
/// `BENCH {json}` line, after printing the human-readable lines.
pub async fn run(
    database_url: &str,
    kafka_brokers: &str,
    options: &Options,
) -> anyhow::Result<String> {
    anyhow::ensure!(options.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(options.products > 0, "--products must be at least 1");
    anyhow::ensure!(
        options.seconds > 0.0 && options.warmup >= 0.0,
        "--seconds must be positive and --warmup not negative"
    );
    anyhow::ensure!(
        !options.in_process_bus || (!options.spectator && options.kafka_properties.is_empty()),
        "--spectator and --kafka-property are about Kafka; they cannot run with --in-process-bus"
    );
    let db = ScratchDb::create(database_url).await?;
    let result = run_on(&db, kafka_brokers, options).await;
    if options.keep_database {
        tracing::info!(database = %db.name(), "benchmark database kept");
    } else if let Err(err) = db.drop_database().await {
        tracing::warn!(error = %err, "could not drop the benchmark database");
    }
    result
}

async fn run_on(db: &ScratchDb, kafka_brokers: &str, options: &Options) -> anyhow::Result<String> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("bench_{}.", &suffix[..12]);
    tracing::info!(database = %db.name(), topic_prefix = %prefix, "starting the platform");
    let stack = Stack::start(
        &db.url(),
        kafka_brokers,
        &prefix,
        options.partitions,
        options.fetch_wait_ms,
        &options.kafka_properties,
        options.in_process_bus,
    )
    .await?;
    let result = measure(&stack, db, kafka_brokers, &prefix, options).await;
    stack.stop().await;
    result
}

async fn measure(
    stack: &Stack,
    db: &ScratchDb,
    kafka_brokers: &str,
    prefix: &str,
    options: &Options,
) -> anyhow::Result<String> {
    let mut spectator = if options.spectator {
        Some(Spectator::start(stack.bus(), prefix).await?)
    } else {
        None
    };
    let products = stack
        .create_products(options.products, options.stock)
        .await
        .context("creating the products")?;
    tracing::info!(products = products.len(), "products in the catalog");
    if let Some(spectator) = &mut spectator
        && !spectator.joined(Duration::from_secs(30)).await
    {
        tracing::warn!("the spectator consumer heard nothing in 30 s; its figures may be late");
    }
    let idle_cpu = if options.idle_baseline_s > 0.0 {
        idle_baseline(db, kafka_brokers, options.idle_baseline_s).await?
    } else {
        None
    };
    let (watch, router) = OrderWatch::start(&stack.updates);
    let begin = Instant::now();
    let measure_from = begin + Duration::from_secs_f64(options.warmup);
    let measure_until = measure_from + Duration::from_secs_f64(options.seconds);
    let shared = Arc::new(Shared {
        ordering: stack.ordering.clone(),
        toss: stack.toss.clone(),
        watch: Arc::clone(&watch),
        products,
        measure_from,
        measure_until,
        order_timeout: Duration::from_secs(options.order_timeout_s),
        fallback_poll: Duration::from_millis(options.fallback_poll_ms.max(1)),
    });
    let sampler = if options.pg_sample_ms > 0 {
        let pool = db.pool(1).await?;
        Some(profile::sample_activity(
            pool,
            db.name().to_owned(),
            Duration::from_millis(options.pg_sample_ms),
            measure_from,
            measure_until,
        ))
    } else {
        None
    };
    tracing::info!(
        clients = options.clients,
        warmup_s = options.warmup,
        seconds = options.seconds,
        "clients started"
    );
    let clients: Vec<_> = (0..options.clients)
        .map(|client| tokio::spawn(ordering_client::run(client, Arc::clone(&shared))))
        .collect();
    let counters_pool = db.pool(1).await?;
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_start = CpuSnapshot::take();
    let wall_from = chrono::Utc::now();
    let db_start = DbCounters::take(&counters_pool, db.name()).await;
    tokio::time::sleep_until(measure_until.into()).await;
    let cpu_end = CpuSnapshot::take();
    let wall_until = chrono::Utc::now();
    let db_end = DbCounters::take(&counters_pool, db.name()).await;
    let db_counters = match (db_start, db_end) {
        (Ok(start), Ok(end)) => Some(end.since(&start)),
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!(error = %err, "could not read pg_stat_database");
            None
        }
    };
    tracing::info!("measured window over; waiting for orders in flight");
    let mut stats = ClientStats::empty();
    // Orders in flight finish (or time out) within the order timeout.
    let drain = Duration::from_secs(options.order_timeout_s + 10);
    for client in clients {
        let abort = client.abort_handle();
        match tokio::time::timeout(drain, client).await {
            Ok(Ok(client_stats)) => stats.merge(&client_stats),
            Ok(Err(err)) => anyhow::bail!("a client task failed: {err}"),
            Err(_) => {
                abort.abort();
                anyhow::bail!("a client did not finish its last order within {drain:?}");
            }
        }
    }
    router.abort();
    let activity = match sampler {
        Some(task) => Some(task.await.context("pg_stat_activity sampler")?),
        None => None,
    };
    let backends = activity
        .as_ref()
        .map(|a| a.backends.clone())
        .unwrap_or_default();
    let groups = Groups {
        own_pid: std::process::id(),
        db_backends: &backends,
        broker_port: broker_port(kafka_brokers),
    };
    let cpu = match (&cpu_start, &cpu_end) {
        (Some(start), Some(end)) => Some(profile::cpu_split(start, end, &groups)),
        _ => None,
    };
    let seen = match spectator {
        Some(spectator) => spectator.finish().await,
        None => Default::default(),
    };
    let read_back = db.pool(2).await?;
    let events = match hops::events_by_type(&read_back, wall_from, wall_until).await {
        Ok(events) => Some(events),
        Err(err) => {
            tracing::warn!(error = %err, "could not count the events of the window");
            None
        }
    };
    let hops = match hops::measure(&read_back, wall_from, wall_until).await {
        Ok(mut hops) => {
            hops.extend(hops::deliveries(&seen, wall_from, wall_until));
            Some(hops)
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not read the hops back from the event store");
            None
        }
    };
    let outcome = Outcome {
        stats: &stats,
        clients: options.clients,
        seconds: options.seconds,
        lagged: watch.lagged(),
        cpu,
        idle_cpu,
        db: db_counters,
        events,
        activity,
        hops,
        bus: if options.in_process_bus {
            "in-process"
        } else {
            "kafka"
        },
    };
    for line in outcome.human_lines() {
        println!("{line}");
    }
    Ok(outcome.bench_line())
}

/// The CPU the platform uses over `seconds` while nothing happens.
async fn idle_baseline(
    db: &ScratchDb,
    kafka_brokers: &str,
    seconds: f64,
) -> anyhow::Result<Option<profile::CpuSplit>> {
    let backends = profile::backends_of(&db.pool(1).await?, db.name()).await?;
    tracing::info!(seconds, "measuring the idle platform");
    let start = CpuSnapshot::take();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let end = CpuSnapshot::take();
    let groups = Groups {
        own_pid: std::process::id(),
        db_backends: &backends,
        broker_port: broker_port(kafka_brokers),
    };
    Ok(start
        .zip(end)
        .map(|(start, end)| profile::cpu_split(&start, &end, &groups)))
}

/// Parses `KEY=VALUE`.
fn key_value(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {arg:?}")),
    }
}

/// The port of the first broker in `brokers` (`host:port,...`).
fn broker_port(brokers: &str) -> Option<u16> {
    brokers
        .split(',')
        .next()
        .and_then(|b| b.trim().rsplit(':').next())
        .and_then(|p| p.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::{broker_port, key_value};

    #[test]
    fn parses_kafka_properties() {
        assert_eq!(
            key_value("linger.ms=0"),
            Ok(("linger.ms".to_owned(), "0".to_owned()))
        );
        assert!(key_value("linger.ms").is_err());
    }

    #[test]
    fn reads_the_first_brokers_port() {
        assert_eq!(broker_port("127.0.0.1:29092,h:1"), Some(29092));
        assert_eq!(broker_port("localhost"), None);
    }
}
