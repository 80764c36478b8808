//! The files of one model's HNSW index: `model.json`, `index.usearch`, `records.json`.
//!
//! Every file is written to a temporary name, synced and renamed into place.

use super::HnswConfig;
use super::state::{Entry, State, new_engine};
use crate::error::IndexError;
use crate::model::ModelTag;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

const MODEL_FILE: &str = "model.json";
const GRAPH_FILE: &str = "index.usearch";
const RECORDS_FILE: &str = "records.json";

/// The metadata saved beside the graph.
#[derive(Serialize, Deserialize)]
struct Records {
    next_key: u64,
    entries: Vec<Entry>,
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `path` atomically with `write`.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<fs::File>) -> std::io::Result<()>,
) -> Result<(), IndexError> {
    let tmp = tmp_path(path);
    let mut out = BufWriter::new(fs::File::create(&tmp)?);
    write(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Writes `value` as JSON to `path`, atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), IndexError> {
    write_atomically(path, |out| {
        serde_json::to_writer(&mut *out, value).map_err(std::io::Error::other)?;
        out.flush()
    })
}

/// Reads JSON from `path`; `None` when the file does not exist.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Option<T>, IndexError> {
    match fs::File::open(path) {
        Ok(file) => serde_json::from_reader(BufReader::new(file))
            .map(Some)
            .map_err(|e| IndexError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn path_str(path: &Path) -> Result<&str, IndexError> {
    path.to_str()
        .ok_or_else(|| IndexError::Corrupt(format!("index path {} is not UTF-8", path.display())))
}

/// Opens the index in `dir` for `tag`, creating it when the directory holds none.
pub(crate) fn open(dir: &Path, tag: &ModelTag, config: &HnswConfig) -> Result<State, IndexError> {
    fs::create_dir_all(dir)?;
    match read_json::<ModelTag>(&dir.join(MODEL_FILE))? {
        Some(found) if &found != tag => {
            return Err(IndexError::ModelMismatch {
                expected: tag.clone(),
                found,
            });
        }
        Some(_) => {}
        None => write_json(&dir.join(MODEL_FILE), tag)?,
    }
    let engine = new_engine(tag, config)?;
    let graph = dir.join(GRAPH_FILE);
    if !graph.exists() {
        return Ok(State::new(engine, Vec::new(), 0, config.clone()));
    }
    engine
        .load(path_str(&graph)?)
        .map_err(|e| IndexError::Corrupt(format!("{}: {e}", graph.display())))?;
    if engine.dimensions() != tag.dimension {
        return Err(IndexError::Corrupt(format!(
            "{} holds vectors of dimension {}, its model.json says {}",
            graph.display(),
            engine.dimensions(),
            tag.dimension
        )));
    }
    engine.change_expansion_search(config.expansion_search);
    engine.change_expansion_add(config.expansion_add);
    engine
        .reserve_capacity_and_threads(engine.size().max(1024), config.threads)
        .map_err(|e| IndexError::Engine(e.to_string()))?;
    let records: Records = read_json(&dir.join(RECORDS_FILE))?.ok_or_else(|| {
        IndexError::Corrupt(format!(
            "{} has a graph but no {RECORDS_FILE}",
            dir.display()
        ))
    })?;
    Ok(State::new(
        engine,
        records.entries,
        records.next_key,
        config.clone(),
    ))
}

/// Saves the graph and its metadata into `dir`.
pub(crate) fn save(dir: &Path, state: &State) -> Result<(), IndexError> {
    let graph = dir.join(GRAPH_FILE);
    let tmp = tmp_path(&graph);
    state
        .engine
        .save(path_str(&tmp)?)
        .map_err(|e| IndexError::Engine(e.to_string()))?;
    fs::File::open(&tmp)?.sync_all()?;
    let mut entries: Vec<&Entry> = state.entries.values().collect();
    entries.sort_unstable_by_key(|e| e.key);
    #[derive(Serialize)]
    struct RecordsRef<'a> {
        next_key: u64,
        entries: Vec<&'a Entry>,
    }
    // Metadata first: on load, entries missing from the graph are dropped, and graph keys
    // without metadata are never returned, so a crash between the renames loses nothing acknowledged
    // by a completed flush.
    write_json(
        &dir.join(RECORDS_FILE),
        &RecordsRef {
            next_key: state.next_key,
            entries,
        },
    )?;
    fs::rename(&tmp, &graph)?;
    Ok(())
}
