//! When a pooled database connection is checked before use: only after it sat idle a while.
//!
//! sqlx pings a connection when it goes back to its pool, and by default pings it again on every
//! acquire (`test_before_acquire`): two extra round trips for each checkout, which at a few
//! statements per request is most of the traffic to the database. A connection returned a
//! moment ago passed the ping on its release; only one that sat idle (the server or the network
//! may have dropped it meanwhile) needs another before it is handed out.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::Connection;
use sqlx::pool::PoolConnectionMetadata;

/// Idle time after which a connection is pinged before it is handed out.
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Whether a connection idle for `idle_for` must be pinged before use.
pub fn needs_check(idle_for: Duration) -> bool {
    idle_for >= CHECK_AFTER_IDLE
}

/// A pool's `before_acquire` hook: pings connections idle for [`CHECK_AFTER_IDLE`] or more
/// (a failed ping makes the pool drop the connection and hand out another); use it with
/// `test_before_acquire(false)`.
pub fn ping_if_idle<C: Connection>(
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
}
