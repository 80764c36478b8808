//! The `eventstore` benchmark: the same phases against Postgres and SQLite, then the relay.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus::{KafkaBus, KafkaConfig, MessageBus};
use eventstore::{EventStore, PgEventStore, SqliteEventStore};
use relay::RelayConfig;
use serde_json::{Value, json};

use crate::phases::{self, CaughtUp};
use crate::report::{AdapterReport, bench_line};
use crate::scratch_db::ScratchDb;
use crate::workload;

/// How much work each phase does.
#[derive(Debug, Clone, clap::Args)]
pub struct Sizes {
    /// Single-event appends in the first phase (split among the writers).
    #[arg(long, default_value_t = 20_000)]
    pub single_appends: usize,
    /// Concurrent writers of single-event appends.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Events appended in batches in the second phase.
    #[arg(long, default_value_t = 200_000)]
    pub batched_events: usize,
    /// Events per batched append.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Concurrent writers of batches.
    #[arg(long, default_value_t = 4)]
    pub batch_writers: usize,
    /// Page size of the `read_all` catch-up.
    #[arg(long, default_value_t = 5_000)]
    pub page_size: usize,
    /// Longest a catch-up or relay phase may take, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
    /// Run `ANALYZE` on the Postgres tables before the catch-up phases (diagnostic: shows the
    /// read figures with fresh planner statistics, which autovacuum may not have gathered yet).
    #[arg(long)]
    pub analyze_before_reads: bool,
    /// Keep the Postgres database afterwards (its name is logged), e.g. to `EXPLAIN` its queries.
    #[arg(long)]
    pub keep_database: bool,
}

impl Sizes {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }

    fn to_json(&self) -> Value {
        json!({
            "single_appends": self.single_appends,
            "writers": self.writers,
            "batched_events": self.batched_events,
            "batch_size": self.batch_size,
            "batch_writers": self.batch_writers,
            "page_size": self.page_size,
        })
    }
}

/// Which adapters to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Postgres and the relay only.
    Postgres,
    /// SQLite only.
    Sqlite,
}

/// Runs the benchmark and returns the `BENCH {json}` line.
pub async fn run(
    database_url: &str,
    kafka_brokers: Option<&str>,
    sizes: &Sizes,
    only: Option<Only>,
) -> anyhow::Result<String> {
    let load_average = load_average_1m();
    if load_average.is_some_and(|load| load > 1.5) {
        tracing::warn!(
            load_average,
            "the machine is busy; figures will be lower and noisier"
        );
    }
    let mut reports = Vec::new();
    let mut body_bytes = 0;
    if only != Some(Only::Sqlite) {
        let kafka_brokers = kafka_brokers.context(
            "KAFKA_BROKERS is not set: the relay phase needs a broker (scripts/bench starts one)",
        )?;
        let (report, bytes) = postgres(database_url, kafka_brokers, sizes).await?;
        reports.push(report);
        body_bytes = bytes;
    }
    if only != Some(Only::Postgres) {
        let (report, bytes) = sqlite(sizes).await?;
        reports.push(report);
        body_bytes = bytes;
    }
    let mut parameters = sizes.to_json();
    parameters["mean_body_bytes"] = json!(body_bytes);
    parameters["load_avg_1m_at_start"] = json!(load_average);
    let refs: Vec<&AdapterReport> = reports.iter().collect();
    Ok(bench_line(&refs, parameters))
}

/// The 1-minute load average (Linux), recorded beside the figures since other work skews them.
fn load_average_1m() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Postgres in a fresh database, dropped afterwards (also when interrupted with Ctrl-C).
async fn postgres(
    database_url: &str,
    kafka_brokers: &str,
    sizes: &Sizes,
) -> anyhow::Result<(AdapterReport, usize)> {
    let db = ScratchDb::create(database_url).await?;
    let outcome = tokio::select! {
        outcome = postgres_phases(&db, kafka_brokers, sizes) => Some(outcome),
        _ = tokio::signal::ctrl_c() => None,
    };
    if sizes.keep_database {
        tracing::info!(database = db.name(), "benchmark database kept");
    } else if let Err(err) = db.drop_database().await {
        tracing::warn!(error = format!("{err:#}"), "benchmark database left behind");
    }
    outcome.context("interrupted")?
}

async fn postgres_phases(
    db: &ScratchDb,
    kafka_brokers: &str,
    sizes: &Sizes,
) -> anyhow::Result<(AdapterReport, usize)> {
    let connections = u32::try_from(sizes.writers.max(sizes.batch_writers) + 4).unwrap_or(64);
    // The store's own pool settings (idle-only checks), as `PgEventStore::connect` makes.
    let pool = eventstore::postgres::pool_options(connections)
        .connect(&db.url())
        .await
        .with_context(|| format!("cannot connect to database {}", db.name()))?;
    let store = PgEventStore::new(pool)
        .await
        .context("cannot open the Postgres event store")?;
    let mut report = AdapterReport::new("postgres");
    let analyze = sizes.analyze_before_reads.then(|| store.pool().clone());
    let store: Arc<dyn EventStore> = Arc::new(store);
    let (caught_up, bytes) = write_and_read(&store, sizes, analyze, &mut report).await?;

    let bus: Arc<dyn MessageBus> = Arc::new(
        KafkaBus::new(KafkaConfig::new(kafka_brokers)).context("cannot create the Kafka bus")?,
    );
    let suffix = &db.name()["bs_bench_".len()..];
    let config = RelayConfig {
        name: format!("bench-relay-{suffix}"),
        topic_prefix: format!("bench_{suffix}."),
        ..RelayConfig::default()
    };
    tracing::info!(
        brokers = kafka_brokers,
        events = caught_up.measured.count,
        "relaying"
    );
    let relayed = phases::relay_to(
        Arc::clone(&store),
        bus,
        config,
        caught_up.last,
        caught_up.measured.count,
        sizes.timeout(),
    )
    .await?;
    report.record("relayed_events_per_s", relayed);
    Ok((report, bytes))
}

/// SQLite in a temporary directory, removed afterwards (also when interrupted with Ctrl-C).
async fn sqlite(sizes: &Sizes) -> anyhow::Result<(AdapterReport, usize)> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let phases = async {
        let store = SqliteEventStore::open(dir.path().join("events.db"))
            .await
            .context("cannot open the SQLite event store")?;
        let store: Arc<dyn EventStore> = Arc::new(store);
        let mut report = AdapterReport::new("sqlite");
        let (_, bytes) = write_and_read(&store, sizes, None, &mut report).await?;
        anyhow::Ok((report, bytes))
    };
    tokio::select! {
        outcome = phases => outcome,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    }
}

/// The phases every adapter runs: single appends, batched appends, catch-up reads. With
/// `analyze`, the Postgres tables are analysed between the writes and the reads.
///
/// Returns where the catch-up ended and the mean event body size.
async fn write_and_read(
    store: &Arc<dyn EventStore>,
    sizes: &Sizes,
    analyze: Option<sqlx::PgPool>,
    report: &mut AdapterReport,
) -> anyhow::Result<(CaughtUp, usize)> {
    let adapter = store.adapter();
    let single = workload::order_lifecycles(sizes.writers, sizes.single_appends);
    let batched =
        workload::ledger_batches(sizes.batch_writers, sizes.batched_events, sizes.batch_size);
    let bytes = workload::mean_body_bytes(&[&single, &batched]);
    let total = (workload::count_events(&single) + workload::count_events(&batched)) as u64;

    tracing::info!(adapter, writers = sizes.writers, "single appends");
    report.record(
        "single_appends_per_s",
        phases::single_appends(Arc::clone(store), single).await?,
    );
    tracing::info!(adapter, writers = sizes.batch_writers, "batched appends");
    report.record(
        "batched_events_per_s",
        phases::batched_appends(Arc::clone(store), batched).await?,
    );
    if let Some(pool) = analyze {
        tracing::info!(adapter, "analyzing the event tables");
        sqlx::query("ANALYZE es_events, es_streams")
            .execute(&pool)
            .await
            .context("ANALYZE")?;
    }
    tracing::info!(adapter, events = total, "catch-up through read_all");
    let caught_up =
        phases::catch_up_read_all(store.as_ref(), sizes.page_size, total, sizes.timeout()).await?;
    report.record("catchup_events_per_s", caught_up.measured);
    tracing::info!(adapter, events = total, "catch-up through subscribe_all");
    let subscribed = phases::catch_up_subscribe(store.as_ref(), total, sizes.timeout()).await?;
    report.record("subscribe_events_per_s", subscribed);
    Ok((caught_up, bytes))
}
