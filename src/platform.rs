//! Wires the adapters chosen by the settings into the running platform.

use std::sync::Arc;

use anyhow::Context as _;
use bus::{KafkaBus, KafkaConfig, MemoryBus, MessageBus};
use eventstore::{EventStore, PgEventStore, SqliteEventStore};
use projections::catalog::StreamCatalog;
use projections::{Projection, ReadModels};
use relay::{Relay, RelayConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// The connected ports of the platform.
pub struct Platform {
    /// The settings it was built from.
    pub settings: Settings,
    /// Event store (Postgres or SQLite).
    pub store: Arc<dyn EventStore>,
    /// Message bus (Kafka or in-process).
    pub bus: Arc<dyn MessageBus>,
    /// Read-model database (Postgres or SQLite).
    pub read_models: ReadModels,
}

/// Every read model the platform maintains.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(StreamCatalog),
        Arc::new(inventory::ProductCatalog),
        Arc::new(order::orders_view::OrdersView),
        Arc::new(payment::Payable),
        Arc::new(review::ReviewsView),
    ]
}

impl Platform {
    /// Connects every port, choosing the embedded adapter where no production setting is given.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let (store, read_models): (Arc<dyn EventStore>, ReadModels) = match settings.database_url()
        {
            Some(url) => {
                let store = PgEventStore::connect(url, settings.database_max_connections)
                    .await
                    .context("connecting the Postgres event store (DATABASE_URL)")?;
                let models = ReadModels::connect(url)
                    .await
                    .context("connecting the Postgres read models (DATABASE_URL)")?;
                (Arc::new(store), models)
            }
            None => {
                std::fs::create_dir_all(&settings.data_dir).with_context(|| {
                    format!("creating data directory {}", settings.data_dir.display())
                })?;
                let store = SqliteEventStore::open(settings.data_dir.join("events.db"))
                    .await
                    .context("opening the SQLite event store")?;
                let url = format!(
                    "sqlite://{}",
                    settings.data_dir.join("read-models.db").display()
                );
                let models = ReadModels::connect(&url)
                    .await
                    .context("opening the SQLite read models")?;
                (Arc::new(store), models)
            }
        };
        let bus: Arc<dyn MessageBus> = match &settings.kafka_brokers {
            Some(brokers) => Arc::new(
                KafkaBus::new(
                    KafkaConfig::new(brokers.clone())
                        .with_session_timeout(std::time::Duration::from_millis(
                            settings.kafka_session_timeout_ms,
                        ))
                        .with_prompt_fetch_wait(std::time::Duration::from_millis(
                            settings.kafka_fetch_wait_ms,
                        )),
                )
                .context("creating the Kafka bus")?,
            ),
            None => Arc::new(MemoryBus::new()),
        };
        tracing::info!(
            event_store = store.adapter(),
            message_bus = bus.adapter(),
            read_models = ?read_models.backend(),
            "adapters selected"
        );
        Ok(Self {
            settings,
            store,
            bus,
            read_models,
        })
    }

    /// Runs the relay until `shutdown` is cancelled.
    pub fn spawn_relay(
        &self,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let config = RelayConfig {
            topic_prefix: self.settings.kafka_topic_prefix.clone(),
            partitions: self.settings.kafka_partitions,
            ..RelayConfig::default()
        };
        let relay = Relay::new(self.store.clone(), self.bus.clone(), config);
        tokio::spawn(async move {
            relay
                .run(shutdown.cancelled_owned())
                .await
                .context("relay stopped")
        })
    }

    /// Runs every projection until `shutdown` is cancelled: from Kafka when it is configured
    /// (one consumer group, `{prefix}projections`, feeds them all), else each straight from
    /// the event store.
    pub fn spawn_projections(
        &self,
        shutdown: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
        let models = self.read_models.clone();
        let store = self.store.clone();
        if self.settings.kafka_brokers.is_some() {
            let bus = self.bus.clone();
            let prefix = self.settings.kafka_topic_prefix.clone();
            let group = format!("{prefix}projections");
            let partitions = self.settings.kafka_partitions;
            return vec![tokio::spawn(async move {
                projections::run_all_from_bus(
                    models,
                    projections(),
                    bus,
                    store,
                    projections::BusFeed {
                        group: &group,
                        topic_prefix: &prefix,
                        partitions,
                    },
                    shutdown.cancelled_owned(),
                )
                .await
                .context("projections stopped")
            })];
        }
        projections()
            .into_iter()
            .map(|projection| {
                let (models, store, shutdown) = (models.clone(), store.clone(), shutdown.clone());
                tokio::spawn(async move {
                    let name = projection.name();
                    projections::run_from_store(
                        models,
                        projection,
                        store,
                        shutdown.cancelled_owned(),
                    )
                    .await
                    .with_context(|| format!("projection {name} stopped"))
                })
            })
            .collect()
    }
}

async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

/// The Toss client: the real API (or `TOSS_BASE_URL`) with `TOSS_SECRET_KEY`, else the
/// embedded Toss test server, started here, with its test key.
pub async fn toss_client(
    settings: &Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<(
    payment::toss::client::TossClient,
    Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
)> {
    use secrecy::ExposeSecret as _;
    if let Some(key) = &settings.toss_secret_key {
        let base = settings
            .toss_base_url
            .clone()
            .unwrap_or_else(|| "https://api.tosspayments.com".to_owned());
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client =
            payment::toss::client::TossClient::new(&base, key.expose_secret().to_owned().into())
                .context("creating the Toss client")?;
        tracing::info!(toss = %base, "payment provider: toss api");
        return Ok((client, None));
    }
    let listener = bind(settings.toss_test_listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = payment::toss::server::TossTestServer::default();
    let task = tokio::spawn(async move {
        server
            .serve(listener, shutdown.cancelled_owned())
            .await
            .context("toss test server")
    });
    let client =
        payment::toss::client::TossClient::new(&base, "test_sk_embedded".to_owned().into())
            .context("creating the Toss client")?;
    tracing::info!(toss = %base, "payment provider: embedded toss test server");
    Ok((client, Some(task)))
}

/// The order saga as the settings configure it.
pub fn saga_config(settings: &Settings) -> order::SagaConfig {
    order::SagaConfig {
        payment_timeout: chrono::Duration::seconds(
            i64::try_from(settings.payment_timeout_secs).unwrap_or(600),
        ),
        refund_retry_after: chrono::Duration::seconds(
            i64::try_from(settings.refund_retry_secs).unwrap_or(120),
        ),
        ..order::SagaConfig::default()
    }
}

/// Runs the whole platform in this process until `shutdown` is cancelled: the gateway on
/// `listener` (GraphQL composed from the order, inventory, payment and review subgraphs,
/// GraphiQL, health, readiness, metrics), the dev issuer (unless Cognito is configured), the
/// relay, the projections, the subgraphs, the embedding pipeline and the chat workers (review
/// intelligence is left out, with a warning, when no model can be loaded). A component that
/// fails stops the rest.
pub async fn run_up(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics =
        telemetry::install_metrics_recorder().context("installing the metrics recorder")?;
    let readiness = telemetry::Readiness::new();
    // Bind the subgraphs first: the gateway composes from their addresses and retries until
    // they answer, while serving health at once.
    let listeners = crate::ordering::Listeners {
        order: bind(settings.order_listen).await?,
        inventory: bind(settings.inventory_listen).await?,
        payment: bind(settings.payment_listen).await?,
    };
    let review_listener = bind(settings.review_listen).await?;
    let mut subgraphs = crate::edge::ordering_subgraphs(
        listeners.order.local_addr()?,
        listeners.inventory.local_addr()?,
        listeners.payment.local_addr()?,
    );
    subgraphs.push(gateway::SubgraphEndpoint {
        name: "review".to_owned(),
        url: crate::edge::subgraph_url(review_listener.local_addr()?),
    });
    let _dev_issuer = crate::edge::start_dev_issuer(&settings).await?;
    let config =
        crate::edge::gateway_config(&settings, gateway::SupergraphSource::Compose(subgraphs));
    let (stop, ready) = (shutdown.clone(), readiness.clone());
    let http = tokio::spawn(async move {
        gateway::serve_with(config, listener, stop, metrics, ready)
            .await
            .context("gateway")
    });

    let platform = Platform::connect(settings).await?;
    let mut tasks = vec![platform.spawn_relay(shutdown.clone())];
    tasks.extend(platform.spawn_projections(shutdown.clone()));
    let (toss, toss_task) = toss_client(&platform.settings, shutdown.clone()).await?;
    tasks.extend(toss_task);
    let saga = saga_config(&platform.settings);
    let (_ordering, ordering_tasks) =
        crate::ordering::Ordering::start(&platform, toss, saga, listeners, shutdown.clone())
            .await?;
    tasks.extend(ordering_tasks.into_tasks());
    let (mut reviews, documents_task) = crate::ai::review_state(&platform, shutdown.clone())
        .await
        .context("starting the review subgraph")?;
    tasks.extend(documents_task);
    match crate::ai::Ai::connect(&platform.settings, &reviews, "up").await {
        Ok(ai) => {
            tasks.push(ai.spawn_pipeline(&platform.settings, shutdown.clone()));
            tasks.push(ai.spawn_chat_workers(&platform.settings, shutdown.clone()));
            reviews = reviews.with_intelligence(ai.intelligence);
        }
        // The rest of the platform runs without a model; the AI fields say AI_UNAVAILABLE.
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "review search and the assistant are disabled")
        }
    }
    tasks.push(crate::ordering::serve(
        &platform.settings,
        review_listener,
        review::server::router(reviews),
        &shutdown,
        "review",
    ));
    tasks.push(http);
    readiness.set_ready(true);
    tracing::info!("platform up");

    let mut tasks = futures::future::select_all(tasks);
    let outcome = loop {
        let (result, _index, rest) = tasks.await;
        let failed = match result {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err),
            Err(join) => Some(anyhow::anyhow!("component panicked: {join}")),
        };
        if let Some(err) = failed {
            tracing::error!(error = %format!("{err:#}"), "component failed; stopping the platform");
            shutdown.cancel();
            break Err(err);
        }
        if rest.is_empty() {
            break Ok(());
        }
        tasks = futures::future::select_all(rest);
    };
    readiness.set_ready(false);
    shutdown.cancel();
    outcome
}
