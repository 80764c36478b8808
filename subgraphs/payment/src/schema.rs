//! The GraphQL schema (Federation v2): `Payment`, the `Order` entity extended with its
//! `payment`, `payment(orderId)` and `confirmPayment`. Errors carry a stable
//! `extensions.code` (Toss's own code for Toss errors).

use async_graphql::{
    Context, EmptySubscription, Enum, ErrorExtensions, ID, Object, Schema, SimpleObject,
};
use auth::Identity;

use crate::error::PaymentError;
use crate::payment::{Payment, PaymentStatus};
use crate::service::PaymentService;

/// The subgraph's schema.
pub type PaymentSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over `service`.
pub fn schema(service: PaymentService) -> PaymentSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .data(service)
        .limit_depth(12)
        .limit_complexity(1_000)
        .finish()
}

/// The federation SDL of this subgraph.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

fn gql_error(err: PaymentError) -> async_graphql::Error {
    let code = err.code().to_owned();
    let message = match &err {
        PaymentError::Toss(toss) => toss.message.clone(),
        internal if internal.is_internal() => {
            tracing::error!(code = %code, error = %internal, "payment request failed");
            "internal error".to_owned()
        }
        other => other.to_string(),
    };
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

fn identity<'a>(ctx: &Context<'a>) -> Option<&'a Identity> {
    ctx.data_opt::<Option<Identity>>().and_then(Option::as_ref)
}

fn service<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a PaymentService> {
    ctx.data::<PaymentService>()
}

/// Where a payment stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "PaymentStatus")]
pub enum PaymentStatusGql {
    /// The order waits for the customer's payment.
    Requested,
    /// Paid.
    Confirmed,
    /// Part of it was refunded.
    PartiallyRefunded,
    /// All of it was refunded.
    Refunded,
    /// The payment failed.
    Failed,
}

impl From<PaymentStatus> for PaymentStatusGql {
    fn from(status: PaymentStatus) -> Self {
        match status {
            PaymentStatus::New | PaymentStatus::Requested => Self::Requested,
            PaymentStatus::Confirmed => Self::Confirmed,
            PaymentStatus::PartiallyRefunded => Self::PartiallyRefunded,
            PaymentStatus::Refunded => Self::Refunded,
            PaymentStatus::Failed => Self::Failed,
        }
    }
}

/// One refund of a payment.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "PaymentCancellation")]
pub struct CancellationGql {
    /// KRW refunded.
    pub amount: i64,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub canceled_at: String,
}

/// An order's payment through Toss Payments.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Payment")]
pub struct PaymentGql {
    /// The order paid for.
    pub order_id: ID,
    /// Toss's payment key, once confirmed (or the key that failed).
    pub payment_key: Option<String>,
    /// How the customer paid, as Toss names it.
    pub method: Option<String>,
    /// Where the payment stands.
    pub status: PaymentStatusGql,
    /// KRW of the order (what was, or must be, paid).
    pub amount: i64,
    /// KRW not refunded.
    pub balance_amount: i64,
    /// When Toss approved (RFC 3339).
    pub approved_at: Option<String>,
    /// The receipt.
    pub receipt_url: Option<String>,
    /// Refunds, oldest first.
    pub cancellations: Vec<CancellationGql>,
    /// Toss's code when the payment failed.
    pub failure_code: Option<String>,
    /// Toss's message when the payment failed.
    pub failure_reason: Option<String>,
}

impl From<Payment> for PaymentGql {
    fn from(p: Payment) -> Self {
        let (failure_code, failure_reason) = p.failure.unzip();
        Self {
            order_id: ID(p.order_id),
            payment_key: p.payment_key,
            method: p.method,
            status: p.status.into(),
            amount: p.amount,
            balance_amount: if p.status.was_confirmed() {
                p.balance
            } else {
                0
            },
            approved_at: p.approved_at.map(|at| at.to_rfc3339()),
            receipt_url: p.receipt_url,
            cancellations: p
                .refunds
                .into_iter()
                .map(|r| CancellationGql {
                    amount: r.amount,
                    reason: r.reason,
                    canceled_at: r.canceled_at.to_rfc3339(),
                })
                .collect(),
            failure_code,
            failure_reason,
        }
    }
}

/// The order subgraph's `Order` entity, extended here with its payment.
pub struct Order {
    id: ID,
}

#[Object]
impl Order {
    /// The order id.
    async fn id(&self) -> &ID {
        &self.id
    }

    /// The order's payment; null until the customer starts paying. Its customer or staff only.
    async fn payment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<PaymentGql>> {
        let found = service(ctx)?
            .payment(identity(ctx), &self.id)
            .await
            .map_err(gql_error)?;
        Ok(found.map(Into::into))
    }
}

/// Queries.
pub struct Query;

#[Object]
impl Query {
    /// The payment of an order: its customer or staff only; null when nothing was paid yet.
    async fn payment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> async_graphql::Result<Option<PaymentGql>> {
        let found = service(ctx)?
            .payment(identity(ctx), &order_id)
            .await
            .map_err(gql_error)?;
        Ok(found.map(Into::into))
    }

    /// Resolves `Order` references from other subgraphs.
    #[graphql(entity)]
    async fn find_order_by_id(&self, id: ID) -> Order {
        Order { id }
    }
}

/// Mutations.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Confirms the payment the customer authorised in the Toss widget. `amount` must equal
    /// the order's amount exactly; confirming again with the same key returns the payment
    /// without charging twice.
    async fn confirm_payment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        payment_key: String,
        amount: i64,
    ) -> async_graphql::Result<PaymentGql> {
        let paid = service(ctx)?
            .confirm(identity(ctx), &order_id, &payment_key, amount)
            .await
            .map_err(gql_error)?;
        Ok(paid.into())
    }

    /// Staff return part of a confirmed payment (a missing or spoilt item), refunded at Toss;
    /// the order stands. The same idempotency key refunds once. Something must be left: all
    /// of it goes back by cancelling or rejecting the order (up to READY).
    async fn refund_partially(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        amount: i64,
        reason: String,
        idempotency_key: String,
    ) -> async_graphql::Result<PaymentGql> {
        let refunded = service(ctx)?
            .refund_partly(identity(ctx), &order_id, amount, &reason, &idempotency_key)
            .await
            .map_err(gql_error)?;
        Ok(refunded.into())
    }
}
