//! Constant load from `oha`: N keep-alive clients posting the same body for a fixed time, as
//! k6's constant-VUs executor does in the public benchmark. Figures come from oha's JSON
//! summary; every response's status and size from the SQLite file it writes with `--db-url`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteConnectOptions;
use tokio::process::Command;

/// One constant-load run against one URL.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The `oha` binary.
    pub oha: PathBuf,
    /// The endpoint the requests go to.
    pub url: String,
    /// A file holding the request body (JSON).
    pub body: PathBuf,
    /// Concurrent clients, each with one keep-alive connection and one request in flight.
    pub clients: usize,
    /// How long the load lasts.
    pub duration: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// Responses received.
    pub responses: u64,
    /// Responses per second over the whole run.
    pub rps: f64,
    /// 95th percentile latency, in milliseconds.
    pub p95_ms: f64,
    /// 50th percentile latency, in milliseconds.
    pub p50_ms: f64,
    /// Requests that got no response (connection errors), by oha's error message.
    pub failures: Vec<(String, u64)>,
    /// Responses by status code.
    pub statuses: Vec<(u16, u64)>,
    /// Smallest and largest response body, in bytes.
    pub body_bytes: (u64, u64),
}

impl LoadOutcome {
    /// Fails unless every request got a 200 response of exactly `expected_bytes`.
    pub fn check(&self, expected_bytes: u64) -> anyhow::Result<()> {
        anyhow::ensure!(self.responses > 0, "no response at all");
        anyhow::ensure!(
            self.failures.is_empty(),
            "requests without a response: {:?}",
            self.failures
        );
        anyhow::ensure!(
            self.statuses.iter().all(|(status, _)| *status == 200),
            "responses other than 200: {:?}",
            self.statuses
        );
        anyhow::ensure!(
            self.body_bytes == (expected_bytes, expected_bytes),
            "response bodies of {}..={} bytes, expected every one to be {expected_bytes} \
             (a response with errors or missing data has another size)",
            self.body_bytes.0,
            self.body_bytes.1
        );
        Ok(())
    }
}

/// Runs `oha` as `spec` says; `scratch` is a directory for its per-request database.
pub async fn run(spec: &LoadSpec, scratch: &Path) -> anyhow::Result<LoadOutcome> {
    let db = scratch.join(format!("oha-{}.db", uuid::Uuid::new_v4().simple()));
    let output = Command::new(&spec.oha)
        .arg("--no-tui")
        .args(["--output-format", "json"])
        .args(["-z", &format!("{}ms", spec.duration.as_millis())])
        // In-flight requests at the deadline finish instead of counting as failures.
        .arg("-w")
        // No Accept-Encoding: every gateway sends the plain ~88 KB JSON, whose size is checked.
        .arg("--disable-compression")
        .args(["-c", &spec.clients.to_string()])
        .args(["-m", "POST"])
        .args(["-H", "content-type: application/json"])
        .arg("-D")
        .arg(&spec.body)
        .arg("--db-url")
        .arg(&db)
        .arg(&spec.url)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("running {}", spec.oha.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "oha exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).context("oha's JSON summary")?;
    let per_request = read_database(&db).await;
    let _ = std::fs::remove_file(&db);
    let (statuses, body_bytes) = per_request?;
    parse_summary(&summary, statuses, body_bytes)
}

fn parse_summary(
    summary: &Value,
    statuses: Vec<(u16, u64)>,
    body_bytes: (u64, u64),
) -> anyhow::Result<LoadOutcome> {
    let number = |pointer: &str| {
        summary
            .pointer(pointer)
            .and_then(Value::as_f64)
            .with_context(|| format!("oha's summary has no number at {pointer}"))
    };
    let failures = summary
        .get("errorDistribution")
        .and_then(Value::as_object)
        .map(|errors| {
            errors
                .iter()
                .map(|(message, count)| (message.clone(), count.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    Ok(LoadOutcome {
        responses: statuses.iter().map(|(_, count)| count).sum(),
        rps: number("/summary/requestsPerSec")?,
        p95_ms: number("/metrics/latency_ms/p95")?,
        p50_ms: number("/metrics/latency_ms/p50")?,
        failures,
        statuses,
        body_bytes,
    })
}

/// Response counts by status, and the smallest and largest body, from oha's database.
async fn read_database(db: &Path) -> anyhow::Result<(Vec<(u16, u64)>, (u64, u64))> {
    use sqlx::ConnectOptions as _;
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("opening oha's database {}", db.display()))?;
    let rows = sqlx::query("SELECT status, COUNT(*) FROM oha GROUP BY status ORDER BY status")
        .fetch_all(&mut conn)
        .await
        .context("reading statuses from oha's database")?;
    let statuses = rows
        .iter()
        .map(|row| {
            let status: i64 = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            Ok((
                u16::try_from(status).unwrap_or(0),
                u64::try_from(count).unwrap_or(0),
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let sizes =
        sqlx::query("SELECT COALESCE(MIN(len_bytes), 0), COALESCE(MAX(len_bytes), 0) FROM oha")
            .fetch_one(&mut conn)
            .await
            .context("reading sizes from oha's database")?;
    let min: i64 = sizes.try_get(0)?;
    let max: i64 = sizes.try_get(1)?;
    Ok((
        statuses,
        (
            u64::try_from(min).unwrap_or(0),
            u64::try_from(max).unwrap_or(0),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn summary() -> Value {
        json!({
            "summary": { "requestsPerSec": 1234.5 },
            "metrics": { "latency_ms": { "p50": 30.0, "p95": 41.25 } },
            "errorDistribution": {}
        })
    }

    #[test]
    fn reads_oha_figures() {
        let outcome = parse_summary(&summary(), vec![(200, 70)], (88, 88)).unwrap();
        assert_eq!(outcome.responses, 70);
        assert_eq!(outcome.rps, 1234.5);
        assert_eq!(outcome.p95_ms, 41.25);
        outcome.check(88).unwrap();
    }

    #[test]
    fn check_refuses_other_statuses_sizes_and_failures() {
        let wrong_status = parse_summary(&summary(), vec![(200, 5), (500, 1)], (88, 88)).unwrap();
        assert!(wrong_status.check(88).is_err());
        let wrong_size = parse_summary(&summary(), vec![(200, 6)], (80, 88)).unwrap();
        assert!(wrong_size.check(88).is_err());
        let mut failed = summary();
        failed["errorDistribution"] = json!({ "connection refused": 3 });
        let failed = parse_summary(&failed, vec![(200, 6)], (88, 88)).unwrap();
        assert!(failed.check(88).is_err());
    }
}
