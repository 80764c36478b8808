//! The [`Labeller`] over the embedding model's `label` (in-process or the model service).

use std::sync::Arc;

use async_trait::async_trait;
use model::Embedder;

use crate::labels::{AspectLabel, LabelError, Labeller, Labels};

/// Labels reviews with an [`Embedder`]'s aspect and sentiment labels.
#[derive(Clone)]
pub struct ModelLabeller {
    embedder: Arc<dyn Embedder>,
}

impl std::fmt::Debug for ModelLabeller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelLabeller")
            .field("model", &self.embedder.info().name)
            .finish()
    }
}

impl ModelLabeller {
    /// A labeller asking `embedder`.
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self { embedder }
    }
}

#[async_trait]
impl Labeller for ModelLabeller {
    async fn label(&self, texts: &[String]) -> Result<Vec<Labels>, LabelError> {
        let answer = self
            .embedder
            .label(texts.to_vec())
            .await
            .map_err(|e| match e {
                model::ModelError::InvalidInput(reason) => LabelError::BadAnswer(reason),
                other => LabelError::Unavailable(other.to_string()),
            })?;
        Ok(answer
            .labels
            .into_iter()
            .map(|label| {
                Labels {
                    sentiment: label.sentiment,
                    aspects: label
                        .aspects
                        .into_iter()
                        .map(|a| AspectLabel {
                            aspect: a.aspect,
                            sentiment: a.sentiment,
                            relevance: a.relevance,
                        })
                        .collect(),
                    model: answer.model.clone(),
                    version: answer.version.clone(),
                }
                .normalised()
            })
            .collect())
    }
}
