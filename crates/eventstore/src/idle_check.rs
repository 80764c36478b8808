//! When a pooled database connection is checked before use: only after it sat idle a while.
//!
//! sqlx pings a connection when it goes back to its pool, and by default pings it again on every
//! acquire (`test_before_acquire`): two extra round trips for each checkout, which at a few
//! statements per request is most of the traffic to the database. A connection returned a
//! moment ago passed the ping on its release; only one that sat idle (the server or the network
//! may have dropped it meanwhile) needs another before it is handed out. A writer task that
//! runs a statement per batch keeps its connection ([`KeptConnection`]) while batches come, which
//! spares it the release ping too.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::pool::{PoolConnection, PoolConnectionMetadata, PoolOptions};
use sqlx::{Connection, Database, Pool};

/// Idle time after which a connection is pinged before it is handed out.
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The smallest pool a [`KeptConnection`] keeps a connection of: one kept leaves two.
pub const KEEP_FROM: u32 = 3;

/// Whether a connection idle for `idle_for` must be pinged before use.
pub fn needs_check(idle_for: Duration) -> bool {
    idle_for >= CHECK_AFTER_IDLE
}

/// `options` with connections pinged before use only once idle for [`CHECK_AFTER_IDLE`] or
/// more, instead of on every acquire (a failed ping makes the pool drop the connection and hand
/// out another).
pub fn checked_when_idle<DB: Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(ping_if_idle::<DB::Connection>)
}

/// The pool's `before_acquire` hook of [`checked_when_idle`].
fn ping_if_idle<C: Connection>(
    conn: &mut C,
    meta: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if needs_check(meta.idle_for) {
            conn.ping().await?;
        }
        Ok(true)
    })
}

/// Whether `err` is the database refusing a statement on a connection that stays usable (not
/// the server ending the session, nor the connection failing): a [`KeptConnection`] is kept
/// after such an error and discarded after any other.
pub fn refused_by_database(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => !db
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        _ => false,
    }
}

/// A connection a writer task keeps while its work keeps coming, given back to the pool once
/// none came for [`CHECK_AFTER_IDLE`] (so a kept connection never sat idle unchecked). Only a
/// pool of [`KEEP_FROM`] connections or more has one kept from its other users (SQLite's
/// read-model pool has a single connection).
pub struct KeptConnection<DB: Database> {
    pool: Pool<DB>,
    conn: Option<PoolConnection<DB>>,
    keep: bool,
}

impl<DB: Database> KeptConnection<DB> {
    /// Keeps connections of `pool`.
    pub fn new(pool: Pool<DB>) -> Self {
        let keep = pool.options().get_max_connections() >= KEEP_FROM;
        Self {
            pool,
            conn: None,
            keep,
        }
    }

    /// Awaits `work` (say, the next batch), giving the kept connection back to the pool should
    /// that take [`CHECK_AFTER_IDLE`] or longer (at once if the pool is too small to keep one).
    pub async fn idle<F: Future>(&mut self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        if !self.keep {
            self.conn = None;
        }
        if self.conn.is_some() {
            if let Ok(done) = tokio::time::timeout(CHECK_AFTER_IDLE, &mut work).await {
                return done;
            }
            self.conn = None;
        }
        work.await
    }

    /// The kept connection, or one from the pool (kept from now on).
    pub async fn get(&mut self) -> Result<&mut PoolConnection<DB>, sqlx::Error> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(self.conn.insert(conn))
    }

    /// Closes the kept connection instead of giving it back (a write on it failed).
    pub fn discard(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }

    /// Whether a connection is kept.
    pub fn is_kept(&self) -> bool {
        self.conn.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_idle_a_while_is_checked() {
        assert!(!needs_check(Duration::ZERO));
        assert!(!needs_check(Duration::from_millis(999)));
        assert!(needs_check(CHECK_AFTER_IDLE));
        assert!(needs_check(Duration::from_secs(600)));
    }

    #[tokio::test]
    async fn a_kept_connection_is_given_back_once_work_stops_coming() {
        let db = testkit::TestDb::new().await;
        let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
        let mut kept = KeptConnection::new(pool.clone());
        sqlx::query("SELECT 1")
            .execute(&mut **kept.get().await.unwrap())
            .await
            .unwrap();
        assert!(kept.is_kept());
        // Work that comes at once: the connection stays.
        assert_eq!(kept.idle(async { 7 }).await, 7);
        assert!(kept.is_kept());
        // Work that takes longer than the idle limit: given back meanwhile, and still awaited.
        let slow = tokio::time::sleep(CHECK_AFTER_IDLE + Duration::from_millis(100));
        kept.idle(async move {
            slow.await;
            8
        })
        .await;
        assert!(!kept.is_kept());
        // A connection that failed is closed, not given back.
        let conn = kept.get().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        kept.discard();
        assert!(!kept.is_kept());
        assert!(
            testkit::eventually(Duration::from_secs(5), || async {
                let alive: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
                        .bind(pid)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                alive == 0
            })
            .await,
            "the discarded session ended"
        );
    }

    #[tokio::test]
    async fn no_connection_of_a_small_pool_is_kept() {
        let db = testkit::TestDb::new().await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(KEEP_FROM - 1)
            .connect(db.url())
            .await
            .unwrap();
        let mut kept = KeptConnection::new(pool.clone());
        kept.get().await.unwrap();
        assert_eq!(kept.idle(async { 1 }).await, 1);
        assert!(!kept.is_kept());
        let others: i32 = sqlx::query_scalar("SELECT 2")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(others, 2);
    }

    #[tokio::test]
    async fn a_refusal_keeps_the_connection_and_an_ended_session_does_not() {
        let db = testkit::TestDb::new().await;
        let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
        let refused = sqlx::query("SELECT 1 / 0")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(refused_by_database(&refused), "{refused:?}");
        let ended = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(!refused_by_database(&ended), "{ended:?}");
        let broken = sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(!refused_by_database(&broken), "{broken:?}");
    }
}
