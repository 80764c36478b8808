//! The retrieval port: the reviews an answer may be grounded on.
//!
//! A [`RetrievedReview`] has no author fields at all, so no author's personal data can
//! reach a prompt through it; its text still passes [`crate::privacy::mask`] first.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use contracts::labels::Sentiment;

/// A review's labels: aspect name (`TASTE`, `SWEETNESS`, ...) → sentiment about it.
pub type Labels = BTreeMap<String, Sentiment>;

/// One review found for a question, as much of it as an answer may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedReview {
    /// The review id.
    pub id: String,
    /// The reviewed product's id.
    pub product_id: String,
    /// The reviewed product's name.
    pub product_name: String,
    /// The rating, 1..=5.
    pub rating: u8,
    /// The review text.
    pub text: String,
    /// Its aspect labels, when a labeller produced them.
    pub labels: Option<Labels>,
    /// How relevant the retriever found it (higher is more relevant).
    pub score: f32,
}

/// A retrieval failure.
#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    /// The search backend (index, embedder, review store) cannot be reached.
    #[error("review search is unavailable: {0}")]
    Unavailable(String),
    /// The search backend failed.
    #[error("review search failed: {0}")]
    Failed(String),
}

/// Finds the reviews most relevant to a question.
#[async_trait]
pub trait Retriever: Send + Sync + 'static {
    /// Up to `k` reviews most relevant to `question`, best first; only reviews of
    /// `product_id` when given.
    async fn retrieve(
        &self,
        question: &str,
        product_id: Option<&str>,
        k: usize,
    ) -> Result<Vec<RetrievedReview>, RetrievalError>;
}
