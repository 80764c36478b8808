//! The federated GraphQL gateway's server: one endpoint over the order, inventory, payment
//! and review subgraphs, over HTTP (GET, POST, SSE) and WebSocket.
//!
//! Layout: [`config`] (what it is told at start), [`supergraph`] (file, or composed from live
//! subgraphs, into the `federation` engine), [`authentication`] (bearer tokens → the identity
//! header subgraphs read), [`client_ip`] (`X-Forwarded-For` from trusted proxies), [`operation`] (one operation from admission to response, shared by
//! the transports), [`http`] and [`ws`] (the transports), [`apq`], [`rate`] and the engine's
//! operation limits (refusals), [`graphiql`] (from local npm packages), [`metrics`], and
//! [`server`] (routes, `/healthz`, `/readyz`, `/metrics`, and [`serve`]).
//!
//! It holds no business rules and talks to no database: planning and execution belong to the
//! `federation` crate, token verification to `auth`, and every answer comes from a subgraph.
//! Subgraph failures become partial data with errors, never a 500, and refusals carry a
//! GraphQL error with a stable `extensions.code`.

#![warn(missing_docs)]

pub mod apq;
pub mod authentication;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod graphiql;
pub mod http;
pub mod metrics;
pub mod operation;
pub mod rate;
pub mod request;
pub mod server;
pub mod supergraph;
pub mod ws;

pub use client_ip::TrustedProxies;
pub use config::{GatewayConfig, GraphiqlConfig, RateLimits, SubgraphEndpoint, SupergraphSource};
pub use error::{GatewayError, Refusal};
pub use server::{Gateway, serve, serve_with};
