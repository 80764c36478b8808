//! The projection runtime and the read models it builds.
//!
//! Parts: [`projection`] (the [`Projection`] trait a read model implements, and the physical
//! [`Tables`] it writes), [`read_models`] (the read-model database: bookkeeping, one
//! transaction per batch with its checkpoint and per-stream versions), [`runner`] (the live
//! consumers: from the event store in embedded mode, from Kafka in production), [`rebuild`]
//! (replay from position 0 into a new generation of tables, swapped in atomically while the old
//! one keeps serving) and [`catalog`] (a built-in read model of every stream).
//!
//! Readers query views named `rm_{projection}_{table}`, which always point at the live
//! generation. Every applied event is recorded with its stream version in the same
//! transaction, so a redelivered event is never applied twice (exactly-once effect) whether it
//! came from Kafka or from the event store. Read models are disposable: they hold no fact that
//! is not in the event store. The same code runs on Postgres and SQLite (through sqlx's `Any`
//! driver and portable SQL).

pub mod alter;
pub mod catalog;
pub mod collation;
pub mod error;
pub mod projection;
pub mod read_models;
pub mod rebuild;
pub mod runner;

pub use alter::alter_once;
pub use collation::bytewise_text;
pub use error::ProjectionError;
pub use projection::{Projection, Tables};
pub use read_models::{
    Applied, PARAMS_PER_STATEMENT, ProjectionStatus, ReadModels, locked, placeholders, run_ddl,
};
pub use rebuild::{RebuildProgress, RebuildReport};
pub use runner::{BusFeed, run_all_from_bus, run_from_bus, run_from_store};
