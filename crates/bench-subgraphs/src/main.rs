//! `bench-subgraphs`: serves the four benchmark subgraphs on consecutive loopback ports until
//! interrupted, printing `NAME URL` for each on stdout.

use std::net::IpAddr;

use anyhow::Context;
use bench_subgraphs::Subgraph;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Serves the accounts, inventory, products and reviews subgraphs of the gateway benchmark.
#[derive(Debug, Parser)]
#[command(name = "bench-subgraphs", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of accounts; inventory, products and reviews take the next three (0: any free ports).
    #[arg(long, default_value_t = 4201)]
    base_port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let running = bench_subgraphs::start(cli.host, cli.base_port)
        .await
        .with_context(|| format!("binding the subgraphs on {}:{}", cli.host, cli.base_port))?;
    for subgraph in Subgraph::ALL {
        if let Some(url) = running.url(subgraph) {
            println!("{} {url}", subgraph.name());
        }
    }
    shutdown_signal().await?;
    running.shutdown().await.context("stopping the subgraphs")?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("listening for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
