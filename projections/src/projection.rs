//! The contract of a read model and the names of the tables it writes.

use async_trait::async_trait;
use eventstore::RecordedEvent;
use sqlx::AnyConnection;

use crate::error::ProjectionError;

/// A read model built from events. Implementations write portable SQL (`$1` parameters, types
/// both Postgres and SQLite know) through the physical table names in [`Tables`].
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Unique name: lowercase letters, digits and `_` (it prefixes table and view names).
    fn name(&self) -> &'static str;

    /// Stream categories it reads (`order`, `inventory`, ...).
    fn categories(&self) -> &'static [&'static str];

    /// Whether `event` is of a category it reads.
    fn reads(&self, event: &RecordedEvent) -> bool {
        self.categories().contains(&event.stream_id.category())
    }

    /// Logical names of its tables; each gets a view `rm_{name}_{table}` for readers.
    fn tables(&self) -> &'static [&'static str];

    /// Creates its tables (and indexes) under the names in `tables`.
    async fn create_tables(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
    ) -> Result<(), ProjectionError>;

    /// Applies one event; runs inside the batch's transaction, once per event.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError>;

    /// Applies a batch's new events in order (each stream's versions follow on from what was
    /// applied before, none twice); runs inside the batch's transaction. By default, one
    /// [`Projection::apply`] per event; a projection that can write many events in one
    /// statement overrides it.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            self.apply(conn, tables, event).await?;
        }
        Ok(())
    }
}

/// Physical names of one generation of a projection's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    projection: &'static str,
    generation: i64,
}

impl Tables {
    /// The tables of `projection`'s generation `generation`.
    pub fn new(projection: &'static str, generation: i64) -> Self {
        Self {
            projection,
            generation,
        }
    }

    /// The physical name of logical table `table`, e.g. `rm_catalog_g3_streams`.
    pub fn table(&self, table: &str) -> String {
        format!("rm_{}_g{}_{}", self.projection, self.generation, table)
    }

    /// A name for an index or other object of this generation, e.g. `rm_catalog_g3_streams_by_category`.
    pub fn object(&self, suffix: &str) -> String {
        self.table(suffix)
    }

    /// The generation number.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The reader-facing view name of logical table `table`, e.g. `rm_catalog_streams`.
    pub fn view(projection: &str, table: &str) -> String {
        format!("rm_{projection}_{table}")
    }
}

/// Whether `name` can prefix table names.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
