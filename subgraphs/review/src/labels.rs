//! Review labels (which aspects a review talks about, and with what sentiment) and the
//! [`Labeller`] port that produces them.
//!
//! The model service's `Label` rpc is the production labeller (its adapter is built with the
//! model service); this crate only records what a labeller answers, as `ReviewLabelled`
//! events. There is no fallback labeller: a review nobody labelled shows `labels: null`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use contracts::labels::{Aspect, Sentiment};

/// One aspect a review talks about and how.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AspectLabel {
    /// The aspect.
    pub aspect: Aspect,
    /// The sentiment about it.
    pub sentiment: Sentiment,
    /// How strongly the text is about it, 0..=1.
    pub relevance: f32,
}

/// The labels of one review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    /// Overall sentiment.
    pub sentiment: Sentiment,
    /// Aspects, most relevant first; each aspect at most once.
    pub aspects: Vec<AspectLabel>,
    /// The model that produced them.
    pub model: String,
    /// The model's version.
    pub version: String,
}

impl Labels {
    /// Keeps the first label of each aspect and drops relevances outside 0..=1 (NaN included).
    pub fn normalised(mut self) -> Self {
        let mut seen = std::collections::HashSet::new();
        self.aspects
            .retain(|a| (0.0..=1.0).contains(&a.relevance) && seen.insert(a.aspect));
        self
    }
}

/// Why a labeller gave no labels.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The labeller could not be reached or failed; try again later.
    #[error("labeller unavailable: {0}")]
    Unavailable(String),
    /// The labeller answered with something unusable (wrong count, unknown values).
    #[error("labeller answered badly: {0}")]
    BadAnswer(String),
}

/// Labels review texts with aspects and sentiment (the model service's `Label` rpc).
#[async_trait]
pub trait Labeller: Send + Sync {
    /// One [`Labels`] per text, in input order.
    async fn label(&self, texts: &[String]) -> Result<Vec<Labels>, LabelError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for aspect in Aspect::ALL {
            assert_eq!(Aspect::from_name(aspect.as_str()), Some(aspect));
            let json = serde_json::to_string(&aspect).unwrap();
            assert_eq!(json, format!("\"{}\"", aspect.as_str()));
        }
        for sentiment in Sentiment::ALL {
            assert_eq!(Sentiment::from_name(sentiment.as_str()), Some(sentiment));
        }
        assert_eq!(Aspect::from_name("taste"), None);
    }

    #[test]
    fn normalising_keeps_one_label_per_aspect() {
        let label = |aspect, relevance| AspectLabel {
            aspect,
            sentiment: Sentiment::Positive,
            relevance,
        };
        let labels = Labels {
            sentiment: Sentiment::Positive,
            aspects: vec![
                label(Aspect::Taste, 0.9),
                label(Aspect::Taste, 0.5),
                label(Aspect::Price, f32::NAN),
                label(Aspect::Delivery, 0.2),
            ],
            model: "m".into(),
            version: "1".into(),
        }
        .normalised();
        let aspects: Vec<Aspect> = labels.aspects.iter().map(|a| a.aspect).collect();
        assert_eq!(aspects, vec![Aspect::Taste, Aspect::Delivery]);
    }
}
