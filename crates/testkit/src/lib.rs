//! Test support shared by the workspace's integration tests.
//!
//! Owns the plumbing that keeps tests isolated and honest: a fresh Postgres database per test
//! (created, handed out, dropped), the address of the Kafka-protocol broker that the test
//! setup started, and unique names for topics, consumer groups and key prefixes so tests run
//! in parallel without sharing state. It must never be a dependency of production code.

#[cfg(feature = "stores")]
pub mod stores;

use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};

/// The Postgres server tests use: `TEST_DATABASE_URL`, else `DATABASE_URL`, else the local default.
pub fn postgres_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Kafka-protocol broker tests use (`KAFKA_BROKERS`, set by `scripts/test`).
pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "KAFKA_BROKERS is not set: run the tests through scripts/test, which starts a broker"
        )
    })
}

/// A name that no other test uses: `prefix` plus a random lowercase suffix.
pub fn unique_name(prefix: &str) -> String {
    let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    format!("{prefix}_{suffix}")
}

/// A Postgres database that exists for one test and is dropped with it.
pub struct TestDb {
    name: String,
    server_url: String,
    url: String,
}

impl TestDb {
    /// Creates a fresh, empty database on the test server.
    pub async fn new() -> Self {
        let server_url = postgres_server_url();
        let name = unique_name("bs_test");
        let mut conn = PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test Postgres at {server_url}: {e}"));
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .expect("create test database");
        let url = replace_database(&server_url, &name);
        Self {
            name,
            server_url,
            url,
        }
    }

    /// The connection URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Dropping runs on its own thread so it works inside and outside a runtime.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for test database cleanup");
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&server_url).await {
                    let _ = conn
                        .execute(
                            format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str(),
                        )
                        .await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// The collation of text column `table.column` in the Postgres database at `url`: `None` when
/// it has the database's default.
pub async fn column_collation(url: &str, table: &str, column: &str) -> Option<String> {
    let mut conn = PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    let collation: Option<String> = sqlx::query_scalar(
        "SELECT collation_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
    )
    .bind(table)
    .bind(column)
    .fetch_one(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("no column {table}.{column}: {e}"));
    conn.close().await.ok();
    collation
}

/// Replaces the database name in a Postgres URL.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// Polls `check` until it returns true or `timeout` passes; returns whether it became true.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Kafka-protocol broker (tansu, in-memory storage) owned by one test, which can stop and
/// restart it on the same port.
pub struct Broker {
    child: Option<std::process::Child>,
    port: u16,
}

impl Broker {
    /// The tansu binary: `TANSU_BIN`, else where `scripts/broker` installs it.
    pub fn binary() -> std::path::PathBuf {
        if let Ok(bin) = std::env::var("TANSU_BIN") {
            return bin.into();
        }
        let cache = std::env::var("BLOODY_SWEET_CACHE").unwrap_or_else(|_| {
            format!(
                "{}/.cache/bloody-sweet",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        std::path::PathBuf::from(cache).join("tools/tansu-0.6.0/tansu")
    }

    /// Starts a broker on a free loopback port and waits until it accepts connections.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut broker = Self { child: None, port };
        broker.restart().await;
        broker
    }

    /// The `bootstrap.servers` string for this broker.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (its in-memory data is lost).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port (a no-op when it runs).
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            return;
        }
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let bin = Self::binary();
        let child = std::process::Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (run scripts/broker path)",
                    bin.display()
                )
            });
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        let up = eventually(Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(&addr).await.is_ok()
        })
        .await;
        assert!(up, "broker did not start on {addr}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends logs to the test output when `TEST_LOG` is set (filter with `RUST_LOG`).
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
