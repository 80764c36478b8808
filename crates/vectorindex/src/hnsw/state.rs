//! The in-memory HNSW graph (usearch) with the review metadata searches filter on.

use crate::error::IndexError;
use crate::exact::{TopK, dot};
use crate::model::ModelTag;
use crate::record::{Hit, SearchFilter, VectorRecord, normalized, validated};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::HnswConfig;

/// Metadata of one stored vector, keyed by its engine key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub key: u64,
    pub id: String,
    pub product_id: String,
    pub category: String,
}

/// The graph and its metadata; all engine calls go through here.
pub(crate) struct State {
    pub engine: Index,
    pub entries: HashMap<u64, Entry>,
    by_id: HashMap<String, u64>,
    by_product: HashMap<String, HashSet<u64>>,
    by_category: HashMap<String, HashSet<u64>>,
    pub next_key: u64,
    config: HnswConfig,
}

fn engine_error(e: impl std::fmt::Display) -> IndexError {
    IndexError::Engine(e.to_string())
}

/// Creates an empty usearch index for unit vectors of the model's dimension.
pub(crate) fn new_engine(tag: &ModelTag, config: &HnswConfig) -> Result<Index, IndexError> {
    let options = IndexOptions {
        dimensions: tag.dimension,
        // Vectors are unit length, so inner product is cosine similarity (distance = 1 - cos).
        metric: MetricKind::IP,
        quantization: ScalarKind::F32,
        connectivity: config.connectivity,
        expansion_add: config.expansion_add,
        expansion_search: config.expansion_search,
        multi: false,
    };
    let engine = Index::new(&options).map_err(engine_error)?;
    engine
        .reserve_capacity_and_threads(1024, config.threads)
        .map_err(engine_error)?;
    Ok(engine)
}

impl State {
    /// State around an engine and the entries stored with it; entries the engine lacks are dropped.
    pub fn new(engine: Index, entries: Vec<Entry>, next_key: u64, config: HnswConfig) -> Self {
        let mut state = Self {
            engine,
            entries: HashMap::with_capacity(entries.len()),
            by_id: HashMap::with_capacity(entries.len()),
            by_product: HashMap::new(),
            by_category: HashMap::new(),
            next_key,
            config,
        };
        let mut dropped = 0usize;
        for entry in entries {
            if state.engine.contains(entry.key) {
                state.next_key = state.next_key.max(entry.key + 1);
                state.attach(entry);
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "index metadata listed vectors the graph lacks; dropped them"
            );
        }
        state
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn attach(&mut self, entry: Entry) {
        self.by_id.insert(entry.id.clone(), entry.key);
        self.by_product
            .entry(entry.product_id.clone())
            .or_default()
            .insert(entry.key);
        self.by_category
            .entry(entry.category.clone())
            .or_default()
            .insert(entry.key);
        self.entries.insert(entry.key, entry);
    }

    fn detach(&mut self, id: &str) -> Result<(), IndexError> {
        let Some(key) = self.by_id.remove(id) else {
            return Ok(());
        };
        if let Some(entry) = self.entries.remove(&key) {
            for (map, value) in [
                (&mut self.by_product, &entry.product_id),
                (&mut self.by_category, &entry.category),
            ] {
                if let Some(keys) = map.get_mut(value) {
                    keys.remove(&key);
                    if keys.is_empty() {
                        map.remove(value);
                    }
                }
            }
        }
        self.engine.remove(key).map_err(engine_error)?;
        Ok(())
    }

    /// Inserts or replaces a batch; every record is validated before anything changes.
    pub fn upsert(&mut self, tag: &ModelTag, records: &[VectorRecord]) -> Result<(), IndexError> {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            last.insert(record.id.as_str(), i);
        }
        let batch = records
            .iter()
            .enumerate()
            .filter(|(i, r)| last.get(r.id.as_str()) == Some(i))
            .map(|(_, r)| validated(tag, r).map(|v| (r, v)))
            .collect::<Result<Vec<_>, _>>()?;
        for (record, _) in &batch {
            self.detach(&record.id)?;
        }
        self.reserve(batch.len())?;
        let first_key = self.next_key;
        self.next_key += batch.len() as u64;
        let keyed: Vec<(u64, &[f32])> = batch
            .iter()
            .enumerate()
            .map(|(i, (_, v))| (first_key + i as u64, v.as_slice()))
            .collect();
        self.add_parallel(&keyed)?;
        for (i, (record, _)) in batch.into_iter().enumerate() {
            self.attach(Entry {
                key: first_key + i as u64,
                id: record.id.clone(),
                product_id: record.product_id.clone(),
                category: record.category.clone(),
            });
        }
        Ok(())
    }

    fn reserve(&mut self, incoming: usize) -> Result<(), IndexError> {
        let needed = self.engine.size() + incoming;
        let capacity = self.engine.capacity();
        if needed > capacity {
            let target = needed.max(capacity + capacity / 2);
            self.engine
                .reserve_capacity_and_threads(target, self.config.threads)
                .map_err(engine_error)?;
        }
        Ok(())
    }

    /// Adds vectors on up to `config.threads` threads (usearch inserts are thread-safe).
    fn add_parallel(&self, keyed: &[(u64, &[f32])]) -> Result<(), IndexError> {
        let threads = self.config.threads.max(1);
        if keyed.len() < 256 || threads == 1 {
            for (key, vector) in keyed {
                self.engine.add(*key, vector).map_err(engine_error)?;
            }
            return Ok(());
        }
        let chunk = keyed.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = keyed
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        for (key, vector) in part {
                            self.engine.add(*key, vector).map_err(engine_error)?;
                        }
                        Ok::<(), IndexError>(())
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .map_err(|_| IndexError::Engine("insert thread panicked".into()))?
            })
        })
    }

    /// Removes records by id.
    pub fn remove(&mut self, ids: &[String]) -> Result<(), IndexError> {
        for id in ids {
            self.detach(id)?;
        }
        Ok(())
    }

    /// The `k` nearest records passing `filter`.
    pub fn search(
        &self,
        tag: &ModelTag,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let query = normalized(tag, "query", query)?;
        if k == 0 || self.entries.is_empty() {
            return Ok(Vec::new());
        }
        if filter.is_empty() {
            let matches = self.engine.search(&query, k).map_err(engine_error)?;
            let hits = self.hits(&matches.keys, &matches.distances);
            if hits.len() >= k.min(self.len()) {
                return Ok(hits);
            }
            // Keys without metadata (after an interrupted save) crowded out real ones.
            return self.filtered(&query, filter, k, self.len());
        }
        let Some(candidates) = self.candidates(filter) else {
            return Ok(Vec::new());
        };
        let matching = if filter.product_id.is_some() && filter.category.is_some() {
            candidates
                .iter()
                .filter(|key| self.passes(**key, filter))
                .count()
        } else {
            candidates.len()
        };
        if matching <= self.config.exact_filter_limit {
            return Ok(self.exact(&query, candidates, filter, k));
        }
        self.filtered(&query, filter, k, matching)
    }

    /// The smallest key set that contains every record passing `filter` (None: nothing passes).
    fn candidates(&self, filter: &SearchFilter) -> Option<&HashSet<u64>> {
        let product = filter.product_id.as_ref().map(|p| self.by_product.get(p));
        let category = filter.category.as_ref().map(|c| self.by_category.get(c));
        match (product, category) {
            (Some(None), _) | (_, Some(None)) => None,
            (Some(Some(p)), Some(Some(c))) => Some(if p.len() <= c.len() { p } else { c }),
            (Some(Some(p)), None) => Some(p),
            (None, Some(Some(c))) => Some(c),
            (None, None) => None,
        }
    }

    fn passes(&self, key: u64, filter: &SearchFilter) -> bool {
        self.entries
            .get(&key)
            .is_some_and(|e| filter.matches(&e.product_id, &e.category))
    }

    /// Graph search restricted by a predicate; falls back to exact scoring if it returns too few.
    fn filtered(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        k: usize,
        matching: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let matches = self
            .engine
            .filtered_search(query, k, |key| self.passes(key, filter))
            .map_err(engine_error)?;
        let hits = self.hits(&matches.keys, &matches.distances);
        if hits.len() >= k.min(matching) {
            return Ok(hits);
        }
        tracing::debug!(
            found = hits.len(),
            matching,
            "filtered graph search fell short, scoring exactly"
        );
        let all: HashSet<u64> = match self.candidates(filter) {
            Some(c) => c.clone(),
            None => self.entries.keys().copied().collect(),
        };
        Ok(self.exact(query, &all, filter, k))
    }

    /// Exact top-k over `candidates` that pass `filter`.
    fn exact(
        &self,
        query: &[f32],
        candidates: &HashSet<u64>,
        filter: &SearchFilter,
        k: usize,
    ) -> Vec<Hit> {
        let mut top = TopK::new(k);
        let mut buffer = vec![0.0f32; query.len()];
        for &key in candidates {
            if !self.passes(key, filter) {
                continue;
            }
            if matches!(self.engine.get(key, &mut buffer), Ok(1)) {
                top.push(key, dot(query, &buffer));
            }
        }
        top.into_sorted()
            .into_iter()
            .filter_map(|(key, score)| self.hit(key, score))
            .collect()
    }

    fn hits(&self, keys: &[u64], distances: &[f32]) -> Vec<Hit> {
        keys.iter()
            .zip(distances)
            .filter_map(|(key, distance)| self.hit(*key, 1.0 - distance))
            .collect()
    }

    fn hit(&self, key: u64, score: f32) -> Option<Hit> {
        self.entries.get(&key).map(|e| Hit {
            id: e.id.clone(),
            product_id: e.product_id.clone(),
            score,
        })
    }
}
