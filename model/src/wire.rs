//! Conversions between the crate's values and the generated protobuf messages.

use crate::embedding::{ModelInfo, TextKind};
use crate::label::{Aspect, AspectLabel, Sentiment, SentimentScores, TextLabel};
use crate::proto;

impl From<proto::TextKind> for TextKind {
    fn from(kind: proto::TextKind) -> Self {
        match kind {
            proto::TextKind::Query => Self::Query,
            proto::TextKind::Passage | proto::TextKind::Unspecified => Self::Passage,
        }
    }
}

impl From<TextKind> for proto::TextKind {
    fn from(kind: TextKind) -> Self {
        match kind {
            TextKind::Query => Self::Query,
            TextKind::Passage => Self::Passage,
        }
    }
}

impl From<Aspect> for proto::Aspect {
    fn from(aspect: Aspect) -> Self {
        match aspect {
            Aspect::Taste => Self::Taste,
            Aspect::Sweetness => Self::Sweetness,
            Aspect::Texture => Self::Texture,
            Aspect::Freshness => Self::Freshness,
            Aspect::Price => Self::Price,
            Aspect::Packaging => Self::Packaging,
            Aspect::Delivery => Self::Delivery,
            Aspect::Service => Self::Service,
        }
    }
}

/// The crate's aspect of a wire aspect (`None` for unspecified).
pub fn aspect_from_wire(aspect: proto::Aspect) -> Option<Aspect> {
    Some(match aspect {
        proto::Aspect::Unspecified => return None,
        proto::Aspect::Taste => Aspect::Taste,
        proto::Aspect::Sweetness => Aspect::Sweetness,
        proto::Aspect::Texture => Aspect::Texture,
        proto::Aspect::Freshness => Aspect::Freshness,
        proto::Aspect::Price => Aspect::Price,
        proto::Aspect::Packaging => Aspect::Packaging,
        proto::Aspect::Delivery => Aspect::Delivery,
        proto::Aspect::Service => Aspect::Service,
    })
}

impl From<Sentiment> for proto::Sentiment {
    fn from(sentiment: Sentiment) -> Self {
        match sentiment {
            Sentiment::Positive => Self::Positive,
            Sentiment::Neutral => Self::Neutral,
            Sentiment::Negative => Self::Negative,
        }
    }
}

/// The crate's sentiment of a wire sentiment (unspecified reads as neutral).
pub fn sentiment_from_wire(sentiment: proto::Sentiment) -> Sentiment {
    match sentiment {
        proto::Sentiment::Positive => Sentiment::Positive,
        proto::Sentiment::Negative => Sentiment::Negative,
        proto::Sentiment::Neutral | proto::Sentiment::Unspecified => Sentiment::Neutral,
    }
}

impl From<SentimentScores> for proto::SentimentScores {
    fn from(s: SentimentScores) -> Self {
        Self {
            positive: s.positive,
            neutral: s.neutral,
            negative: s.negative,
        }
    }
}

impl From<proto::SentimentScores> for SentimentScores {
    fn from(s: proto::SentimentScores) -> Self {
        Self {
            positive: s.positive,
            neutral: s.neutral,
            negative: s.negative,
        }
    }
}

impl From<TextLabel> for proto::TextLabel {
    fn from(label: TextLabel) -> Self {
        Self {
            sentiment: proto::Sentiment::from(label.sentiment).into(),
            scores: Some(label.scores.into()),
            aspects: label
                .aspects
                .into_iter()
                .map(|a| proto::AspectLabel {
                    aspect: proto::Aspect::from(a.aspect).into(),
                    sentiment: proto::Sentiment::from(a.sentiment).into(),
                    scores: Some(a.scores.into()),
                    relevance: a.relevance,
                })
                .collect(),
        }
    }
}

/// The crate's label of a wire label (aspects the client does not know are dropped).
pub fn label_from_wire(label: proto::TextLabel) -> TextLabel {
    let zero = SentimentScores {
        positive: 0.0,
        neutral: 1.0,
        negative: 0.0,
    };
    TextLabel {
        sentiment: sentiment_from_wire(label.sentiment()),
        scores: label.scores.map_or(zero, Into::into),
        aspects: label
            .aspects
            .into_iter()
            .filter_map(|a| {
                Some(AspectLabel {
                    aspect: aspect_from_wire(a.aspect())?,
                    sentiment: sentiment_from_wire(a.sentiment()),
                    scores: a.scores.map_or(zero, Into::into),
                    relevance: a.relevance,
                })
            })
            .collect(),
    }
}

impl From<&ModelInfo> for proto::InfoResponse {
    fn from(info: &ModelInfo) -> Self {
        Self {
            model: info.name.clone(),
            version: info.version.clone(),
            dimension: u32::try_from(info.dimension).unwrap_or(u32::MAX),
            pooling: info.pooling.clone(),
            max_texts_per_request: u32::try_from(info.max_texts_per_request).unwrap_or(u32::MAX),
        }
    }
}
