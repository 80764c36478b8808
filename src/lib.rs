//! The `bloody-sweet` platform binary's library: settings, wiring and commands.
//!
//! Layout: [`settings`] (typed configuration from defaults, a TOML file and the environment),
//! [`platform`] (chooses an adapter for each port and runs the components), [`ordering`]
//! (the inventory, order and payment subgraphs with the saga and its workers), [`stack`] (all
//! of it on loopback with the Toss test server, for tests and benchmarks), [`commands`]
//! (what each subcommand does), [`edge`] (the gateway's configuration, the identity provider and
//! dev tokens), [`workers`] (saga command workers), [`ai`] (review intelligence: embedder, vector
//! index, chat streams and answer model chosen, the embedding pipeline and chat workers run). The crates it wires own all business logic; this crate only
//! connects them at the edge.

pub mod ai;
pub mod commands;
pub mod edge;
pub mod ordering;
pub mod platform;
pub mod settings;
pub mod stack;
pub mod workers;
