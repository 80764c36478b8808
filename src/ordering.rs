//! The ordering half of the platform wired together: inventory, order and payment subgraphs,
//! the order saga, and the workers that answer its commands.

use std::sync::Arc;

use anyhow::Context as _;
use inventory::schema::InventoryState;
use order::schema::OrderState;
use order::service::OrderService;
use order::updates::OrderUpdates;
use order::{Orchestrator, SagaConfig};
use payment::PaymentService;
use payment::toss::client::TossClient;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::platform::Platform;

/// Where each subgraph listens.
pub struct Listeners {
    /// The order subgraph.
    pub order: TcpListener,
    /// The inventory subgraph.
    pub inventory: TcpListener,
    /// The payment subgraph.
    pub payment: TcpListener,
}

/// The running ordering components, for callers that drive them directly (tests, benchmarks).
#[derive(Clone)]
pub struct Ordering {
    /// Product and stock commands.
    pub inventory: InventoryState,
    /// Order commands and reads.
    pub orders: OrderService,
    /// Payment commands and reads.
    pub payments: PaymentService,
    /// The saga runner.
    pub orchestrator: Arc<Orchestrator>,
    /// Live "this order changed" signals (the process's one follower of `$all` for them).
    pub updates: OrderUpdates,
}

/// Background tasks of the ordering components.
pub type Tasks = Vec<JoinHandle<anyhow::Result<()>>>;

/// The tasks [`Ordering::start`] spawned; the saga runner is kept apart so it can be stopped
/// and restarted on its own.
pub struct Running {
    /// The saga runner.
    pub saga: JoinHandle<anyhow::Result<()>>,
    /// Everything else.
    pub others: Tasks,
}

impl Running {
    /// All the tasks.
    pub fn into_tasks(self) -> Tasks {
        let mut all = self.others;
        all.push(self.saga);
        all
    }
}

impl Ordering {
    /// Starts the three subgraphs on `listeners`, the saga and the command workers; everything
    /// stops when `shutdown` is cancelled.
    pub async fn start(
        platform: &Platform,
        toss: TossClient,
        saga: SagaConfig,
        listeners: Listeners,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Self, Running)> {
        let store = platform.store.clone();
        let models = platform.read_models.clone();
        let prefix = platform.settings.kafka_topic_prefix.clone();
        let partitions = platform.settings.kafka_partitions;
        let inventory = InventoryState::new(store.clone(), models.clone())
            .await
            .context("starting inventory")?;
        // Confirmed payments reach the saga at once; the relayed events follow.
        let payments = PaymentService::new(store.clone(), models.clone(), toss)
            .await
            .context("starting payment")?
            .with_saga_notice(platform.bus.clone(), &prefix);
        let orders = OrderService::new(
            store.clone(),
            order::pricing::PriceBook::new(models.pool().clone()),
        );
        models.register(&order::orders_view::OrdersView).await?;
        let (updates, follower) = OrderUpdates::follow(store.clone()).await?;
        let orchestrator = Orchestrator::sharing_orders(
            store.clone(),
            platform.bus.clone(),
            models.pool().clone(),
            SagaConfig {
                topic_prefix: prefix.clone(),
                partitions,
                group: format!("{prefix}{}", saga.group),
                ..saga
            },
            orders.repository(),
        )
        .await?;
        // Placing an order starts its saga at once (no trip over the bus first).
        let orders = orders.with_saga(orchestrator.clone());

        let mut tasks: Tasks = Vec::new();
        let order_schema = order::schema::schema(OrderState {
            service: orders.clone(),
            read_models: models.pool().clone(),
            updates: updates.clone(),
        });
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            order::server::run(listeners.order, order_schema, stop.cancelled_owned())
                .await
                .context("order subgraph")
        }));
        let (state, stop) = (inventory.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            inventory::server::run(listeners.inventory, state, stop.cancelled_owned())
                .await
                .context("inventory subgraph")
        }));
        let (service, stop) = (payments.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            payment::server::run(listeners.payment, service, stop.cancelled_owned())
                .await
                .context("payment subgraph")
        }));
        let (saga, stop) = (orchestrator.clone(), shutdown.clone());
        let saga_task =
            tokio::spawn(
                async move { saga.run(stop.cancelled_owned()).await.context("order saga") },
            );
        let (bus, state, stop, p) = (
            platform.bus.clone(),
            inventory.clone(),
            shutdown.clone(),
            prefix.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let topic = format!("{p}{}", contracts::INVENTORY_COMMANDS);
            let replies = format!("{p}{}", contracts::SAGA_REPLIES);
            crate::workers::run_command_worker(
                bus,
                &format!("{p}inventory-commands"),
                &topic,
                &replies,
                partitions,
                move |envelope| {
                    let inventory = state.inventory.clone();
                    async move {
                        inventory.handle(envelope).await.map_err(|err| {
                            if err.code() == "BAD_USER_INPUT" {
                                crate::workers::Failure::Permanent(err.to_string())
                            } else {
                                crate::workers::Failure::Transient(err.to_string())
                            }
                        })
                    }
                },
                stop.cancelled_owned(),
            )
            .await
            .context("inventory command worker")
        }));
        let (bus, service, stop) = (platform.bus.clone(), payments.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            // Payment's own consumer: its replies keep ids derived from the command's.
            payment::commands::run_commands(
                bus,
                service,
                &format!("{prefix}payment-commands"),
                &prefix,
                partitions,
                stop.cancelled_owned(),
            )
            .await
            .context("payment command worker")
        }));
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            stop.cancelled().await;
            follower.abort();
            Ok(())
        }));
        Ok((
            Self {
                inventory,
                orders,
                payments,
                orchestrator,
                updates,
            },
            Running {
                saga: saga_task,
                others: tasks,
            },
        ))
    }
}
