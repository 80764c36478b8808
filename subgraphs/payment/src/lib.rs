//! The payment subgraph: the `Payment` entity, Toss Payments confirmation, cancellation and
//! webhooks, and the Toss-compatible test server used by tests and the embedded mode.
//!
//! It never trusts an amount from a client: the confirmed amount must equal the order total.

pub mod payment;
pub mod toss;
