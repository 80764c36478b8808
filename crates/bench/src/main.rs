//! The workspace's benchmarks, run by `scripts/bench NAME`; each prints one human-readable line
//! per figure and ends with a single `BENCH {json}` line on stdout (logs go to stderr).
//!
//! Layout: [`eventstore_bench`] wires the `eventstore` benchmark (Postgres in a scratch database
//! from [`scratch_db`], SQLite in a temporary directory, the relay onto Kafka), [`workload`]
//! generates realistic order, stock and payment events before any clock starts, [`phases`] holds
//! the timed phases written against the ports only, and [`report`] the goals and output lines.
//!
//! The `ordering` benchmark lives in [`ordering_bench`]: [`ordering_stack`] assembles the
//! platform as the end-to-end test does, [`ordering_client`] is one customer taking orders to
//! PAID (woken by [`order_watch`] when its order changes), [`profile`] samples CPU and
//! `pg_stat_activity`, [`hops`] reads the time between components back from the event store
//! (with [`spectator`] timing the relay's share),
//! and [`ordering_report`] prints the figures.
//!
//! The `gateway` benchmark lives in [`gateway_bench`]: the `bench-subgraphs` crate serves the
//! public gateway benchmark's four subgraphs in this process, [`gateway_process`] runs each
//! gateway as a child process and reads its peak RSS and CPU time from `/proc`, [`load`] drives
//! `oha` and checks every response, and [`gateway_report`] prints the figures and the ratios.
//! This binary only measures: it never changes the crates it exercises and leaves no database
//! or file behind.

/// The allocator the shipped `bloody-sweet` binary uses, so the components this process runs
/// (the ordering stack, the benchmark subgraphs) allocate as they do in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod eventstore_bench;
mod gateway_bench;
mod gateway_process;
mod gateway_report;
mod hops;
mod load;
mod order_watch;
mod ordering_bench;
mod ordering_client;
mod ordering_report;
mod ordering_stack;
mod phases;
mod profile;
mod report;
mod scratch_db;
mod spectator;
mod workload;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Benchmarks of the bloody-sweet platform.
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Append, catch-up and relay throughput of the event store adapters.
    Eventstore {
        /// Postgres server; the benchmark creates and drops its own database on it.
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        database_url: String,
        /// Kafka bootstrap servers for the relay phase (needed unless `--only sqlite`).
        #[arg(long, env = "KAFKA_BROKERS")]
        kafka_brokers: Option<String>,
        /// Run one adapter only.
        #[arg(long, value_enum)]
        only: Option<eventstore_bench::Only>,
        #[command(flatten)]
        sizes: eventstore_bench::Sizes,
    },
    /// Orders per second and latency from placeOrder to PAID through the whole stack.
    Ordering {
        /// Postgres server; the benchmark creates and drops its own database on it.
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        database_url: String,
        /// Kafka bootstrap servers.
        #[arg(long, env = "KAFKA_BROKERS")]
        kafka_brokers: String,
        #[command(flatten)]
        options: ordering_bench::Options,
    },
    /// Requests per second, p95 latency and peak RSS of our gateway and Hive Router on the
    /// public federation gateway benchmark's subgraphs and query.
    Gateway {
        #[command(flatten)]
        options: gateway_bench::Options,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Eventstore {
            database_url,
            kafka_brokers,
            only,
            sizes,
        } => {
            let line = eventstore_bench::run(&database_url, kafka_brokers.as_deref(), &sizes, only)
                .await?;
            println!("{line}");
        }
        Command::Ordering {
            database_url,
            kafka_brokers,
            options,
        } => {
            let line = ordering_bench::run(&database_url, &kafka_brokers, &options).await?;
            println!("{line}");
        }
        Command::Gateway { options } => {
            let line = gateway_bench::run(&options).await?;
            println!("{line}");
        }
    }
    Ok(())
}
