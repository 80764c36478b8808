//! The review-label vocabulary shared by the model service (which produces labels), the review
//! subgraph (which records them) and the assistant (which cites them): aspects a review talks
//! about and the sentiment about each, with their stored names.

use serde::{Deserialize, Serialize};

/// Something a review can talk about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Aspect {
    /// How it tastes (맛).
    Taste,
    /// How sweet it is (당도).
    Sweetness,
    /// Texture: moist, dense, crisp, soggy (식감).
    Texture,
    /// How fresh it is (신선도).
    Freshness,
    /// Price and portion (가격).
    Price,
    /// Packaging (포장).
    Packaging,
    /// Delivery: time, state on arrival (배달/배송).
    Delivery,
    /// Staff and complaint handling (서비스).
    Service,
}

impl Aspect {
    /// Every aspect, in declaration order.
    pub const ALL: [Aspect; 8] = [
        Self::Taste,
        Self::Sweetness,
        Self::Texture,
        Self::Freshness,
        Self::Price,
        Self::Packaging,
        Self::Delivery,
        Self::Service,
    ];

    /// The stored name (`TASTE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Taste => "TASTE",
            Self::Sweetness => "SWEETNESS",
            Self::Texture => "TEXTURE",
            Self::Freshness => "FRESHNESS",
            Self::Price => "PRICE",
            Self::Packaging => "PACKAGING",
            Self::Delivery => "DELIVERY",
            Self::Service => "SERVICE",
        }
    }

    /// Parses the stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// How a text feels about something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Sentiment {
    /// Favourable.
    Positive,
    /// Neither (or balanced).
    Neutral,
    /// Unfavourable.
    Negative,
}

impl Sentiment {
    /// Every sentiment, in display order.
    pub const ALL: [Sentiment; 3] = [Self::Positive, Self::Neutral, Self::Negative];

    /// The stored name (`POSITIVE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "POSITIVE",
            Self::Neutral => "NEUTRAL",
            Self::Negative => "NEGATIVE",
        }
    }

    /// Parses the stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

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
