//! The payment subgraph: the `Payment` entity, Toss Payments confirmation, cancellation and
//! webhooks, and the Toss-compatible test server used by tests and the embedded mode.
//!
//! Layout: [`toss`] (the Toss API client, its objects and errors, and the test server),
//! [`payment`] (the event-sourced `Payment` aggregate, stream `payment-{order_id}`),
//! [`payable`] (the read model of orders awaiting payment), [`service`] (the use cases:
//! confirm, show, refund for the saga), [`reconcile`] (recording what Toss says, for
//! webhooks), `refund_turn` (one refund of an order at a time), [`commands`] (the saga's
//! command consumer on the bus), [`webhook`] (Toss webhooks), [`schema`](mod@schema)
//! (GraphQL, Federation v2), [`server`] (HTTP) and [`error`].
//!
//! It never trusts an amount from a client: the confirmed amount must equal the order's, read
//! from the order's own events. It never calls another subgraph, and never logs the Toss
//! secret key. The domain ([`payment`]) knows nothing of HTTP, SQL or GraphQL.

pub mod commands;
pub mod error;
pub mod payable;
pub mod payment;
pub mod reconcile;
mod refund_turn;
pub mod schema;
pub mod server;
pub mod service;
pub mod toss;
pub mod webhook;

pub use error::PaymentError;
pub use payable::{Payable, PayableOrder, PayableOrders};
pub use reconcile::Reconciled;
pub use schema::{PaymentSchema, schema, sdl};
pub use server::{router, run};
pub use service::PaymentService;
