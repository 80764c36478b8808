//! The order subgraph: the `Order` aggregate (lines, totals, status timeline), the
//! orchestration saga (reserve stock → confirm payment → confirm order, with compensation), and
//! its Federation v2 GraphQL schema.
//!
//! It calls no other subgraph: it sends commands over the message bus and reads prices from the
//! inventory read model. Built in the ordering issue; empty until then.
