//! The in-process embedder: the engine behind the batcher, plus the labeller, with the same
//! input rules and back-pressure as the service (the service runs exactly this).

use std::sync::Arc;

use async_trait::async_trait;

use crate::batcher::{BatchLimits, Batcher};
use crate::config::ServiceConfig;
use crate::embedding::{Embedder, Embeddings, Labels, ModelInfo, TextKind};
use crate::engine::Engine;
use crate::error::ModelError;
use crate::label::{Labeler, anchor_phrases, clauses};

/// Most clauses of one text the labeller embeds; the rest is folded into the last clause.
const MAX_CLAUSES_PER_TEXT: usize = 16;

/// Embeds and labels in-process through a batching inference thread.
#[derive(Debug)]
pub struct LocalEmbedder {
    batcher: Batcher,
    labeler: Labeler,
    info: ModelInfo,
    max_text_bytes: usize,
}

impl LocalEmbedder {
    /// Loads the model directory of `config` (on a blocking thread) and starts batching.
    pub async fn load(config: &ServiceConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let dir = config.model_dir.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::load(&dir))
            .await
            .map_err(|e| ModelError::Batch(format!("model loading thread failed: {e}")))??;
        let engine = Arc::new(engine);
        let anchors = {
            let engine = Arc::clone(&engine);
            tokio::task::spawn_blocking(move || engine.embed(&anchor_phrases(), TextKind::Passage))
                .await
                .map_err(|e| ModelError::Batch(format!("anchor embedding failed: {e}")))??
        };
        Self::with_anchors(engine, &anchors, config)
    }

    /// Starts batching over an already loaded engine (anchors are embedded here, blocking).
    pub fn from_engine(engine: Arc<Engine>, config: &ServiceConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let anchors = engine.embed(&anchor_phrases(), TextKind::Passage)?;
        Self::with_anchors(engine, &anchors, config)
    }

    fn with_anchors(
        engine: Arc<Engine>,
        anchors: &[Vec<f32>],
        config: &ServiceConfig,
    ) -> Result<Self, ModelError> {
        let labeler = Labeler::from_anchor_vectors(anchors)
            .ok_or_else(|| ModelError::Batch("anchor embeddings are incomplete".into()))?;
        let manifest = engine.manifest();
        let info = ModelInfo {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            dimension: engine.dimension(),
            pooling: manifest.pooling.as_str().to_string(),
            max_texts_per_request: config.max_texts_per_request,
        };
        let limits = BatchLimits {
            max_batch_texts: config.max_batch_texts,
            max_batch_wait: config.max_batch_wait(),
            queue_capacity: config.queue_capacity,
            priority_max_texts: config.priority_max_texts,
            bulk_chunk_texts: config.bulk_chunk_texts,
        };
        Ok(Self {
            batcher: Batcher::start(engine, limits)?,
            labeler,
            info,
            max_text_bytes: config.max_text_bytes,
        })
    }

    /// The inference thread's counters (texts embedded, engine calls, texts queued).
    pub fn batcher_stats(&self) -> crate::batcher::BatcherStats {
        self.batcher.stats()
    }

    /// Checks the input rules: 1..=max texts, none blank, none longer than the byte limit.
    pub fn validate(&self, texts: &[String]) -> Result<(), ModelError> {
        if texts.is_empty() {
            return Err(ModelError::InvalidInput("texts must not be empty".into()));
        }
        if texts.len() > self.info.max_texts_per_request {
            return Err(ModelError::InvalidInput(format!(
                "{} texts exceed the limit of {} per request",
                texts.len(),
                self.info.max_texts_per_request
            )));
        }
        for (i, text) in texts.iter().enumerate() {
            if text.trim().is_empty() {
                return Err(ModelError::InvalidInput(format!("texts[{i}] is blank")));
            }
            if text.len() > self.max_text_bytes {
                return Err(ModelError::InvalidInput(format!(
                    "texts[{i}] has {} bytes, more than the limit of {}",
                    text.len(),
                    self.max_text_bytes
                )));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn embed(&self, texts: Vec<String>, kind: TextKind) -> Result<Embeddings, ModelError> {
        self.validate(&texts)?;
        let vectors = self.batcher.embed(texts, kind).await?;
        Ok(Embeddings {
            vectors,
            model: self.info.name.clone(),
            version: self.info.version.clone(),
        })
    }

    async fn label(&self, texts: Vec<String>) -> Result<crate::embedding::Labels, ModelError> {
        self.validate(&texts)?;
        let per_text: Vec<Vec<String>> = texts
            .iter()
            .map(|text| {
                let mut parts = clauses(text);
                if parts.len() > MAX_CLAUSES_PER_TEXT {
                    let tail = parts.split_off(MAX_CLAUSES_PER_TEXT - 1).join(" ");
                    parts.push(tail);
                }
                parts
            })
            .collect();
        let all: Vec<String> = per_text.iter().flatten().cloned().collect();
        let mut vectors = Vec::with_capacity(all.len());
        for chunk in all.chunks(self.info.max_texts_per_request) {
            vectors.extend(
                self.batcher
                    .embed(chunk.to_vec(), TextKind::Passage)
                    .await?,
            );
        }
        let mut rest = vectors.as_slice();
        let labels = per_text
            .iter()
            .map(|parts| {
                let (mine, tail) = rest.split_at(parts.len().min(rest.len()));
                rest = tail;
                self.labeler.label(parts, mine)
            })
            .collect();
        Ok(Labels {
            labels,
            model: self.info.name.clone(),
            version: self.info.version.clone(),
        })
    }
}
