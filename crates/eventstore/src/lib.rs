//! The event store: the source of truth for event-sourced aggregates.
//!
//! Layout: [`event`] (what is appended and what is read back), [`stream`] (validated stream
//! ids), [`version`] (expected versions and positions), [`store`] (the [`EventStore`] port),
//! [`subscription`] (catch-up-then-live `$all` subscriptions shared by the adapters),
//! [`postgres`] and [`sqlite`] (the production and embedded adapters), [`idle_check`] (when a
//! pooled connection is pinged before use), and the aggregate kernel
//! ([`aggregate`], [`repository`], [`testing`] for given/when/then tests).
//!
//! Guarantees every adapter keeps: appends are atomic and checked against an expected version;
//! events are idempotent by id; `$all` is read in one global order through positions that a
//! reader never skips past, even when an older transaction commits after a younger one. This
//! crate knows nothing of Kafka, HTTP or GraphQL.

pub mod aggregate;
pub mod error;
pub mod event;
mod group_commit;
pub mod idle_check;
pub mod postgres;
pub mod repository;
mod shared_read;
pub mod sqlite;
mod state_cache;
pub mod store;
pub mod stream;
pub mod subscription;
pub mod testing;
pub mod version;

pub use aggregate::{Aggregate, DomainEvent};
pub use error::StoreError;
pub use event::{EventData, Metadata, RecordedEvent, Snapshot};
pub use postgres::PgEventStore;
pub use repository::{Repository, RepositoryError};
pub use sqlite::SqliteEventStore;
pub use store::{AppendResult, Direction, EventStore, Limits, StreamAppend};
pub use stream::StreamId;
pub use version::{ExpectedVersion, Position};
