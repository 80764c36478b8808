//! The order subgraph's GraphQL schema (Federation v2): `Order @key(id)`, queries, customer and
//! staff mutations, and the `orderUpdated` subscription.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{
    Context, Enum, ErrorExtensions, ID, InputObject, Object, Schema, SimpleObject, Subscription,
};
use auth::Identity;
use futures::Stream;
use sqlx::AnyPool;

use crate::order::{Order, OrderStatus as DomainStatus};
use crate::orders_view::OrderCursor;
use crate::service::{OrderService, ServiceError, StaffStep};
use crate::updates::OrderUpdates;

/// The executable schema.
pub type OrderSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// What resolvers need.
#[derive(Clone)]
pub struct OrderState {
    /// Commands and reads of single orders.
    pub service: OrderService,
    /// The read-model database (order lists).
    pub read_models: AnyPool,
    /// Live updates.
    pub updates: OrderUpdates,
}

/// Builds the schema.
pub fn schema(state: OrderState) -> OrderSchema {
    Schema::build(Query, Mutation, SubscriptionRoot)
        .enable_federation()
        .enable_subscription_in_federation()
        .data(state)
        .limit_depth(12)
        .limit_complexity(2_000)
        .finish()
}

/// The federation SDL of this subgraph.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, SubscriptionRoot)
        .enable_federation()
        .enable_subscription_in_federation()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

fn gql_error(err: ServiceError) -> async_graphql::Error {
    let code = err.code();
    let message = match &err {
        ServiceError::Internal(_) => "internal error".to_owned(),
        other => other.to_string(),
    };
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

fn identity<'a>(ctx: &Context<'a>) -> Option<&'a Identity> {
    ctx.data_opt::<Option<Identity>>().and_then(Option::as_ref)
}

fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a OrderState> {
    ctx.data::<OrderState>()
}

/// Order status as clients see it.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "OrderStatus")]
pub enum OrderStatusGql {
    /// Placed; stock not reserved yet.
    Placed,
    /// Stock reserved.
    StockReserved,
    /// Waiting for payment.
    PaymentPending,
    /// Paid.
    Paid,
    /// Accepted by the shop.
    Accepted,
    /// Being prepared.
    Preparing,
    /// Ready for pick-up.
    Ready,
    /// Picked up.
    Completed,
    /// Cancelled.
    Cancelled,
    /// Rejected.
    Rejected,
    /// Refunded.
    Refunded,
    /// Payment did not arrive in time.
    Expired,
    /// Cancelled, rejected or expired while paid, and Toss refused the refund for good: the
    /// money is still taken and staff must see to it (the reason says why).
    RefundFailed,
}

impl From<DomainStatus> for OrderStatusGql {
    fn from(s: DomainStatus) -> Self {
        match s {
            DomainStatus::New | DomainStatus::Placed => Self::Placed,
            DomainStatus::StockReserved => Self::StockReserved,
            DomainStatus::PaymentPending => Self::PaymentPending,
            DomainStatus::Paid => Self::Paid,
            DomainStatus::Accepted => Self::Accepted,
            DomainStatus::Preparing => Self::Preparing,
            DomainStatus::Ready => Self::Ready,
            DomainStatus::Completed => Self::Completed,
            DomainStatus::Cancelled => Self::Cancelled,
            DomainStatus::Rejected => Self::Rejected,
            DomainStatus::Refunded => Self::Refunded,
            DomainStatus::Expired => Self::Expired,
            DomainStatus::RefundFailed => Self::RefundFailed,
        }
    }
}

impl From<OrderStatusGql> for DomainStatus {
    fn from(s: OrderStatusGql) -> Self {
        use OrderStatusGql as G;
        match s {
            G::Placed => Self::Placed,
            G::StockReserved => Self::StockReserved,
            G::PaymentPending => Self::PaymentPending,
            G::Paid => Self::Paid,
            G::Accepted => Self::Accepted,
            G::Preparing => Self::Preparing,
            G::Ready => Self::Ready,
            G::Completed => Self::Completed,
            G::Cancelled => Self::Cancelled,
            G::Rejected => Self::Rejected,
            G::Refunded => Self::Refunded,
            G::Expired => Self::Expired,
            G::RefundFailed => Self::RefundFailed,
        }
    }
}

/// A product owned by the inventory subgraph (referenced here by key only).
#[derive(SimpleObject, Clone)]
#[graphql(name = "Product", unresolvable = "id")]
pub struct ProductRef {
    /// The product id.
    pub id: ID,
}

/// One line of an order.
#[derive(SimpleObject, Clone)]
pub struct OrderLine {
    /// The product.
    pub product: ProductRef,
    /// Its name at order time.
    pub product_name: String,
    /// Units.
    pub quantity: i32,
    /// KRW per unit at order time.
    pub unit_price: i64,
    /// KRW for the line.
    pub subtotal: i64,
}

/// One step of an order's timeline.
#[derive(SimpleObject, Clone)]
pub struct StatusChangeGql {
    /// The status entered.
    pub status: OrderStatusGql,
    /// When (RFC 3339).
    pub at: String,
    /// Why, where there is a reason.
    pub reason: Option<String>,
}

/// The reason a customer sees for a refund Toss refused (staff see Toss's code and message).
pub const REFUND_FAILED_FOR_CUSTOMERS: &str =
    "the refund has not gone through yet; the shop has been told and will see to it";

/// An order.
#[derive(Clone)]
pub struct OrderGql(pub Order);

#[Object(name = "Order")]
impl OrderGql {
    /// The order id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Cognito `sub` of the customer.
    async fn customer_id(&self) -> &str {
        &self.0.customer_id
    }
    /// Lines with prices at order time.
    async fn lines(&self) -> Vec<OrderLine> {
        self.0
            .lines
            .iter()
            .map(|l| OrderLine {
                product: ProductRef {
                    id: ID(l.line.product_id.clone()),
                },
                product_name: l.product_name.clone(),
                quantity: l.line.quantity as i32,
                unit_price: l.unit_price,
                subtotal: l.unit_price * i64::from(l.line.quantity),
            })
            .collect()
    }
    /// KRW, computed by the server.
    async fn total(&self) -> i64 {
        self.0.total
    }
    /// Current status.
    async fn status(&self) -> OrderStatusGql {
        self.0.status.into()
    }
    /// Every status entered, oldest first. A refused refund's reason (Toss's code and message)
    /// is for staff; its customer is told the shop will see to it.
    async fn timeline(&self, ctx: &Context<'_>) -> Vec<StatusChangeGql> {
        let staff = identity(ctx).is_some_and(Identity::is_staff);
        self.0
            .timeline
            .iter()
            .map(|c| StatusChangeGql {
                status: c.status.into(),
                at: c.at.to_rfc3339(),
                reason: match c.status {
                    DomainStatus::RefundFailed if !staff => {
                        Some(REFUND_FAILED_FOR_CUSTOMERS.to_owned())
                    }
                    _ => c.reason.clone(),
                },
            })
            .collect()
    }
    /// When it was placed (RFC 3339).
    async fn placed_at(&self) -> Option<String> {
        self.0.timeline.first().map(|c| c.at.to_rfc3339())
    }
}

/// A line as the customer sends it.
#[derive(InputObject)]
pub struct OrderLineInput {
    /// The product.
    pub product_id: ID,
    /// Units, 1 to 99.
    pub quantity: i32,
}

/// What to order.
#[derive(InputObject)]
pub struct PlaceOrderInput {
    /// 1 to 50 lines.
    pub lines: Vec<OrderLineInput>,
}

/// Queries.
pub struct Query;

fn page_size(first: Option<i32>) -> async_graphql::Result<usize> {
    match first.unwrap_or(20) {
        n @ 1..=100 => Ok(n as usize),
        _ => Err(async_graphql::Error::new("first must be 1 to 100")
            .extend_with(|_, e| e.set("code", "BAD_USER_INPUT"))),
    }
}

async fn order_connection(
    ctx: &Context<'_>,
    customer: Option<&str>,
    status: Option<OrderStatusGql>,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<Connection<String, OrderGql, EmptyFields, EmptyFields>> {
    let st = state(ctx)?;
    let first = page_size(first)?;
    let after = match after.as_deref() {
        None => None,
        Some(raw) => Some(OrderCursor::decode(raw).ok_or_else(|| {
            async_graphql::Error::new("after is not a cursor this API returned").extend_with(
                |_, e| {
                    e.set("code", "BAD_USER_INPUT");
                    e.set("field", "after");
                },
            )
        })?),
    };
    let status = status.map(|s| DomainStatus::from(s).as_str());
    let page =
        crate::orders_view::list_orders(&st.read_models, customer, status, after.as_ref(), first)
            .await
            .map_err(|e| gql_error(ServiceError::Internal(e.to_string())))?;
    let mut connection = Connection::new(after.is_some(), page.has_next);
    connection.edges.extend(
        page.rows
            .into_iter()
            .map(|(order, cursor)| Edge::new(cursor.encode(), OrderGql(order))),
    );
    Ok(connection)
}

#[Object]
impl Query {
    /// One order: its customer's or, for staff, any.
    async fn order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderGql> {
        let st = state(ctx)?;
        st.service
            .get(identity(ctx), &id)
            .await
            .map(OrderGql)
            .map_err(gql_error)
    }

    /// The caller's orders, newest first.
    async fn my_orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, OrderGql, EmptyFields, EmptyFields>> {
        let me = auth::require(identity(ctx)).map_err(|e| gql_error(e.into()))?;
        order_connection(ctx, Some(&me.sub), None, first, after).await
    }

    /// Every order (staff), newest first, optionally of one status.
    async fn orders(
        &self,
        ctx: &Context<'_>,
        status: Option<OrderStatusGql>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, OrderGql, EmptyFields, EmptyFields>> {
        auth::require_staff(identity(ctx)).map_err(|e| gql_error(e.into()))?;
        order_connection(ctx, None, status, first, after).await
    }

    /// Resolves `Order` references for the gateway.
    #[graphql(entity)]
    async fn find_order_by_id(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderGql> {
        let st = state(ctx)?;
        st.service
            .get(identity(ctx), &id)
            .await
            .map(OrderGql)
            .map_err(gql_error)
    }
}

/// Mutations.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Places an order; prices come from the catalog. The same idempotency key returns the same
    /// order; reused for other lines it is refused (`IDEMPOTENCY_KEY_REUSED`).
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        input: PlaceOrderInput,
        idempotency_key: String,
    ) -> async_graphql::Result<OrderGql> {
        let st = state(ctx)?;
        let mut lines = Vec::with_capacity(input.lines.len());
        for l in input.lines {
            let quantity = u32::try_from(l.quantity).map_err(|_| {
                gql_error(ServiceError::BadInput(format!(
                    "quantity of {} must be 1 to 99",
                    l.product_id.0
                )))
            })?;
            lines.push((l.product_id.0, quantity));
        }
        st.service
            .place(identity(ctx), lines, &idempotency_key)
            .await
            .map(OrderGql)
            .map_err(gql_error)
    }

    /// The customer cancels their order before the shop accepts it (refunded if paid).
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> async_graphql::Result<OrderGql> {
        let st = state(ctx)?;
        st.service
            .cancel(identity(ctx), &id, reason)
            .await
            .map(OrderGql)
            .map_err(gql_error)
    }

    /// Staff accepts a paid order.
    async fn accept_order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderGql> {
        step(ctx, &id, StaffStep::Accept).await
    }

    /// Staff starts preparing.
    async fn start_preparing(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderGql> {
        step(ctx, &id, StaffStep::StartPreparing).await
    }

    /// Staff marks it ready.
    async fn mark_ready(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderGql> {
        step(ctx, &id, StaffStep::MarkReady).await
    }

    /// Staff hands it over.
    async fn complete_order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderGql> {
        step(ctx, &id, StaffStep::Complete).await
    }

    /// Staff rejects an order up to READY (refunded if paid; a made order's units stay sold).
    async fn reject_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> async_graphql::Result<OrderGql> {
        let st = state(ctx)?;
        st.service
            .reject(identity(ctx), &id, reason)
            .await
            .map(OrderGql)
            .map_err(gql_error)
    }

    /// Staff has a refund Toss refused (REFUND_FAILED) tried again: the order goes back to
    /// refunding, then REFUNDED, or REFUND_FAILED with Toss's new answer.
    async fn retry_refund(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderGql> {
        let st = state(ctx)?;
        st.service
            .retry_refund(identity(ctx), &id)
            .await
            .map(OrderGql)
            .map_err(gql_error)
    }
}

async fn step(ctx: &Context<'_>, id: &str, step: StaffStep) -> async_graphql::Result<OrderGql> {
    let st = state(ctx)?;
    st.service
        .staff_step(identity(ctx), id, step)
        .await
        .map(OrderGql)
        .map_err(gql_error)
}

/// Subscriptions.
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The order now, then again after every change, until it is settled: a paid order that
    /// is cancelled, rejected or expired goes on to REFUNDED (or waits at REFUND_FAILED); one
    /// closed unpaid while awaiting payment is followed two minutes more, for the refund of a
    /// payment that was under way.
    async fn order_updated(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<OrderGql>> + use<>> {
        let st = state(ctx)?.clone();
        let who = identity(ctx).cloned();
        // Listen before reading, so no change between the read and the first wait is missed.
        let changes = st.updates.subscribe();
        let first = st
            .service
            .get(who.as_ref(), &order_id)
            .await
            .map_err(gql_error)?;
        let watch = Watch {
            st,
            who,
            id: order_id.0,
            changes,
            first: Some(first),
            seen: 0,
            done: false,
            linger_until: None,
        };
        Ok(futures::stream::unfold(watch, Watch::next))
    }
}

/// The state of one `orderUpdated` subscription.
struct Watch {
    st: OrderState,
    who: Option<Identity>,
    id: String,
    changes: tokio::sync::broadcast::Receiver<crate::updates::OrderChanged>,
    first: Option<Order>,
    seen: usize,
    done: bool,
    /// Closed unpaid while awaiting payment: followed until then for a late payment's refund.
    linger_until: Option<tokio::time::Instant>,
}

/// How long an order closed unpaid while awaiting payment is still followed: a confirm under
/// way at Toss then (its retries and lookup take up to about this long) may still be recorded,
/// and refunded.
const LATE_PAYMENT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

impl Watch {
    async fn next(mut self) -> Option<(async_graphql::Result<OrderGql>, Self)> {
        use tokio::sync::broadcast::error::RecvError;
        if self.done {
            return None;
        }
        if let Some(order) = self.first.take() {
            return Some(self.emit(order));
        }
        loop {
            let received = match self.linger_until {
                Some(until) => match tokio::time::timeout_at(until, self.changes.recv()).await {
                    Ok(received) => received,
                    Err(_) => return None,
                },
                None => self.changes.recv().await,
            };
            let version = match received {
                Ok(changed) if *changed.order_id != *self.id => continue,
                Ok(changed) => changed.version,
                Err(RecvError::Lagged(_)) => 0,
                Err(RecvError::Closed) => return None,
            };
            let service = &self.st.service;
            match service
                .get_at_least(self.who.as_ref(), &self.id, version)
                .await
            {
                // Several events of one change arrive together: emit each state once.
                Ok(order) if order.timeline.len() == self.seen => continue,
                Ok(order) => return Some(self.emit(order)),
                Err(err) => {
                    self.done = true;
                    return Some((Err(gql_error(err)), self));
                }
            }
        }
    }

    fn emit(mut self, order: Order) -> (async_graphql::Result<OrderGql>, Self) {
        self.seen = order.timeline.len();
        let late = order.settled() && order.may_see_late_payment();
        self.done = order.settled() && !late;
        if late && self.linger_until.is_none() {
            self.linger_until = Some(tokio::time::Instant::now() + LATE_PAYMENT_WAIT);
        }
        (Ok(OrderGql(order)), self)
    }
}
