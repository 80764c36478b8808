//! The subcommands of `bloody-sweet`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::platform::{self, Platform};
use crate::settings::Settings;

/// App-based real-time ordering platform for a dessert shop chain.
#[derive(Debug, Parser)]
#[command(name = "bloody-sweet", version)]
pub struct Cli {
    /// Optional TOML file with settings (environment variables override it).
    #[arg(long, global = true, env = "BLOODY_SWEET_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the whole platform in one process (embedded adapters unless configured otherwise).
    Up {
        /// Address of the HTTP server (overrides BLOODY_SWEET_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Runs the outbox relay alone (event store to Kafka).
    Relay,
    /// Serves the order subgraph alone on ORDER_LISTEN (default 127.0.0.1:4001) with the
    /// order saga (`/graphql`, `/healthz`, `/readyz`, `/metrics`).
    Order {
        /// Address to serve on (overrides ORDER_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Serves the inventory subgraph alone on INVENTORY_LISTEN (default 127.0.0.1:4002) with
    /// the worker answering the saga's stock commands.
    Inventory {
        /// Address to serve on (overrides INVENTORY_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Serves the payment subgraph alone on PAYMENT_LISTEN (default 127.0.0.1:4003) with the
    /// Toss webhook and the worker answering the saga's refund commands (Toss at
    /// TOSS_SECRET_KEY, else the embedded Toss test server).
    Payment {
        /// Address to serve on (overrides PAYMENT_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Serves the review subgraph alone on REVIEW_LISTEN (default 127.0.0.1:4004) with search,
    /// answers and chat, keeping its embedded vector index caught up (and answering chat
    /// itself when REDIS_URL is unset).
    Review,
    /// Runs the AI worker: chat workers answering messages from the stream broker (Redis at
    /// REDIS_URL) and the embedding catch-up of its vector index.
    AiWorker,
    /// Serves the model service (gRPC Embed, Label, Info and health) from MODEL_DIR.
    Model {
        /// Address to serve on (overrides MODEL_LISTEN, default 127.0.0.1:50051).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Serves the federated GraphQL gateway alone over a supergraph file or subgraphs composed
    /// at start (`GET /healthz`, `POST /graphql`). Tokens are verified against Cognito
    /// (COGNITO_*) or else the dev issuer of a running `up` (DEV_ISSUER_LISTEN).
    Gateway {
        /// The supergraph SDL file.
        #[arg(long, conflicts_with = "compose", required_unless_present = "compose")]
        supergraph: Option<PathBuf>,
        /// Compose from these subgraphs instead: `name=url,name=url,...`.
        #[arg(long)]
        compose: Option<String>,
        /// Address to serve on (overrides BLOODY_SWEET_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Prints a development token minted by the dev issuer of a running `bloody-sweet up`
    /// (`POST http://DEV_ISSUER_LISTEN/token`, default 127.0.0.1:4011). Never production.
    Token {
        /// The user's name (its `sub` is derived from it, the same on every run).
        #[arg(long)]
        username: String,
        /// A Cognito group: customers, staff or admins (repeat for several).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// `access` (default) or `id`.
        #[arg(long, default_value = "access")]
        token_use: String,
        /// Lifetime in seconds (1 to 86400).
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
    /// Subgraph schemas: write each subgraph's SDL to `schema/`, or check the files are current.
    Schema {
        /// What to do.
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Batch jobs.
    Batch {
        /// Which job.
        #[command(subcommand)]
        job: BatchJob,
    },
    /// Read-model operations.
    Projections {
        /// What to do.
        #[command(subcommand)]
        action: ProjectionsAction,
    },
}

/// A batch job.
#[derive(Debug, Subcommand)]
pub enum BatchJob {
    /// Imports reviews from a JSONL or CSV file: chunked, restartable after a crash, every
    /// skipped line reported with its reason.
    ImportReviews {
        /// The file to import.
        file: PathBuf,
        /// `jsonl` or `csv` (default: from the file extension).
        #[arg(long)]
        format: Option<String>,
        /// Records per committed chunk.
        #[arg(long, default_value_t = 500)]
        chunk_size: usize,
    },
}

/// A schema operation.
#[derive(Debug, Subcommand)]
pub enum SchemaAction {
    /// Writes `{dir}/{subgraph}.graphql` for every subgraph.
    Export {
        /// Where the files go.
        #[arg(long, default_value = "schema")]
        dir: PathBuf,
    },
    /// Fails when a file in `dir` differs from the SDL the code generates.
    Check {
        /// Where the files are.
        #[arg(long, default_value = "schema")]
        dir: PathBuf,
    },
}

/// Each subgraph's name and its federation SDL, as generated from code.
pub fn subgraph_sdls() -> Vec<(&'static str, String)> {
    vec![
        ("inventory", inventory::schema::sdl()),
        ("order", order::schema::sdl()),
        ("payment", payment::sdl()),
        ("review", review::sdl()),
    ]
}

/// The subgraphs whose file in `dir` is missing or differs from the generated SDL.
pub fn stale_schemas(dir: &std::path::Path) -> Vec<&'static str> {
    subgraph_sdls()
        .into_iter()
        .filter(|(name, sdl)| {
            std::fs::read_to_string(dir.join(format!("{name}.graphql")))
                .ok()
                .as_deref()
                != Some(sdl)
        })
        .map(|(name, _)| name)
        .collect()
}

/// A read-model operation.
#[derive(Debug, Subcommand)]
pub enum ProjectionsAction {
    /// Runs every projection's live consumer.
    Run,
    /// Prints each projection's generation, checkpoint, lag and rebuild progress.
    Status,
    /// Rebuilds a projection from position 0 into new tables and swaps them in.
    Rebuild {
        /// The projection's name (see `status`).
        name: String,
    },
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A token cancelled on Ctrl-C or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        stop_signal().await;
        tracing::info!("stop requested");
        cancel.cancel();
    });
    token
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Up { listen } => {
            if let Some(addr) = listen {
                settings.listen = addr;
            }
            let listener = TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding {}", settings.listen))?;
            platform::run_up(settings, listener, shutdown_on_signal()).await
        }
        Command::Gateway {
            supergraph,
            compose,
            listen,
        } => {
            if let Some(addr) = listen {
                settings.listen = addr;
            }
            let source = crate::edge::supergraph_source(supergraph, compose.as_deref())?;
            let config = crate::edge::gateway_config(&settings, source);
            let listener = TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding {}", settings.listen))?;
            gateway::serve(config, listener, shutdown_on_signal()).await?;
            Ok(())
        }
        Command::Token {
            username,
            groups,
            token_use,
            ttl_secs,
        } => {
            let token_use = match token_use.as_str() {
                "access" => auth::TokenUse::Access,
                "id" => auth::TokenUse::Id,
                other => anyhow::bail!("--token-use must be access or id, not {other:?}"),
            };
            let request = auth::MintRequest {
                username,
                groups,
                token_use,
                ttl_secs,
            };
            println!(
                "{}",
                crate::edge::mint_dev_token(&settings, &request).await?
            );
            Ok(())
        }
        Command::Relay => {
            let platform = Platform::connect(settings).await?;
            platform.spawn_relay(shutdown_on_signal()).await?
        }
        Command::Order { listen } => {
            settings.order_listen = listen.unwrap_or(settings.order_listen);
            ordering_alone(settings, Subgraph::Order).await
        }
        Command::Inventory { listen } => {
            settings.inventory_listen = listen.unwrap_or(settings.inventory_listen);
            ordering_alone(settings, Subgraph::Inventory).await
        }
        Command::Payment { listen } => {
            settings.payment_listen = listen.unwrap_or(settings.payment_listen);
            ordering_alone(settings, Subgraph::Payment).await
        }
        Command::Review => review_alone(settings).await,
        Command::AiWorker => ai_worker(settings).await,
        Command::Model { listen } => {
            if let Some(addr) = listen {
                settings.model_listen = addr;
            }
            let config = crate::ai::model_config()?;
            let listener = TcpListener::bind(settings.model_listen)
                .await
                .with_context(|| format!("binding {}", settings.model_listen))?;
            let shutdown = shutdown_on_signal();
            model::serve(config, listener, shutdown.cancelled_owned())
                .await
                .context("model service")
        }
        Command::Projections { action } => projections(settings, action).await,
        Command::Batch { job } => batch(settings, job).await,
        Command::Schema { action } => match action {
            SchemaAction::Export { dir } => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for (name, sdl) in subgraph_sdls() {
                    let path = dir.join(format!("{name}.graphql"));
                    std::fs::write(&path, sdl)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("{}", path.display());
                }
                Ok(())
            }
            SchemaAction::Check { dir } => {
                let stale = stale_schemas(&dir);
                anyhow::ensure!(
                    stale.is_empty(),
                    "schema files out of date for {stale:?}: run `bloody-sweet schema export`"
                );
                Ok(())
            }
        },
    }
}

async fn projections(settings: Settings, action: ProjectionsAction) -> anyhow::Result<()> {
    let platform = Platform::connect(settings).await?;
    match action {
        ProjectionsAction::Run => {
            // One failed projection stops the rest (and the process), as other commands do.
            let shutdown = shutdown_on_signal();
            supervise(platform.spawn_projections(shutdown.clone()), shutdown).await
        }
        ProjectionsAction::Status => {
            let head = platform.store.head().await?;
            for projection in platform::projections() {
                platform.read_models.register(projection.as_ref()).await?;
                let status = platform.read_models.status(projection.name()).await?;
                let lag = status.checkpoint.map(|c| head.0.saturating_sub(c.0));
                let line = serde_json::json!({
                    "projection": status.name,
                    "live_generation": status.live_generation,
                    "checkpoint": status.checkpoint.map(|p| p.0),
                    "head": head.0,
                    "lag_positions": lag,
                    "rebuild_generation": status.rebuild_generation,
                    "rebuild_position": status.rebuild_position.map(|p| p.0),
                    "rebuild_target": status.rebuild_target.map(|p| p.0),
                });
                println!("{line}");
            }
            Ok(())
        }
        ProjectionsAction::Rebuild { name } => {
            let projection = platform::projections()
                .into_iter()
                .find(|p| p.name() == name)
                .with_context(|| format!("no projection named {name:?}"))?;
            let report = platform
                .read_models
                .rebuild(projection.as_ref(), platform.store.as_ref(), 5_000, |p| {
                    tracing::info!(
                        generation = p.generation,
                        position = p.position.0,
                        target = p.target.0,
                        events = p.events,
                        "rebuild progress"
                    );
                })
                .await?;
            println!(
                "{}",
                serde_json::json!({
                    "projection": name,
                    "generation": report.generation,
                    "events": report.events,
                    "position": report.position.0,
                    "millis": report.millis as u64,
                })
            );
            Ok(())
        }
    }
}

/// Waits for `tasks`; the first that fails cancels `shutdown` and is returned.
async fn supervise(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut pending = tasks;
    while !pending.is_empty() {
        let (result, _, rest) = futures::future::select_all(pending).await;
        let failed = match result {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err),
            Err(join) => Some(anyhow::anyhow!("component panicked: {join}")),
        };
        if let Some(err) = failed {
            shutdown.cancel();
            return Err(err);
        }
        pending = rest;
    }
    Ok(())
}

/// One of the ordering subgraphs.
#[derive(Debug, Clone, Copy)]
enum Subgraph {
    Order,
    Inventory,
    Payment,
}

/// Serves one ordering subgraph and its workers in this process. With Kafka, the relay and
/// the projections are deployables of their own. Without it the bus is in-process and reaches
/// no other process, so this one relays the store's events to its own bus and keeps the read
/// models, as `up` does: a store then serves one such process (the others' workers, say the
/// inventory worker answering the order saga, are out of its reach).
async fn ordering_alone(settings: Settings, subgraph: Subgraph) -> anyhow::Result<()> {
    let metrics =
        telemetry::install_metrics_recorder().context("installing the metrics recorder")?;
    let readiness = telemetry::Readiness::new();
    // Bound before anything joins a consumer group: a taken port fails the start at once.
    let addr = match subgraph {
        Subgraph::Order => settings.order_listen,
        Subgraph::Inventory => settings.inventory_listen,
        Subgraph::Payment => settings.payment_listen,
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let platform = Platform::connect(settings).await?;
    let shutdown = shutdown_on_signal();
    let mut tasks = Vec::new();
    if platform.settings.kafka_brokers.is_none() {
        tracing::warn!(
            "KAFKA_BROKERS is unset: the in-process bus reaches no other process, so this one \
             relays the store's events and keeps the read models; run one process per store"
        );
        tasks.push(platform.spawn_relay(shutdown.clone()));
        tasks.extend(platform.spawn_projections(shutdown.clone()));
    }
    let s = &platform.settings;
    let (router, name) = match subgraph {
        Subgraph::Order => {
            let saga = platform::saga_config(s);
            let (side, running) =
                crate::ordering::start_order(&platform, saga, shutdown.clone()).await?;
            tasks.extend(running.into_tasks());
            (side.router, "order")
        }
        Subgraph::Inventory => {
            let (state, workers) =
                crate::ordering::start_inventory(&platform, shutdown.clone()).await?;
            tasks.extend(workers);
            (inventory::server::router(state), "inventory")
        }
        Subgraph::Payment => {
            let (toss, toss_task) = platform::toss_client(s, shutdown.clone()).await?;
            tasks.extend(toss_task);
            let (service, workers) =
                crate::ordering::start_payment(&platform, toss, shutdown.clone()).await?;
            tasks.extend(workers);
            (payment::server::router(service), "payment")
        }
    };
    let router = router.merge(telemetry::metrics_and_readiness_router(
        metrics,
        readiness.clone(),
    ));
    tasks.push(crate::ordering::serve(
        &platform.settings,
        listener,
        router,
        &shutdown,
        name,
    ));
    readiness.set_ready(true);
    let outcome = supervise(tasks, shutdown).await;
    readiness.set_ready(false);
    outcome
}

async fn review_alone(settings: Settings) -> anyhow::Result<()> {
    let platform = Platform::connect(settings).await?;
    let shutdown = shutdown_on_signal();
    let (state, documents_task) = crate::ai::review_state(&platform, shutdown.clone())
        .await
        .context("starting the review subgraph")?;
    let ai = crate::ai::Ai::connect(&platform.settings, &state, "review").await?;
    let mut tasks = vec![ai.spawn_pipeline(&platform.settings, shutdown.clone())];
    tasks.extend(documents_task);
    if platform.settings.redis_url.is_none() {
        // In-process streams reach no other process: this one answers its own chats.
        tasks.push(ai.spawn_chat_workers(&platform.settings, shutdown.clone()));
    }
    let state = state.with_intelligence(ai.intelligence);
    let listener = TcpListener::bind(platform.settings.review_listen)
        .await
        .with_context(|| format!("binding {}", platform.settings.review_listen))?;
    tasks.push(crate::ordering::serve(
        &platform.settings,
        listener,
        review::server::router(state),
        &shutdown,
        "review",
    ));
    supervise(tasks, shutdown).await
}

async fn ai_worker(settings: Settings) -> anyhow::Result<()> {
    let platform = Platform::connect(settings).await?;
    if platform.settings.redis_url.is_none() {
        tracing::warn!(
            "REDIS_URL is unset: in-process streams carry no other process's chat messages"
        );
    }
    let shutdown = shutdown_on_signal();
    // Chat answers cite reviews read through the documents port.
    let (state, documents_task) = crate::ai::review_state(&platform, shutdown.clone()).await?;
    let ai = crate::ai::Ai::connect(&platform.settings, &state, "ai-worker").await?;
    let mut tasks = vec![
        ai.spawn_pipeline(&platform.settings, shutdown.clone()),
        ai.spawn_chat_workers(&platform.settings, shutdown.clone()),
    ];
    tasks.extend(documents_task);
    supervise(tasks, shutdown).await
}

async fn batch(settings: Settings, job: BatchJob) -> anyhow::Result<()> {
    let BatchJob::ImportReviews {
        file,
        format,
        chunk_size,
    } = job;
    let format = match format.as_deref() {
        None => None,
        Some("jsonl") => Some(review::batch::Format::Jsonl),
        Some("csv") => Some(review::batch::Format::Csv),
        Some(other) => anyhow::bail!("unknown format {other:?}: use jsonl or csv"),
    };
    let pg = match settings.database_url() {
        Some(url) => Some(
            eventstore::PgEventStore::connect(url, settings.database_max_connections)
                .await
                .context("connecting the Postgres event store (DATABASE_URL)")?,
        ),
        None => None,
    };
    let platform = Platform::connect(settings).await?;
    let store = match pg {
        Some(pg) => review::batch::ImportStore::Postgres(pg),
        None => review::batch::ImportStore::Store(platform.store.clone()),
    };
    let options = review::batch::ImportOptions {
        format,
        chunk_size,
        ..review::batch::ImportOptions::default()
    };
    let report = review::batch::import(&store, &platform.read_models, &file, options)
        .await
        .map_err(|err| anyhow::anyhow!("{}: {err}", err.code()))?;
    println!("{report}");
    Ok(())
}
