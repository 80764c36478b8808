//! Toss Payments: the API client (the production adapter of the payment-provider port), the
//! Toss objects and errors it reads, and the Toss-compatible test server (the embedded adapter,
//! reached over real HTTP by the same client).

pub mod client;
pub mod error;
pub mod ledger;
pub mod payment;
pub mod server;

pub use client::{RetryPolicy, TOSS_API_BASE, Timeouts, TossClient};
pub use error::{TossError, codes};
pub use ledger::{FailureMode, TestStats};
pub use payment::{TossCancel, TossPayment, TossStatus};
pub use server::{TossTestServer, TossTestServerBuilder};
