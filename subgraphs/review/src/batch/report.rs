//! What an import did: counts, throughput and every skipped line with its reason.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use super::job::{Counts, JobStatus, SkipKind, SkippedLine};

/// The outcome of one run of an import job.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// The job.
    pub job_id: Uuid,
    /// The file imported.
    pub path: String,
    /// Where the job stands after this run.
    pub status: JobStatus,
    /// Chunks committed by earlier runs (0 for a fresh job).
    pub resumed_after_chunk: u64,
    /// Chunks committed in all runs.
    pub chunks: u64,
    /// Counts over all runs of the job.
    pub counts: Counts,
    /// Records this run processed.
    pub run_records: u64,
    /// How long this run took.
    pub elapsed: Duration,
    /// Every line the job did not write, and why, in line order.
    pub skips: Vec<SkippedLine>,
}

impl ImportReport {
    /// Records per second processed by this run.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.run_records as f64 / secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "review import {}: {} (job {}",
            self.path,
            self.status.as_str(),
            self.job_id
        )?;
        if self.resumed_after_chunk > 0 {
            write!(f, ", resumed after chunk {}", self.resumed_after_chunk)?;
        }
        writeln!(f, ", {} chunks)", self.chunks)?;
        let c = self.counts;
        writeln!(
            f,
            "  read {}  written {}  skipped {}  duplicates {}",
            c.read, c.written, c.skipped, c.duplicates
        )?;
        writeln!(
            f,
            "  this run: {} records in {:.2} s ({:.0} records/s)",
            self.run_records,
            self.elapsed.as_secs_f64(),
            self.throughput()
        )?;
        for skip in &self.skips {
            let kind = match skip.kind {
                SkipKind::Skipped => "skipped",
                SkipKind::Duplicate => "duplicate",
            };
            writeln!(f, "  {kind} line {}: {}", skip.line, skip.reason)?;
        }
        Ok(())
    }
}
