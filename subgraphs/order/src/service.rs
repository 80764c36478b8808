//! What customers and staff can do with orders, with the checks each needs.

use std::sync::Arc;

use auth::{AuthError, Identity};
use contracts::StockLine;
use contracts::events::PricedLine;
use eventstore::{EventStore, Metadata, Repository, RepositoryError};
use sqlx::AnyPool;
use uuid::Uuid;

use crate::orchestrator::Orchestrator;
use crate::order::{Order, OrderCommand, OrderError, OrderStatus, REFUND_RETRIED, validate_lines};
use crate::pricing::PriceBook;

/// Orders whose states stay in memory between requests.
const ORDERS_CACHED: usize = 20_000;

/// Namespace of order ids derived from (customer, idempotency key).
const ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_722d_6964_656d_706f_7465_6e74);

/// Why an order operation was refused; `code()` is the GraphQL `extensions.code`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Not signed in / not allowed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The order's rules refused it.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// A product cannot be ordered.
    #[error("{0}")]
    Unavailable(String),
    /// Input malformed.
    #[error("{0}")]
    BadInput(String),
    /// The idempotency key already stands for an order of other lines.
    #[error("idempotencyKey was already used for an order of other lines; use a new key")]
    KeyReused,
    /// The customer has as many orders awaiting stock or payment as one may.
    #[error("you have {0} orders awaiting payment; pay for or cancel one before placing another")]
    TooManyOpenOrders(u32),
    /// Infrastructure failed.
    #[error("order service unavailable: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Auth(e) => e.code(),
            Self::Order(e) => e.code(),
            Self::Unavailable(_) => "PRODUCT_NOT_AVAILABLE",
            Self::BadInput(_) => "BAD_USER_INPUT",
            Self::KeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::TooManyOpenOrders(_) => "TOO_MANY_OPEN_ORDERS",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<RepositoryError<OrderError>> for ServiceError {
    fn from(err: RepositoryError<OrderError>) -> Self {
        match err {
            RepositoryError::Domain(e) => Self::Order(e),
            other => {
                tracing::error!(error = %other, "order repository failed");
                Self::Internal(other.code().to_owned())
            }
        }
    }
}

/// The order an idempotency key already stands for, when asked again for the same lines; a
/// key reused for other lines is refused instead of answered with an order not asked for.
fn replayed(order: Order, lines: &[(String, u32)]) -> Result<Order, ServiceError> {
    let mut asked: Vec<(&str, u32)> = lines.iter().map(|(p, q)| (p.as_str(), *q)).collect();
    let mut placed: Vec<(&str, u32)> = order
        .lines
        .iter()
        .map(|l| (l.line.product_id.as_str(), l.line.quantity))
        .collect();
    asked.sort_unstable();
    placed.sort_unstable();
    if asked == placed {
        Ok(order)
    } else {
        Err(ServiceError::KeyReused)
    }
}

/// A staff step on the order board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffStep {
    /// Accept a paid order.
    Accept,
    /// Start preparing.
    StartPreparing,
    /// Ready for pick-up.
    MarkReady,
    /// Handed over.
    Complete,
}

/// How many orders awaiting stock or payment one customer may have at once, so that nobody
/// holds back the shop's stock with orders never paid for.
#[derive(Clone)]
pub struct OpenOrderLimit {
    /// The read-model database with the orders (`rm_orders_orders`).
    pub read_models: AnyPool,
    /// Most open orders per customer.
    pub max: u32,
    /// How far back an order can still be open (the payment timeout, and some).
    pub window: chrono::Duration,
}

/// Order operations.
#[derive(Clone)]
pub struct OrderService {
    orders: Repository<Order>,
    prices: PriceBook,
    saga: Option<Arc<Orchestrator>>,
    open_limit: Option<OpenOrderLimit>,
}

impl OrderService {
    /// A service over `store`, pricing from `prices`.
    pub fn new(store: Arc<dyn EventStore>, prices: PriceBook) -> Self {
        Self {
            orders: Repository::new(store)
                .with_max_attempts(20)
                .with_cache(ORDERS_CACHED),
            prices,
            saga: None,
            open_limit: None,
        }
    }

    /// The service refusing a customer's new order while they have `limit.max` open ones
    /// (counted in the orders read model, so a burst faster than its projection may pass a
    /// few more).
    pub fn with_open_order_limit(mut self, limit: OpenOrderLimit) -> Self {
        self.open_limit = Some(limit);
        self
    }

    /// The service placing orders through `saga` (built on [`OrderService::repository`]): a
    /// placed order and its saga's first step are written together, and stock is reserved
    /// without the order first travelling over the bus.
    pub fn with_saga(mut self, saga: Arc<Orchestrator>) -> Self {
        self.saga = Some(saga);
        self
    }

    /// The repository of orders this service writes through (clones share its state cache).
    pub fn repository(&self) -> Repository<Order> {
        self.orders.clone()
    }

    /// The order id a customer's idempotency key stands for.
    pub fn order_id_for(customer: &str, idempotency_key: &str) -> String {
        Uuid::new_v5(
            &ORDER_NAMESPACE,
            format!("{customer}\u{0}{idempotency_key}").as_bytes(),
        )
        .to_string()
    }

    /// Places an order for the caller with server-side prices; the same idempotency key
    /// returns the same order.
    pub async fn place(
        &self,
        identity: Option<&Identity>,
        lines: Vec<(String, u32)>,
        idempotency_key: &str,
    ) -> Result<Order, ServiceError> {
        let me = auth::require(identity)?;
        let key = idempotency_key.trim();
        if key.is_empty() || key.chars().count() > 128 || key.chars().any(char::is_control) {
            return Err(ServiceError::BadInput(
                "idempotencyKey must be 1 to 128 printable characters".into(),
            ));
        }
        validate_lines(&lines)?;
        let order_id = Self::order_id_for(&me.sub, key);
        // A new key is the common case: the order's stream is not read first (the append
        // expects no stream, and a retried key finds its order then).
        if self.orders.current_or_empty(&order_id)?.version > 0 {
            // A retried key: its order as stored now (another replica's saga may have moved it
            // on since this one cached it).
            return replayed(self.orders.load(&order_id).await?.state, &lines);
        }
        if let Some(limit) = &self.open_limit {
            let since = chrono::Utc::now() - limit.window;
            let open =
                crate::orders_view::open_orders(&limit.read_models, &me.sub, since, limit.max)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "counting open orders failed");
                        ServiceError::Internal("READ_MODEL_UNAVAILABLE".into())
                    })?;
            if open >= limit.max {
                // A retried key whose order this replica has not cached is one of those open
                // orders: it is answered, not refused.
                let existing = self.orders.load(&order_id).await?;
                if existing.version > 0 {
                    return replayed(existing.state, &lines);
                }
                return Err(ServiceError::TooManyOpenOrders(open));
            }
        }
        let priced = match self.price(&lines).await {
            Ok(priced) => priced,
            Err(err) => {
                // A retried key returns its order even if the products went off sale since.
                let existing = self.orders.load(&order_id).await?;
                if existing.version > 0 {
                    return replayed(existing.state, &lines);
                }
                return Err(err);
            }
        };
        let command = OrderCommand::Place {
            order_id: order_id.clone(),
            customer_id: me.sub.clone(),
            lines: priced,
        };
        let metadata = Metadata::new().with_user(&me.sub);
        if let Some(saga) = &self.saga {
            match saga
                .place(&order_id, command.clone(), metadata.clone())
                .await
            {
                Ok(Some(order)) => {
                    metrics::counter!("orders_placed_total").increment(1);
                    return Ok(order);
                }
                // It exists, or it is refused: decided below like any order.
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(order_id, error = %err, "placing the order with its saga failed");
                    let code = match &err {
                        crate::orchestrator::OrchestratorError::Store(e) => e.code(),
                        _ => "SAGA_UNAVAILABLE",
                    };
                    return Err(ServiceError::Internal(code.to_owned()));
                }
            }
        }
        let done = self
            .orders
            .execute_new(&order_id, command, metadata)
            .await?;
        if done.events.is_empty() {
            tracing::debug!(order_id, "idempotency key seen before: the order exists");
            return replayed(done.state, &lines);
        }
        metrics::counter!("orders_placed_total").increment(1);
        Ok(done.state)
    }

    /// The lines with their current catalog prices; refused unless every product is on sale.
    async fn price(&self, lines: &[(String, u32)]) -> Result<Vec<PricedLine>, ServiceError> {
        let ids: Vec<String> = lines.iter().map(|(id, _)| id.clone()).collect();
        let prices = self
            .prices
            .prices(&ids)
            .await
            .map_err(|e| ServiceError::Internal(format!("catalog: {e}")))?;
        let mut priced = Vec::with_capacity(lines.len());
        for (product_id, quantity) in lines {
            let Some(p) = prices.get(product_id) else {
                return Err(ServiceError::Unavailable(format!(
                    "unknown product {product_id}"
                )));
            };
            if p.status != "ON_SALE" {
                return Err(ServiceError::Unavailable(format!(
                    "{} is not on sale ({})",
                    p.name, p.status
                )));
            }
            priced.push(PricedLine {
                line: StockLine {
                    product_id: product_id.clone(),
                    quantity: *quantity,
                },
                product_name: p.name.clone(),
                unit_price: p.price,
            });
        }
        Ok(priced)
    }

    /// An order, if the caller may see it (its customer or staff).
    pub async fn get(
        &self,
        identity: Option<&Identity>,
        order_id: &str,
    ) -> Result<Order, ServiceError> {
        self.get_at_least(identity, order_id, 0).await
    }

    /// Like [`OrderService::get`] for a caller told that the order's stream reached `version`
    /// (an [`crate::updates::OrderChanged`]): a state this process holds that is at least that
    /// new is answered without reading the stream.
    pub async fn get_at_least(
        &self,
        identity: Option<&Identity>,
        order_id: &str,
        version: u64,
    ) -> Result<Order, ServiceError> {
        let me = auth::require(identity)?;
        let loaded = self.load_at_least(order_id, version).await?;
        if loaded.customer_id != me.sub && !me.is_staff() {
            // Same answer as a missing order: do not reveal that it exists.
            return Err(OrderError::NotFound.into());
        }
        Ok(loaded)
    }

    async fn load(&self, order_id: &str) -> Result<Order, ServiceError> {
        self.load_at_least(order_id, 0).await
    }

    async fn load_at_least(&self, order_id: &str, version: u64) -> Result<Order, ServiceError> {
        if Uuid::parse_str(order_id).is_err() {
            return Err(OrderError::NotFound.into());
        }
        let loaded = self.orders.load_at_least(order_id, version).await?;
        if loaded.state.status == OrderStatus::New {
            return Err(OrderError::NotFound.into());
        }
        Ok(loaded.state)
    }

    /// The customer cancels their own order (before the shop accepted it).
    pub async fn cancel(
        &self,
        identity: Option<&Identity>,
        order_id: &str,
        reason: Option<String>,
    ) -> Result<Order, ServiceError> {
        let order = self.get(identity, order_id).await?;
        let me = auth::require(identity)?;
        if order.customer_id != me.sub {
            return Err(AuthError::Forbidden("only the customer can cancel; staff reject").into());
        }
        let reason = match reason.as_deref().map(str::trim) {
            None | Some("") => "cancelled by the customer".to_owned(),
            Some(given) => given.to_owned(),
        };
        if reason.chars().count() > 500 {
            return Err(ServiceError::BadInput(
                "reason is longer than 500 characters".into(),
            ));
        }
        let done = self
            .orders
            .execute(
                order_id,
                OrderCommand::Cancel { reason },
                Metadata::new().with_user(&me.sub),
            )
            .await?;
        Ok(done.state)
    }

    /// Staff rejects an order, up to READY (refunded by the saga when paid).
    pub async fn reject(
        &self,
        identity: Option<&Identity>,
        order_id: &str,
        reason: String,
    ) -> Result<Order, ServiceError> {
        let me = auth::require_staff(identity)?;
        let reason = reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(ServiceError::BadInput(
                "reason must be 1 to 500 characters".into(),
            ));
        }
        self.load(order_id).await?;
        let done = self
            .orders
            .execute(
                order_id,
                OrderCommand::Reject { reason },
                Metadata::new().with_user(&me.sub),
            )
            .await?;
        Ok(done.state)
    }

    /// Staff has a refund Toss refused (REFUND_FAILED) tried again, under a new refund id: the
    /// order goes back to the status it was refunding from until the saga hears from Toss.
    /// Asking again while that retry is under way changes nothing.
    pub async fn retry_refund(
        &self,
        identity: Option<&Identity>,
        order_id: &str,
    ) -> Result<Order, ServiceError> {
        auth::require_staff(identity)?;
        let order = self.load(order_id).await?;
        // Asked again while the retry is under way: the order went back from REFUND_FAILED.
        let retrying = order.paid
            && matches!(
                order.timeline.as_slice(),
                [.., before, last] if before.status == OrderStatus::RefundFailed
                    && last.reason.as_deref() == Some(REFUND_RETRIED)
            );
        if retrying {
            return Ok(order);
        }
        if order.status != OrderStatus::RefundFailed {
            return Err(OrderError::WrongStatus {
                status: order.status.as_str(),
                action: "retry the refund",
            }
            .into());
        }
        let Some(saga) = &self.saga else {
            return Err(ServiceError::Internal("SAGA_UNAVAILABLE".into()));
        };
        // One request id per refusal: a request repeated before the order moved asks once.
        let refusals = order
            .timeline
            .iter()
            .filter(|c| c.status == OrderStatus::RefundFailed)
            .count();
        let request_id = Uuid::new_v5(
            &ORDER_NAMESPACE,
            format!("{order_id}\u{0}refund-retry\u{0}{refusals}").as_bytes(),
        );
        let stepped = saga
            .retry_refund(order_id, request_id)
            .await
            .map_err(|err| {
                tracing::error!(order_id, error = %err, "retrying the refund failed");
                ServiceError::Internal("SAGA_UNAVAILABLE".into())
            })?;
        let after = self.load(order_id).await?;
        if !stepped && after.status == OrderStatus::RefundFailed {
            tracing::warn!(order_id, "retryRefund: the saga holds no refused refund");
            return Err(OrderError::WrongStatus {
                status: after.status.as_str(),
                action: "retry the refund: no refused refund is waiting",
            }
            .into());
        }
        Ok(after)
    }

    /// Staff moves an order along the board.
    pub async fn staff_step(
        &self,
        identity: Option<&Identity>,
        order_id: &str,
        step: StaffStep,
    ) -> Result<Order, ServiceError> {
        let me = auth::require_staff(identity)?;
        self.load(order_id).await?;
        let command = match step {
            StaffStep::Accept => OrderCommand::Accept,
            StaffStep::StartPreparing => OrderCommand::StartPreparing,
            StaffStep::MarkReady => OrderCommand::MarkReady,
            StaffStep::Complete => OrderCommand::Complete,
        };
        let done = self
            .orders
            .execute(order_id, command, Metadata::new().with_user(&me.sub))
            .await?;
        Ok(done.state)
    }
}
