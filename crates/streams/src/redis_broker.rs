//! The production adapter: Redis Streams through the `redis` crate.
//!
//! Non-blocking commands share one multiplexed, auto-reconnecting [`ConnectionManager`].
//! Blocking reads (`XREADGROUP .. BLOCK`, tails) run on connections of their own, since
//! Redis serves one connection's commands in order and a `BLOCK` would stall everything
//! pipelined behind it: group reads lease one from a small idle set, each tail opens one
//! for its lifetime and closes it when dropped.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, RedisError, Value};

use crate::error::{check_count, check_fields};
use crate::id::EntryId;
use crate::redis_reply;
use crate::trace::with_trace;
use crate::{StreamBroker, StreamEntry, StreamError};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a non-blocking command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time a blocking command gets beyond its `BLOCK` before the client gives up.
const BLOCK_MARGIN: Duration = Duration::from_secs(5);
/// The longest `BLOCK` issued (Redis rejects values near `i64::MAX` milliseconds).
const MAX_BLOCK_MILLIS: u64 = i32::MAX as u64;
/// How long one tail `XREAD` blocks before it is issued again.
const TAIL_BLOCK: Duration = Duration::from_secs(2);
/// How many entries a tail reads per `XREAD`.
const TAIL_BATCH: usize = 128;
/// How many idle blocking connections are kept for reuse.
const MAX_IDLE_BLOCKING: usize = 16;

/// Stream broker over Redis Streams; clones share connections.
#[derive(Clone)]
pub struct RedisBroker {
    commands: ConnectionManager,
    blocking: Arc<BlockingConnections>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker").finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// Connects to the Redis server at `url` (`redis://[user:password@]host:port[/db]`).
    pub async fn connect(url: &str) -> Result<Self, StreamError> {
        let client = Client::open(url)
            .map_err(|_| StreamError::InvalidArgument("not a valid redis:// URL"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let commands = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(redis_error)?;
        Ok(Self {
            commands,
            blocking: Arc::new(BlockingConnections {
                client,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn query(&self, cmd: &Cmd) -> Result<Value, RedisError> {
        cmd.query_async(&mut self.commands.clone()).await
    }
}

#[async_trait]
impl StreamBroker for RedisBroker {
    async fn append(
        &self,
        stream: &str,
        fields: &[(String, String)],
        max_len: Option<usize>,
    ) -> Result<String, StreamError> {
        check_fields(fields)?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream);
        if let Some(max_len) = max_len {
            cmd.arg("MAXLEN").arg("~").arg(max_len);
        }
        cmd.arg("*");
        for (name, value) in with_trace(fields) {
            cmd.arg(name).arg(value);
        }
        redis_reply::text(self.query(&cmd).await.map_err(redis_error)?)
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), StreamError> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("$")
            .arg("MKSTREAM");
        match self.query(&cmd).await {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            Err(err) => Err(redis_error(err)),
        }
    }

    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, StreamError> {
        check_count(count)?;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count);
        let reply = if block.is_zero() {
            cmd.arg("STREAMS").arg(stream).arg(">");
            self.query(&cmd).await
        } else {
            // BLOCK 0 would wait forever: a shorter wait rounds up to one millisecond, and
            // one Redis refuses as out of range is cut to about 24 days.
            let millis = u64::try_from(block.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_BLOCK_MILLIS);
            cmd.arg("BLOCK")
                .arg(millis)
                .arg("STREAMS")
                .arg(stream)
                .arg(">");
            let wait = Duration::from_millis(millis).saturating_add(BLOCK_MARGIN);
            let mut lease = self.blocking.lease(wait).await?;
            let reply = cmd.query_async(&mut lease.connection).await;
            if reply.as_ref().map_or_else(answered, |_| true) {
                lease.release();
            }
            reply
        };
        redis_reply::read(reply.map_err(|err| group_error(err, stream, group))?)
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), StreamError> {
        if ids.is_empty() {
            return Ok(());
        }
        for id in ids {
            id.parse::<EntryId>()?;
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(stream).arg(group).arg(ids);
        self.query(&cmd).await.map_err(redis_error)?;
        Ok(())
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StreamError> {
        check_count(count)?;
        // Redis reads the idle time as a signed 64-bit count of milliseconds.
        let min_idle = i64::try_from(min_idle.as_millis()).unwrap_or(i64::MAX);
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(stream)
            .arg(group)
            .arg(consumer)
            .arg(min_idle)
            .arg("0-0")
            .arg("COUNT")
            .arg(count);
        let reply = self
            .query(&cmd)
            .await
            .map_err(|err| group_error(err, stream, group))?;
        redis_reply::auto_claim(reply)
    }

    async fn range(
        &self,
        stream: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StreamError> {
        check_count(count)?;
        let start = match after {
            Some(id) => format!("({}", id.parse::<EntryId>()?),
            None => "-".to_owned(),
        };
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(stream).arg(start).arg("+").arg("COUNT").arg(count);
        redis_reply::entries(self.query(&cmd).await.map_err(redis_error)?)
    }

    async fn tail(
        &self,
        stream: &str,
        after: Option<String>,
    ) -> Result<BoxStream<'static, Result<StreamEntry, StreamError>>, StreamError> {
        let last = match after {
            Some(id) => id.parse::<EntryId>()?.to_string(),
            None => self.newest_id(stream).await?,
        };
        let connection = self.blocking.open(TAIL_BLOCK + BLOCK_MARGIN).await?;
        let tail = RedisTail {
            connection,
            stream: stream.to_owned(),
            last,
            buffered: Vec::new().into_iter(),
            failed: false,
        };
        Ok(futures::stream::unfold(tail, RedisTail::next).boxed())
    }
}

impl RedisBroker {
    /// The id of the stream's newest entry, or `0-0` when it has none: a tail that starts
    /// there sees exactly the entries appended from now on.
    async fn newest_id(&self, stream: &str) -> Result<String, StreamError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(stream).arg("+").arg("-").arg("COUNT").arg(1);
        let newest = redis_reply::entries(self.query(&cmd).await.map_err(redis_error)?)?;
        Ok(newest
            .into_iter()
            .next()
            .map_or_else(|| EntryId::ZERO.to_string(), |entry| entry.id))
    }
}

/// The state of one live tail: its own connection, closed (and its driver task stopped)
/// when the feed is dropped.
struct RedisTail {
    connection: MultiplexedConnection,
    stream: String,
    last: String,
    buffered: std::vec::IntoIter<StreamEntry>,
    failed: bool,
}

impl RedisTail {
    async fn next(mut self) -> Option<(Result<StreamEntry, StreamError>, Self)> {
        loop {
            if let Some(entry) = self.buffered.next() {
                return Some((Ok(entry), self));
            }
            if self.failed {
                return None;
            }
            let millis = u64::try_from(TAIL_BLOCK.as_millis()).unwrap_or(u64::MAX);
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(TAIL_BATCH)
                .arg("BLOCK")
                .arg(millis)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(&self.last);
            let read = cmd
                .query_async(&mut self.connection)
                .await
                .map_err(redis_error)
                .and_then(redis_reply::read);
            match read {
                Ok(entries) => {
                    if let Some(newest) = entries.last() {
                        self.last.clone_from(&newest.id);
                    }
                    self.buffered = entries.into_iter();
                }
                Err(err) => {
                    tracing::warn!(stream = %self.stream, error = %err, "stream tail failed");
                    self.failed = true;
                    return Some((Err(err), self));
                }
            }
        }
    }
}

/// Connections for blocking commands, kept apart from the shared command connection.
struct BlockingConnections {
    client: Client,
    idle: Mutex<Vec<MultiplexedConnection>>,
}

impl BlockingConnections {
    /// A fresh connection whose commands may take up to `response_timeout`.
    async fn open(&self, response_timeout: Duration) -> Result<MultiplexedConnection, StreamError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(redis_error)
    }

    /// An idle connection (or a new one) for one blocking command.
    async fn lease(self: &Arc<Self>, response_timeout: Duration) -> Result<Lease, StreamError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.open(response_timeout).await?,
        };
        connection.set_response_timeout(response_timeout);
        Ok(Lease {
            connection,
            pool: Arc::clone(self),
        })
    }
}

/// A blocking connection on loan; dropped (closed) unless released after a complete reply,
/// since a cancelled `BLOCK` would still hold the connection on the server.
struct Lease {
    connection: MultiplexedConnection,
    pool: Arc<BlockingConnections>,
}

impl Lease {
    fn release(self) {
        let mut idle = self
            .pool
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_BLOCKING {
            idle.push(self.connection);
        }
    }
}

/// Whether the server answered (the connection is in a known state) despite the error.
fn answered(err: &RedisError) -> bool {
    !(err.is_io_error() || err.is_timeout() || err.is_connection_dropped())
}

fn redis_error(err: RedisError) -> StreamError {
    if err.is_io_error()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_connection_dropped()
    {
        StreamError::Unavailable(err.to_string())
    } else {
        StreamError::Backend(err.to_string())
    }
}

fn group_error(err: RedisError, stream: &str, group: &str) -> StreamError {
    if err.code() == Some("NOGROUP") {
        StreamError::no_group(stream, group)
    } else {
        redis_error(err)
    }
}
