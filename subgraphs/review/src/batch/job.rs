//! The job repository (after Spring Batch's): one row per job (`batch_job`, keyed by job
//! name, file path and the file's content hash), one per step with its last committed chunk
//! and counts (`batch_step`), and every skipped line with its reason (`batch_skip`).
//!
//! The same portable SQL runs on two kinds of connection: Postgres, inside the transaction
//! that also appends a chunk's events, and sqlx's `Any` (the read-model database) for event
//! stores that cannot share a transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Namespace of job ids (UUID v5 of the job key).
const JOB_NAMESPACE: Uuid = Uuid::from_u128(0x2b7f_91c3_54d8_4e0a_b6f1_0c9d_e8a2_3f46);

/// The only step of the import job.
pub const STEP: &str = "import";

/// The tables, in portable SQL.
pub(crate) const DDL: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS batch_job (
        job_id TEXT PRIMARY KEY,
        job_name TEXT NOT NULL,
        path TEXT NOT NULL,
        file_hash TEXT NOT NULL,
        format TEXT NOT NULL,
        chunk_size BIGINT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT,
        error TEXT
    )",
    "CREATE TABLE IF NOT EXISTS batch_step (
        job_id TEXT NOT NULL,
        step_name TEXT NOT NULL,
        status TEXT NOT NULL,
        last_chunk BIGINT NOT NULL,
        read_count BIGINT NOT NULL,
        write_count BIGINT NOT NULL,
        skip_count BIGINT NOT NULL,
        duplicate_count BIGINT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (job_id, step_name)
    )",
    "CREATE TABLE IF NOT EXISTS batch_skip (
        job_id TEXT NOT NULL,
        line BIGINT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (job_id, line)
    )",
];

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Started and not finished (or crashed: a rerun resumes it).
    Running,
    /// Every chunk committed.
    Completed,
    /// Stopped after the requested number of chunks; a rerun resumes it.
    Stopped,
    /// Failed (skip limit, storage); a rerun resumes it.
    Failed,
}

impl JobStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Stopped => "STOPPED",
            Self::Failed => "FAILED",
        }
    }

    fn parse(raw: &str) -> Self {
        match raw {
            "COMPLETED" => Self::Completed,
            "STOPPED" => Self::Stopped,
            "FAILED" => Self::Failed,
            _ => Self::Running,
        }
    }
}

/// What identifies a job: the same file (path and content) is the same job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey {
    /// The job's name (`review-import`).
    pub name: String,
    /// The file's path as given.
    pub path: String,
    /// Hex SHA-256 of the file's content.
    pub file_hash: String,
}

impl JobKey {
    /// The job id for this key.
    pub fn job_id(&self) -> Uuid {
        Uuid::new_v5(
            &JOB_NAMESPACE,
            format!("{}\u{0}{}\u{0}{}", self.name, self.path, self.file_hash).as_bytes(),
        )
    }
}

/// Record counts of a step (or of one chunk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records read.
    pub read: u64,
    /// Reviews written.
    pub written: u64,
    /// Records skipped (malformed, invalid, ineligible).
    pub skipped: u64,
    /// Records dropped as duplicates.
    pub duplicates: u64,
}

impl Counts {
    /// Counts one line that was not written.
    pub fn count_skip(&mut self, kind: SkipKind) {
        match kind {
            SkipKind::Skipped => self.skipped += 1,
            SkipKind::Duplicate => self.duplicates += 1,
        }
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Counts) {
        self.read += other.read;
        self.written += other.written;
        self.skipped += other.skipped;
        self.duplicates += other.duplicates;
    }
}

/// Whether a line was skipped or dropped as a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// Malformed, invalid or ineligible.
    Skipped,
    /// The same review as an earlier one.
    Duplicate,
}

impl SkipKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skipped => "SKIPPED",
            Self::Duplicate => "DUPLICATE",
        }
    }
}

/// A line that was not written, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLine {
    /// The line in the file (1-based).
    pub line: u64,
    /// Skipped or duplicate.
    pub kind: SkipKind,
    /// Why.
    pub reason: String,
}

/// A job as the repository holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// Its id.
    pub job_id: Uuid,
    /// Its status.
    pub status: JobStatus,
    /// Records per chunk (fixed when the job was created, so restarts see the same chunks).
    pub chunk_size: u64,
    /// When it was created: the `createdAt` of imported reviews that give none.
    pub created_at: DateTime<Utc>,
    /// Chunks committed so far.
    pub chunks: u64,
    /// Counts so far.
    pub counts: Counts,
}

fn now() -> String {
    crate::reviews_view::stored_time(&Utc::now())
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The repository's statements for one kind of connection (the SQL is the same).
macro_rules! job_queries {
    ($module:ident, $connection:ty) => {
        /// The job repository on this kind of connection.
        pub(crate) mod $module {
            use sqlx::{Executor as _, Row as _};

            use super::*;

            /// Creates the tables when missing.
            pub(crate) async fn migrate(conn: &mut $connection) -> Result<(), sqlx::Error> {
                for ddl in DDL {
                    conn.execute(ddl).await?;
                }
                Ok(())
            }

            /// Creates the job (with its step) unless it exists; returns it as stored.
            pub(crate) async fn start(
                conn: &mut $connection,
                key: &JobKey,
                format: &str,
                chunk_size: u64,
            ) -> Result<JobState, sqlx::Error> {
                let job_id = key.job_id().to_string();
                let at = now();
                sqlx::query(
                    "INSERT INTO batch_job (job_id, job_name, path, file_hash, format, chunk_size, \
                     status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'RUNNING', $7, $7) \
                     ON CONFLICT (job_id) DO NOTHING",
                )
                .bind(job_id.as_str())
                .bind(key.name.as_str())
                .bind(key.path.as_str())
                .bind(key.file_hash.as_str())
                .bind(format)
                .bind(signed(chunk_size))
                .bind(at.as_str())
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "INSERT INTO batch_step (job_id, step_name, status, last_chunk, read_count, \
                     write_count, skip_count, duplicate_count, updated_at) \
                     VALUES ($1, $2, 'RUNNING', 0, 0, 0, 0, 0, $3) \
                     ON CONFLICT (job_id, step_name) DO NOTHING",
                )
                .bind(job_id.as_str())
                .bind(STEP)
                .bind(at.as_str())
                .execute(&mut *conn)
                .await?;
                let row = sqlx::query(
                    "SELECT j.status, j.chunk_size, j.created_at, s.last_chunk, s.read_count, \
                     s.write_count, s.skip_count, s.duplicate_count \
                     FROM batch_job j JOIN batch_step s ON s.job_id = j.job_id AND s.step_name = $2 \
                     WHERE j.job_id = $1",
                )
                .bind(job_id.as_str())
                .bind(STEP)
                .fetch_one(&mut *conn)
                .await?;
                let status: String = row.try_get(0)?;
                let created_at: String = row.try_get(2)?;
                let created_at = DateTime::parse_from_rfc3339(&created_at)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?
                    .with_timezone(&Utc);
                Ok(JobState {
                    job_id: key.job_id(),
                    status: JobStatus::parse(&status),
                    chunk_size: count(row.try_get(1)?),
                    created_at,
                    chunks: count(row.try_get(3)?),
                    counts: Counts {
                        read: count(row.try_get(4)?),
                        written: count(row.try_get(5)?),
                        skipped: count(row.try_get(6)?),
                        duplicates: count(row.try_get(7)?),
                    },
                })
            }

            /// Moves the step from chunk `chunk - 1` to `chunk`, adding `counts` and recording
            /// `skips`; false (and nothing written) when the step was not at `chunk - 1`, i.e.
            /// another run of the same job got there first.
            pub(crate) async fn commit_chunk(
                conn: &mut $connection,
                job_id: Uuid,
                chunk: u64,
                counts: Counts,
                skips: &[SkippedLine],
            ) -> Result<bool, sqlx::Error> {
                let job_id = job_id.to_string();
                let moved = sqlx::query(
                    "UPDATE batch_step SET last_chunk = $1, read_count = read_count + $2, \
                     write_count = write_count + $3, skip_count = skip_count + $4, \
                     duplicate_count = duplicate_count + $5, status = 'RUNNING', updated_at = $6 \
                     WHERE job_id = $7 AND step_name = $8 AND last_chunk = $9",
                )
                .bind(signed(chunk))
                .bind(signed(counts.read))
                .bind(signed(counts.written))
                .bind(signed(counts.skipped))
                .bind(signed(counts.duplicates))
                .bind(now())
                .bind(job_id.as_str())
                .bind(STEP)
                .bind(signed(chunk.saturating_sub(1)))
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if moved != 1 {
                    return Ok(false);
                }
                // Four parameters a row keeps every statement far below both databases' limits.
                for rows in skips.chunks(200) {
                    let sql = format!(
                        "INSERT INTO batch_skip (job_id, line, kind, reason) VALUES {}",
                        projections::placeholders(rows.len(), 4)
                    );
                    let mut query = sqlx::query(&sql);
                    for skip in rows {
                        query = query
                            .bind(job_id.as_str())
                            .bind(signed(skip.line))
                            .bind(skip.kind.as_str())
                            .bind(skip.reason.as_str());
                    }
                    query.execute(&mut *conn).await?;
                }
                Ok(true)
            }

            /// Records how the job (and its step) ended this run.
            pub(crate) async fn finish(
                conn: &mut $connection,
                job_id: Uuid,
                status: JobStatus,
                error: Option<&str>,
            ) -> Result<(), sqlx::Error> {
                let job_id = job_id.to_string();
                let at = now();
                let finished = (status == JobStatus::Completed).then(|| at.clone());
                sqlx::query(
                    "UPDATE batch_job SET status = $1, updated_at = $2, finished_at = $3, error = $4 \
                     WHERE job_id = $5",
                )
                .bind(status.as_str())
                .bind(at.as_str())
                .bind(finished)
                .bind(error)
                .bind(job_id.as_str())
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "UPDATE batch_step SET status = $1, updated_at = $2 WHERE job_id = $3 AND step_name = $4",
                )
                .bind(status.as_str())
                .bind(at.as_str())
                .bind(job_id.as_str())
                .bind(STEP)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            /// Every line the job skipped, in line order.
            pub(crate) async fn skips(
                conn: &mut $connection,
                job_id: Uuid,
            ) -> Result<Vec<SkippedLine>, sqlx::Error> {
                let rows = sqlx::query(
                    "SELECT line, kind, reason FROM batch_skip WHERE job_id = $1 ORDER BY line",
                )
                .bind(job_id.to_string())
                .fetch_all(&mut *conn)
                .await?;
                rows.iter()
                    .map(|row| {
                        let kind: String = row.try_get(1)?;
                        Ok(SkippedLine {
                            line: count(row.try_get(0)?),
                            kind: if kind == SkipKind::Duplicate.as_str() {
                                SkipKind::Duplicate
                            } else {
                                SkipKind::Skipped
                            },
                            reason: row.try_get(2)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

job_queries!(on_postgres, sqlx::PgConnection);
job_queries!(on_any, sqlx::AnyConnection);
