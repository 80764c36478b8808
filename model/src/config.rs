//! Configuration of the model service: which model directory and the batching limits.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::ModelError;
use crate::manifest::default_model_dir;

/// Settings of the model service and of the in-process embedder (both batch the same way).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// The model directory (weights, config.json, tokenizer.json, model.toml). Env `MODEL_DIR`.
    pub model_dir: PathBuf,
    /// Most texts one encoder batch gathers. Env `MODEL_MAX_BATCH_TEXTS`.
    pub max_batch_texts: usize,
    /// Longest a batch waits for more texts after its first, in milliseconds.
    /// Env `MODEL_MAX_BATCH_WAIT_MS`.
    pub max_batch_wait_ms: u64,
    /// Most texts waiting in the queue; beyond it requests fail with `Overloaded`
    /// (`RESOURCE_EXHAUSTED`). Env `MODEL_QUEUE_CAPACITY`.
    pub queue_capacity: usize,
    /// Most texts one request may carry. Env `MODEL_MAX_TEXTS_PER_REQUEST`.
    pub max_texts_per_request: usize,
    /// Longest text in bytes (UTF-8). Env `MODEL_MAX_TEXT_BYTES`.
    pub max_text_bytes: usize,
    /// Requests of at most this many texts (single queries) take the priority lane and run
    /// before waiting bulk work. Env `MODEL_PRIORITY_MAX_TEXTS`.
    pub priority_max_texts: usize,
    /// Most texts of bulk requests per encoder call; priority requests run between two such
    /// chunks. Env `MODEL_BULK_CHUNK_TEXTS`.
    pub bulk_chunk_texts: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            model_dir: default_model_dir(),
            max_batch_texts: 64,
            max_batch_wait_ms: 3,
            queue_capacity: 2048,
            max_texts_per_request: 256,
            max_text_bytes: 8192,
            priority_max_texts: 4,
            bulk_chunk_texts: 16,
        }
    }
}

impl ServiceConfig {
    /// Overrides fields from the `MODEL_*` environment variables named on each field.
    pub fn with_env(mut self) -> Result<Self, ModelError> {
        if let Some(dir) = std::env::var_os("MODEL_DIR") {
            self.model_dir = PathBuf::from(dir);
        }
        env_number("MODEL_MAX_BATCH_TEXTS", &mut self.max_batch_texts)?;
        env_number("MODEL_MAX_BATCH_WAIT_MS", &mut self.max_batch_wait_ms)?;
        env_number("MODEL_QUEUE_CAPACITY", &mut self.queue_capacity)?;
        env_number(
            "MODEL_MAX_TEXTS_PER_REQUEST",
            &mut self.max_texts_per_request,
        )?;
        env_number("MODEL_MAX_TEXT_BYTES", &mut self.max_text_bytes)?;
        env_number("MODEL_PRIORITY_MAX_TEXTS", &mut self.priority_max_texts)?;
        env_number("MODEL_BULK_CHUNK_TEXTS", &mut self.bulk_chunk_texts)?;
        self.validate()?;
        Ok(self)
    }

    /// Checks that every limit is positive and a full request fits in the queue.
    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = [
            self.max_batch_texts,
            self.queue_capacity,
            self.max_texts_per_request,
            self.max_text_bytes,
            self.bulk_chunk_texts,
        ];
        if positive.contains(&0) || self.max_texts_per_request > self.queue_capacity {
            return Err(ModelError::InvalidInput(
                "model service limits must be positive and max_texts_per_request <= queue_capacity"
                    .into(),
            ));
        }
        Ok(())
    }

    /// [`Self::max_batch_wait_ms`] as a duration.
    pub fn max_batch_wait(&self) -> Duration {
        Duration::from_millis(self.max_batch_wait_ms)
    }
}

fn env_number<T: std::str::FromStr>(name: &str, field: &mut T) -> Result<(), ModelError> {
    if let Ok(value) = std::env::var(name) {
        *field = value
            .trim()
            .parse()
            .map_err(|_| ModelError::InvalidInput(format!("{name}={value:?} is not a number")))?;
    }
    Ok(())
}
