//! The inventory subgraph: the `Product` entity (catalog, price in KRW, stock) and stock
//! reservations (reserve / release / commit, idempotent by reservation id, never oversold), with
//! its Federation v2 GraphQL schema.
//!
//! Built in the ordering issue; empty until then.
