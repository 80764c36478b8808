//! The order subgraph: the `Order` aggregate (lines, totals, status timeline), the
//! orchestration saga that runs order → stock reservation → payment → paid with
//! compensation, and its Federation v2 GraphQL schema.
//!
//! Parts: [`order`] (the aggregate), [`saga`] (the saga aggregate: pure decisions),
//! [`orchestrator`] (carries the saga's decisions out over the bus and the clock),
//! [`service`] (customer and staff operations with their checks), [`pricing`] (prices from
//! the catalog read model), [`orders_view`] (the orders read model), [`updates`] (live
//! changes for subscriptions), [`schema`] and [`server`] (GraphQL over HTTP and WebSocket).
//! It calls no other subgraph: it sends commands over the message bus and hears back through
//! replies and published events.

pub mod orchestrator;
pub mod order;
pub mod orders_view;
pub mod pricing;
pub mod saga;
pub mod saga_index;
pub mod schema;
pub mod server;
pub mod service;
pub mod updates;

pub use orchestrator::{Orchestrator, SagaConfig};
pub use order::{Order, OrderCommand, OrderError, OrderStatus};
pub use saga::{OrderSaga, Phase};
