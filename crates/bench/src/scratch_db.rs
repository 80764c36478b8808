//! A Postgres database that exists for one benchmark run.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

/// A freshly created database; call [`ScratchDb::drop_database`] when done.
pub struct ScratchDb {
    server: PgConnectOptions,
    name: String,
}

impl ScratchDb {
    /// Creates a database with a unique `bs_bench_` name on the server at `server_url`.
    pub async fn create(server_url: &str) -> anyhow::Result<Self> {
        let server = PgConnectOptions::from_str(server_url)
            .with_context(|| "DATABASE_URL is not a Postgres URL".to_owned())?;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("bs_bench_{}", &suffix[..12]);
        let mut conn = PgConnection::connect_with(&server)
            .await
            .context("cannot connect to Postgres")?;
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        conn.close().await.ok();
        tracing::info!(database = %name, "benchmark database created");
        Ok(Self { server, name })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool of up to `max_connections` on this database.
    pub async fn pool(&self, max_connections: u32) -> anyhow::Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(self.server.clone().database(&self.name))
            .await
            .with_context(|| format!("cannot connect to database {}", self.name))
    }

    /// Drops the database, ending any session still connected to it.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect_with(&self.server)
            .await
            .context("cannot connect to Postgres to drop the benchmark database")?;
        conn.execute(format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name).as_str())
            .await
            .with_context(|| format!("cannot drop database {}", self.name))?;
        conn.close().await.ok();
        tracing::info!(database = %self.name, "benchmark database dropped");
        Ok(())
    }
}
