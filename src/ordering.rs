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
use crate::settings::Settings;

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
        let mut tasks: Tasks = Vec::new();
        let started = async {
            let (inventory, workers) = start_inventory(platform, shutdown.clone()).await?;
            tasks.extend(workers);
            let (payments, workers) = start_payment(platform, toss, shutdown.clone()).await?;
            tasks.extend(workers);
            let (order, running) = start_order(platform, saga, shutdown.clone()).await?;
            tasks.extend(running.others);
            anyhow::Ok((inventory, payments, order, running.saga))
        }
        .await;
        let (inventory, payments, order, saga_task) = match started {
            Ok(started) => started,
            Err(err) => {
                // Nothing is left running of a start that failed.
                for task in &tasks {
                    task.abort();
                }
                return Err(err);
            }
        };
        let settings = &platform.settings;
        tasks.push(serve(
            settings,
            listeners.order,
            order.router,
            &shutdown,
            "order",
        ));
        tasks.push(serve(
            settings,
            listeners.inventory,
            inventory::server::router(inventory.clone()),
            &shutdown,
            "inventory",
        ));
        tasks.push(serve(
            settings,
            listeners.payment,
            payment::server::router(payments.clone()),
            &shutdown,
            "payment",
        ));
        Ok((
            Self {
                inventory,
                orders: order.orders,
                payments,
                orchestrator: order.orchestrator,
                updates: order.updates,
            },
            Running {
                saga: saga_task,
                others: tasks,
            },
        ))
    }
}

/// Serves the `name` subgraph's `router` on `listener` until `shutdown` is cancelled, behind
/// the gateway's signature when `settings` have an `IDENTITY_SECRET`
/// ([`subgraph::verify_identities`]).
pub fn serve(
    settings: &Settings,
    listener: TcpListener,
    router: axum::Router,
    shutdown: &CancellationToken,
    name: &'static str,
) -> JoinHandle<anyhow::Result<()>> {
    let signer = settings.identity_signer();
    let exposed = listener.local_addr().is_ok_and(|a| !a.ip().is_loopback());
    if signer.is_none() && exposed {
        tracing::warn!(
            subgraph = name,
            "serving beyond loopback with IDENTITY_SECRET unset: anyone who reaches this port can claim any identity"
        );
    }
    let router = subgraph::verify_identities(router, signer);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        subgraph::serve(listener, router, name, stop.cancelled_owned())
            .await
            .with_context(|| format!("{name} subgraph"))
    })
}

/// Starts the inventory subgraph's state and the worker that answers the saga's stock commands
/// (reserve, release, commit).
pub async fn start_inventory(
    platform: &Platform,
    shutdown: CancellationToken,
) -> anyhow::Result<(InventoryState, Tasks)> {
    let prefix = platform.settings.kafka_topic_prefix.clone();
    let partitions = platform.settings.kafka_partitions;
    let inventory = InventoryState::new(platform.store.clone(), platform.read_models.clone())
        .await
        .context("starting inventory")?;
    let (bus, state) = (platform.bus.clone(), inventory.clone());
    let worker = tokio::spawn(async move {
        let topic = format!("{prefix}{}", contracts::INVENTORY_COMMANDS);
        let replies = format!("{prefix}{}", contracts::SAGA_REPLIES);
        crate::workers::run_command_worker(
            bus,
            &format!("{prefix}inventory-commands"),
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
            shutdown.cancelled_owned(),
        )
        .await
        .context("inventory command worker")
    });
    Ok((inventory, vec![worker]))
}

/// Starts the payment service (confirmations through `toss`, which also tell the saga at once)
/// and the worker that answers the saga's refund commands.
pub async fn start_payment(
    platform: &Platform,
    toss: TossClient,
    shutdown: CancellationToken,
) -> anyhow::Result<(PaymentService, Tasks)> {
    let prefix = platform.settings.kafka_topic_prefix.clone();
    let partitions = platform.settings.kafka_partitions;
    // Confirmed payments reach the saga at once; the relayed events follow.
    let payments = PaymentService::new(platform.store.clone(), platform.read_models.clone(), toss)
        .await
        .context("starting payment")?
        .with_saga_notice(platform.bus.clone(), &prefix);
    let (bus, service) = (platform.bus.clone(), payments.clone());
    let worker = tokio::spawn(async move {
        // Payment's own consumer: its replies keep ids derived from the command's.
        payment::commands::run_commands(
            bus,
            service,
            &format!("{prefix}payment-commands"),
            &prefix,
            partitions,
            shutdown.cancelled_owned(),
        )
        .await
        .context("payment command worker")
    });
    Ok((payments, vec![worker]))
}

/// The order side, started: its service, the saga runner, the change signals and the
/// subgraph's routes.
pub struct OrderSide {
    /// Order commands and reads (placing an order starts its saga at once).
    pub orders: OrderService,
    /// The saga runner.
    pub orchestrator: Arc<Orchestrator>,
    /// Live "this order changed" signals.
    pub updates: OrderUpdates,
    /// The order subgraph's routes.
    pub router: axum::Router,
}

/// Starts the order service, its saga runner and the follower of order changes; the saga runs
/// until `shutdown` is cancelled.
pub async fn start_order(
    platform: &Platform,
    saga: SagaConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<(OrderSide, Running)> {
    let store = platform.store.clone();
    let models = platform.read_models.clone();
    let prefix = platform.settings.kafka_topic_prefix.clone();
    let orders = OrderService::new(
        store.clone(),
        order::pricing::PriceBook::new(models.pool().clone()),
    )
    .with_open_order_limit(order::service::OpenOrderLimit {
        read_models: models.pool().clone(),
        max: platform.settings.order_max_open_per_customer,
        // An order is open until its payment times out; a minute more for the saga's clock.
        window: saga.payment_timeout + chrono::Duration::minutes(1),
    });
    let generation = models.register(&order::orders_view::OrdersView).await?;
    order::orders_view::ensure_open_orders_index(models.pool(), generation).await?;
    let (updates, follower) = OrderUpdates::follow(store.clone()).await?;
    let orchestrator = Orchestrator::sharing_orders(
        store,
        platform.bus.clone(),
        models.pool().clone(),
        SagaConfig {
            topic_prefix: prefix.clone(),
            partitions: platform.settings.kafka_partitions,
            group: format!("{prefix}{}", saga.group),
            ..saga
        },
        orders.repository(),
    )
    .await
    .inspect_err(|_| follower.abort())?;
    // Placing an order starts its saga at once (no trip over the bus first).
    let orders = orders.with_saga(orchestrator.clone());
    let router = order::server::router(order::schema::schema(OrderState {
        service: orders.clone(),
        read_models: models.pool().clone(),
        updates: updates.clone(),
    }));
    let (runner, stop) = (orchestrator.clone(), shutdown.clone());
    let saga_task = tokio::spawn(async move {
        runner
            .run(stop.cancelled_owned())
            .await
            .context("order saga")
    });
    let follower_stop = tokio::spawn(async move {
        shutdown.cancelled().await;
        follower.abort();
        Ok(())
    });
    Ok((
        OrderSide {
            orders,
            orchestrator,
            updates,
            router,
        },
        Running {
            saga: saga_task,
            others: vec![follower_stop],
        },
    ))
}
