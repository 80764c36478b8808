//! The retrieval port: the reviews an answer may be grounded on.
//!
//! A [`RetrievedReview`] has no author fields at all, so no author's personal data can
//! reach a prompt through it; its text still passes [`crate::privacy::mask`] first.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// How a review feels about one aspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Sentiment {
    /// Favourable.
    Positive,
    /// Neither.
    Neutral,
    /// Unfavourable.
    Negative,
}

impl Sentiment {
    /// Every sentiment, in display order.
    pub const ALL: [Sentiment; 3] = [Self::Positive, Self::Neutral, Self::Negative];

    /// The Korean word used in prompts and answers (`긍정`, `중립`, `부정`).
    pub fn korean(self) -> &'static str {
        match self {
            Self::Positive => "긍정",
            Self::Neutral => "중립",
            Self::Negative => "부정",
        }
    }

    /// Parses the Korean word written by [`Sentiment::korean`].
    pub fn from_korean(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.korean() == word)
    }
}

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
