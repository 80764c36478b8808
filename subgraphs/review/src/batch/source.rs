//! Reads an import file into chunks of checked records, on a blocking thread: JSON Lines or
//! CSV (with a header), every record validated and cleaned, duplicates by content hash marked.
//!
//! On a restart the chunks already committed are read again (cheaply: no database) and not
//! sent, only to remember their content hashes, so duplicates are judged exactly as in the
//! first run.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::BatchError;
use super::job::{SkipKind, SkippedLine};
use super::record::{Candidate, RawReview, validate};
use crate::preprocess::{Deduplicator, TextBounds};

/// Longest JSON line accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Columns a CSV header must have.
const REQUIRED_COLUMNS: [&str; 3] = ["product_id", "rating", "text"];

/// The layout of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    /// The format a file name suggests (`.jsonl`/`.ndjson`/`.json`, `.csv`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    /// The name stored with the job.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }
}

/// One record after the checks that need no database.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A review to denormalise and write.
    Candidate(Box<Candidate>),
    /// A line not to write, and why.
    Skip(SkippedLine),
}

/// A chunk of records, numbered from 1.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub index: u64,
    pub items: Vec<Item>,
}

/// What the reader needs.
pub(crate) struct ReadPlan {
    pub format: Format,
    pub chunk_size: usize,
    /// Chunks already committed: read again for their hashes, not sent.
    pub committed: u64,
    pub bounds: TextBounds,
}

/// Hex SHA-256 of a file's content.
pub(crate) fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Reads `path` and sends its chunks; stops early when the receiver is gone.
pub(crate) fn read(path: &Path, plan: ReadPlan, tx: mpsc::Sender<Result<Chunk, BatchError>>) {
    let mut chunker = Chunker {
        plan,
        tx,
        dedup: Deduplicator::default(),
        items: Vec::new(),
        index: 0,
    };
    let outcome = match chunker.plan.format {
        Format::Jsonl => read_jsonl(path, &mut chunker),
        Format::Csv => read_csv(path, &mut chunker),
    };
    match outcome {
        Ok(()) => {
            chunker.flush();
        }
        Err(err) => {
            let _ = chunker.tx.blocking_send(Err(err));
        }
    }
}

/// Groups records into chunks and sends those not yet committed.
struct Chunker {
    plan: ReadPlan,
    tx: mpsc::Sender<Result<Chunk, BatchError>>,
    dedup: Deduplicator,
    items: Vec<Item>,
    index: u64,
}

impl Chunker {
    /// Adds one record; false when the receiver is gone and reading should stop.
    fn push(&mut self, line: u64, record: Result<RawReview, String>) -> bool {
        let item = match record.and_then(|raw| validate(raw, line, self.plan.bounds)) {
            Ok(candidate) => match self.dedup.first_seen(candidate.hash, line) {
                Some(first) => Item::Skip(SkippedLine {
                    line,
                    kind: SkipKind::Duplicate,
                    reason: format!("same review as line {first}"),
                }),
                None => Item::Candidate(Box::new(candidate)),
            },
            Err(reason) => Item::Skip(SkippedLine {
                line,
                kind: SkipKind::Skipped,
                reason,
            }),
        };
        self.items.push(item);
        if self.items.len() >= self.plan.chunk_size {
            return self.flush();
        }
        true
    }

    /// Sends the pending records as a chunk (unless committed before); false when the
    /// receiver is gone.
    fn flush(&mut self) -> bool {
        if self.items.is_empty() {
            return true;
        }
        self.index += 1;
        let items = std::mem::take(&mut self.items);
        if self.index <= self.plan.committed {
            return true;
        }
        self.tx
            .blocking_send(Ok(Chunk {
                index: self.index,
                items,
            }))
            .is_ok()
    }
}

fn io_error(path: &Path, source: std::io::Error) -> BatchError {
    BatchError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_jsonl(path: &Path, chunker: &mut Chunker) -> Result<(), BatchError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut buf = Vec::with_capacity(1024);
    let mut line = 0u64;
    loop {
        buf.clear();
        let limit = u64::try_from(MAX_LINE_BYTES + 1).unwrap_or(u64::MAX);
        let n = (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error(path, e))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            // Drop the rest of the overlong line.
            let mut rest = Vec::new();
            reader
                .read_until(b'\n', &mut rest)
                .map_err(|e| io_error(path, e))?;
            let reason = format!("line is longer than {MAX_LINE_BYTES} bytes");
            if !chunker.push(line, Err(reason)) {
                return Ok(());
            }
            continue;
        }
        let record = match std::str::from_utf8(&buf) {
            Err(e) => Err(format!("line is not valid UTF-8: {e}")),
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => serde_json::from_str::<RawReview>(text.trim())
                .map_err(|e| format!("not a JSON review object: {e}")),
        };
        if !chunker.push(line, record) {
            return Ok(());
        }
    }
}

fn read_csv(path: &Path, chunker: &mut Chunker) -> Result<(), BatchError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(BufReader::with_capacity(256 * 1024, file));
    let headers = reader
        .byte_headers()
        .map_err(|e| BatchError::Format(format!("CSV header unreadable: {e}")))?
        .clone();
    for column in REQUIRED_COLUMNS {
        if !headers.iter().any(|h| h == column.as_bytes()) {
            return Err(BatchError::Format(format!(
                "CSV header lacks the column {column:?} (it needs {})",
                REQUIRED_COLUMNS.join(", ")
            )));
        }
    }
    let mut record = csv::ByteRecord::new();
    loop {
        let read = reader.read_byte_record(&mut record);
        let outcome = match read {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                let raw = record
                    .deserialize::<RawReview>(Some(&headers))
                    .map_err(|e| format!("not a review record: {e}"));
                (line, raw)
            }
            Err(err) => {
                let line = err.position().map_or(0, |p| p.line());
                match err.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => (
                        line,
                        Err(format!(
                            "has {len} fields where the header has {expected_len}"
                        )),
                    ),
                    csv::ErrorKind::Io(_) => {
                        return Err(BatchError::Format(format!("CSV unreadable: {err}")));
                    }
                    _ => (line, Err(format!("malformed CSV record: {err}"))),
                }
            }
        };
        if !chunker.push(outcome.0, outcome.1) {
            return Ok(());
        }
    }
}
