//! The inventory subgraph: the `Product` entity (catalog, price in KRW, stock) and stock
//! reservations for the order saga (reserve / release / commit, idempotent by reservation id,
//! never oversold under any concurrency), with its Federation v2 GraphQL schema.
//!
//! Layout: [`product`] (the `Product` aggregate: rules, events, errors), [`reservation`] (the
//! `Reservation` aggregate: a reservation's lines, decision and end), [`service`] (the
//! [`Inventory`] service running product commands), [`stock`] (the saga's reserve / release /
//! commit protocol, all-or-none across lines), [`catalog`] (the `products` read model and its
//! queries), [`cursor`] (opaque Relay cursors), [`mod@schema`] (the GraphQL schema: `Product`
//! entity, public queries, staff mutations), [`server`] (`POST /graphql` and
//! `run(listener, state, shutdown)`), [`error`] (one error enum with stable codes).
//!
//! Domain modules (`product`, `reservation`) know nothing of SQL, HTTP or GraphQL; the
//! read model is rebuildable from events and never consulted for a stock decision. This crate
//! never calls another subgraph: the saga reaches it through [`Inventory::handle`] with
//! `contracts` messages.

pub mod catalog;
pub mod cursor;
pub mod error;
pub mod product;
pub mod reservation;
pub mod schema;
pub mod server;
pub mod service;
pub mod stock;

pub use catalog::{Catalog, ProductCatalog, ProductFilter, ProductPage, ProductView};
pub use error::InventoryError;
pub use product::{
    NewProduct, Product, ProductCommand, ProductError, ProductEvent, ProductId, ProductStatus,
};
pub use schema::{InventorySchema, InventoryState, schema, sdl};
pub use server::{router, run};
pub use service::Inventory;
