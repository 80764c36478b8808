//! A Postgres database that exists for one benchmark run.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

/// A freshly created database; call [`ScratchDb::drop_database`] when done.
pub struct ScratchDb {
    server: PgConnectOptions,
    server_url: String,
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
        Ok(Self {
            server,
            server_url: server_url.to_owned(),
            name,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection URL of this database: the server's URL with its database name replaced.
    pub fn url(&self) -> String {
        replace_database(&self.server_url, &self.name)
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

/// Replaces the database name in a Postgres URL, keeping its query string.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn replaces_the_database_and_keeps_the_query() {
        assert_eq!(
            replace_database("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
