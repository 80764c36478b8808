//! The order subgraph: the `Order` aggregate (lines, totals, status timeline), the
//! orchestration saga that runs order → stock reservation → payment → paid with
//! compensation, and (soon) its Federation v2 GraphQL schema.
//!
//! Parts: [`order`] (the aggregate), [`saga`] (the saga aggregate: pure decisions),
//! [`orchestrator`] (carries the saga's decisions out over the bus and the clock). It calls no
//! other subgraph: it sends commands over the message bus and hears back through replies and
//! published events.

pub mod orchestrator;
pub mod order;
pub mod saga;

pub use orchestrator::{Orchestrator, SagaConfig};
pub use order::{Order, OrderCommand, OrderError, OrderStatus};
pub use saga::{OrderSaga, Phase};
pub mod orders_view;
pub mod pricing;
pub mod service;
