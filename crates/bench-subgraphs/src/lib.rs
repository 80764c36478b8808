//! The four subgraphs of the public federation gateway benchmark (accounts, inventory,
//! products, reviews), served for `scripts/bench gateway`: the same Federation v2 schema and
//! data of the same shape and size, written here from the published SDL.
//!
//! Layout: [`data`] holds the fixed users, products and reviews; [`accounts`], [`inventory`],
//! [`products`] and [`reviews`] are the four schemas; [`server`] serves each on its own
//! listener and starts all four in this process; [`test_query`] is the benchmark's one
//! operation and the response a correct gateway returns for it.
//!
//! The subgraphs only read fixed data: no I/O beyond HTTP, nothing to configure but addresses.

pub mod accounts;
pub mod data;
pub mod inventory;
pub mod products;
pub mod reviews;
pub mod server;
pub mod test_query;

pub use server::{RunningSubgraphs, Subgraph, run, start};
pub use test_query::{TEST_QUERY, expected_response, request_body};
