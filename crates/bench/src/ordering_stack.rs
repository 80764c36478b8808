//! The platform the `ordering` benchmark drives, assembled exactly as the end-to-end test
//! (`tests/ordering.rs`) does: Postgres event store and read models, Kafka, the relay, the
//! projections, the Toss test server over HTTP, and the ordering components with their saga.

use std::time::{Duration, Instant};

use anyhow::Context;
use bloody_sweet::ordering::Ordering;
use bloody_sweet::platform::Platform;
use bloody_sweet::settings::Settings;
use bloody_sweet::stack::LocalStack;
use eventstore::Metadata;
use inventory::NewProduct;
use order::SagaConfig;
use order::updates::OrderUpdates;
use payment::toss::server::TossTestServer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long the products may take to reach the catalog read model.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the background tasks get to stop once cancelled.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The running platform.
pub struct Stack {
    /// The ordering components, driven directly (as a subgraph resolver would).
    pub ordering: Ordering,
    /// The Toss test server the payment service calls over HTTP.
    pub toss: TossTestServer,
    /// Live "this order changed" signals: the platform's own follower of `$all`.
    pub updates: OrderUpdates,
    platform: Platform,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Stack {
    /// Connects to the database at `database_url` and the brokers (or, with `in_process_bus`,
    /// the embedded bus), with topics under `prefix`, and starts every component.
    pub async fn start(
        database_url: &str,
        kafka_brokers: &str,
        prefix: &str,
        partitions: u32,
        fetch_wait_ms: u64,
        kafka_properties: &[(String, String)],
        in_process_bus: bool,
    ) -> anyhow::Result<Self> {
        let settings = Settings::load_from(None, |name| match name {
            "DATABASE_URL" => Some(database_url.to_owned()),
            // Without brokers the platform takes its embedded in-process bus.
            "KAFKA_BROKERS" if in_process_bus => None,
            "KAFKA_BROKERS" => Some(kafka_brokers.to_owned()),
            "KAFKA_TOPIC_PREFIX" => Some(prefix.to_owned()),
            "KAFKA_PARTITIONS" => Some(partitions.to_string()),
            "KAFKA_SESSION_TIMEOUT_MS" => Some("6000".into()),
            "KAFKA_FETCH_WAIT_MS" => Some(fetch_wait_ms.to_string()),
            _ => None,
        })
        .context("benchmark settings")?;
        let mut platform = Platform::connect(settings).await?;
        if !kafka_properties.is_empty() {
            // Diagnostic: the same bus with extra librdkafka properties on every client.
            let mut config = bus::KafkaConfig::new(kafka_brokers)
                .with_prompt_fetch_wait(Duration::from_millis(fetch_wait_ms));
            for (key, value) in kafka_properties {
                config = config.with(key, value);
            }
            tracing::warn!(?kafka_properties, "kafka clients use extra properties");
            platform.bus = std::sync::Arc::new(bus::KafkaBus::new(config)?);
        }
        let saga = SagaConfig {
            payment_timeout: chrono::Duration::minutes(10),
            tick: Duration::from_millis(200),
            resend_after: chrono::Duration::seconds(2),
            ..SagaConfig::default()
        };
        let LocalStack {
            platform,
            ordering,
            toss,
            saga,
            mut tasks,
            shutdown,
            ..
        } = LocalStack::start(platform, saga)
            .await
            .context("starting the ordering components")?;
        tasks.push(saga);
        let updates = ordering.updates.clone();
        Ok(Self {
            ordering,
            toss,
            updates,
            platform,
            shutdown,
            tasks,
        })
    }

    /// Creates `count` products with `stock` each and waits until all are in the catalog read
    /// model; returns their ids.
    pub async fn create_products(&self, count: usize, stock: i64) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let name = format!("Bench Cake {i:02}");
            let details = NewProduct {
                description: format!("{name}, baked for the benchmark"),
                name,
                price: 5_000 + 500 * i as i64,
                category: "cake".into(),
                image_url: None,
                initial_stock: stock,
            };
            let product = self
                .ordering
                .inventory
                .inventory
                .create_product(None, details, Metadata::new())
                .await
                .map_err(|e| anyhow::anyhow!("creating product {i}: {e}"))?;
            let id = product
                .id()
                .map(ToString::to_string)
                .context("a created product has an id")?;
            ids.push(id);
        }
        let catalog = &self.ordering.inventory.catalog;
        let started = Instant::now();
        for id in &ids {
            loop {
                if catalog.get(id).await.ok().flatten().is_some() {
                    break;
                }
                if started.elapsed() > CATALOG_TIMEOUT {
                    anyhow::bail!("product {id} did not reach the catalog in {CATALOG_TIMEOUT:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(ids)
    }

    /// The message bus the platform uses.
    pub fn bus(&self) -> std::sync::Arc<dyn bus::MessageBus> {
        self.platform.bus.clone()
    }

    /// Stops every component and waits (briefly) for them to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let all = futures::future::join_all(self.tasks);
        match tokio::time::timeout(STOP_TIMEOUT, all).await {
            Ok(results) => {
                for result in results {
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "component stopped with an error")
                        }
                        Err(err) if err.is_cancelled() => {}
                        Err(err) => tracing::warn!(error = %err, "component panicked"),
                    }
                }
            }
            Err(_) => tracing::warn!("components did not stop within {STOP_TIMEOUT:?}"),
        }
        drop(self.platform);
    }
}
