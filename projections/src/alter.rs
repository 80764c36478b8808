//! Schema changes a process makes at start, once across the processes sharing a database.

use std::future::Future;
use std::pin::Pin;

use sqlx::{AnyConnection, AnyPool, Executor};

use crate::read_models::locked;

/// What a schema change needs, looked up on a connection: the statement to run, if any.
pub type Needed<'c> =
    Pin<Box<dyn Future<Output = Result<Option<String>, sqlx::Error>> + Send + 'c>>;

/// Runs the statement `needed` asks for, if it asks for one: looked up first without a lock
/// (so a start that finds the change made takes no lock on the table), then again under the
/// advisory lock `lock` (one process at a time), where it runs with a 10 s `lock_timeout` on
/// Postgres (a busy table fails the start rather than queueing everyone behind the change).
/// On SQLite, where nothing locks across processes, a failure that another process's change
/// explains (`needed` asks for nothing any more) is no failure.
pub async fn alter_once<F>(pool: &AnyPool, lock: &str, mut needed: F) -> Result<(), sqlx::Error>
where
    F: FnMut(&mut AnyConnection) -> Needed<'_>,
{
    if needed(&mut *pool.acquire().await?).await?.is_none() {
        return Ok(());
    }
    let changed = async {
        let mut tx = locked(pool, lock).await?;
        if let Some(statement) = needed(&mut tx).await? {
            if tx.backend_name() == "PostgreSQL" {
                tx.execute("SET LOCAL lock_timeout = '10s'").await?;
            }
            tx.execute(statement.as_str()).await?;
        }
        tx.commit().await
    }
    .await;
    match changed {
        Err(err) if needed(&mut *pool.acquire().await?).await?.is_none() => {
            tracing::debug!(lock, error = %err, "schema change made meanwhile by another process");
            Ok(())
        }
        other => other,
    }
}
