//! The `Review` aggregate: one stream per review (`review-{id}`), written once and labelled
//! later. A review's id is derived from what it reviews, so the event store's expected
//! version is what enforces "one review per order line".

use chrono::{DateTime, Utc};
use eventstore::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::labels::Labels;
use crate::preprocess::{MAX_TEXT_CHARS, MIN_TEXT_CHARS};

/// Namespace of review ids (UUID v5).
const REVIEW_NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_02a4_8f0e_4c3b_9a57_3f2e_b1d0_7c11);

/// Lowest rating.
pub const MIN_RATING: i64 = 1;
/// Highest rating.
pub const MAX_RATING: i64 = 5;

/// The id of the review of `product_id` in order `order_id`: one per order line.
pub fn review_id_for_order_line(order_id: &str, product_id: &str) -> Uuid {
    Uuid::new_v5(
        &REVIEW_NAMESPACE,
        format!("order-line\u{0}{order_id}\u{0}{product_id}").as_bytes(),
    )
}

/// The id of an imported review that names no order: one per distinct content.
pub fn review_id_for_content(content_hash: &str) -> Uuid {
    Uuid::new_v5(
        &REVIEW_NAMESPACE,
        format!("content\u{0}{content_hash}").as_bytes(),
    )
}

/// Where an imported review came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSource {
    /// The batch job that imported it.
    pub job_id: String,
    /// Its line in the imported file.
    pub line: u64,
    /// Its id in the source system, if the file gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// A review was written (by its author through the API, or imported from history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewWritten {
    /// The review.
    pub review_id: Uuid,
    /// The product reviewed.
    pub product_id: String,
    /// The product's name when the review was written.
    pub product_name: String,
    /// The product's category, when the catalog knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_category: Option<String>,
    /// The order the product came in (absent for some imported reviews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// When that order was placed, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_date: Option<DateTime<Utc>>,
    /// Cognito `sub` of the author (absent for anonymous imported reviews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<String>,
    /// 1..=5 stars.
    pub rating: i64,
    /// The cleaned text.
    pub text: String,
    /// Hex SHA-256 of product, author and text (see `preprocess::ContentHash`).
    pub content_hash: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// The import it came from, for imported reviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ImportSource>,
}

/// A review was labelled with aspects and sentiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewLabelled {
    /// The review.
    pub review_id: Uuid,
    /// The labels.
    pub labels: Labels,
    /// When they were recorded.
    pub labelled_at: DateTime<Utc>,
}

/// What happened to a review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ReviewEvent {
    /// Written.
    ReviewWritten(ReviewWritten),
    /// Labelled (again, when the labels changed).
    ReviewLabelled(ReviewLabelled),
}

/// Event type of [`ReviewWritten`].
pub const REVIEW_WRITTEN: &str = "ReviewWritten";
/// Event type of [`ReviewLabelled`].
pub const REVIEW_LABELLED: &str = "ReviewLabelled";

impl DomainEvent for ReviewEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ReviewWritten(_) => REVIEW_WRITTEN,
            Self::ReviewLabelled(_) => REVIEW_LABELLED,
        }
    }
}

/// What can be asked of a review.
#[derive(Debug, Clone)]
pub enum ReviewCommand {
    /// Write it (the caller has checked eligibility and cleaned the text).
    Write(Box<ReviewWritten>),
    /// Record labels from a labeller.
    Label(Labels),
}

/// Why a review command was refused; `code()` is the GraphQL `extensions.code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// This order line already has its review.
    #[error("this product of this order is already reviewed")]
    AlreadyReviewed,
    /// An input breaks a rule; `field` names it.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The input at fault (`rating`, `text`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No review with this id.
    #[error("review not found")]
    NotFound,
}

impl ReviewError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyReviewed => "ALREADY_REVIEWED",
            Self::Invalid { .. } => "BAD_USER_INPUT",
            Self::NotFound => "NOT_FOUND",
        }
    }
}

/// Checks a rating.
pub fn check_rating(rating: i64) -> Result<(), ReviewError> {
    if (MIN_RATING..=MAX_RATING).contains(&rating) {
        Ok(())
    } else {
        Err(ReviewError::Invalid {
            field: "rating",
            reason: format!("must be {MIN_RATING} to {MAX_RATING}, got {rating}"),
        })
    }
}

/// A review's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// What was written; `None` before the review exists.
    pub written: Option<ReviewWritten>,
    /// The latest labels, once labelled.
    pub labels: Option<Labels>,
}

impl Aggregate for Review {
    const CATEGORY: &'static str = "review";
    type Command = ReviewCommand;
    type Event = ReviewEvent;
    type Error = ReviewError;

    fn handle(&self, command: ReviewCommand) -> Result<Vec<ReviewEvent>, ReviewError> {
        match command {
            ReviewCommand::Write(written) => {
                if self.written.is_some() {
                    return Err(ReviewError::AlreadyReviewed);
                }
                check_rating(written.rating)?;
                let chars = written.text.chars().count();
                if !(MIN_TEXT_CHARS..=MAX_TEXT_CHARS).contains(&chars) {
                    return Err(ReviewError::Invalid {
                        field: "text",
                        reason: format!(
                            "must be {MIN_TEXT_CHARS} to {MAX_TEXT_CHARS} characters, got {chars}"
                        ),
                    });
                }
                Ok(vec![ReviewEvent::ReviewWritten(*written)])
            }
            ReviewCommand::Label(labels) => {
                let Some(written) = &self.written else {
                    return Err(ReviewError::NotFound);
                };
                let labels = labels.normalised();
                if self.labels.as_ref() == Some(&labels) {
                    return Ok(vec![]);
                }
                Ok(vec![ReviewEvent::ReviewLabelled(ReviewLabelled {
                    review_id: written.review_id,
                    labels,
                    labelled_at: Utc::now(),
                })])
            }
        }
    }

    fn apply(&mut self, event: &ReviewEvent) {
        match event {
            ReviewEvent::ReviewWritten(w) => self.written = Some(w.clone()),
            ReviewEvent::ReviewLabelled(l) => self.labels = Some(l.labels.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use eventstore::testing::AggregateTest;

    use super::*;
    use crate::labels::{Aspect, AspectLabel, Sentiment};

    fn written(rating: i64, text: &str) -> ReviewWritten {
        ReviewWritten {
            review_id: review_id_for_order_line("o1", "p1"),
            product_id: "p1".into(),
            product_name: "딸기 케이크".into(),
            product_category: Some("cake".into()),
            order_id: Some("o1".into()),
            order_date: None,
            author_id: Some("u1".into()),
            rating,
            text: text.into(),
            content_hash: "00".into(),
            created_at: Utc::now(),
            source: None,
        }
    }

    fn labels(sentiment: Sentiment) -> Labels {
        Labels {
            sentiment,
            aspects: vec![AspectLabel {
                aspect: Aspect::Sweetness,
                sentiment,
                relevance: 0.8,
            }],
            model: "test".into(),
            version: "1".into(),
        }
    }

    #[test]
    fn ids_are_one_per_order_line() {
        assert_eq!(
            review_id_for_order_line("o1", "p1"),
            review_id_for_order_line("o1", "p1")
        );
        assert_ne!(
            review_id_for_order_line("o1", "p1"),
            review_id_for_order_line("o1", "p2")
        );
        assert_ne!(
            review_id_for_order_line("o1", "p1"),
            review_id_for_order_line("o1\u{0}p", "1")
        );
    }

    #[test]
    fn writes_once() {
        let w = written(5, "맛있어요");
        AggregateTest::<Review>::given(vec![])
            .when(ReviewCommand::Write(Box::new(w.clone())))
            .then_expect_events(vec![ReviewEvent::ReviewWritten(w.clone())]);
        AggregateTest::<Review>::given(vec![ReviewEvent::ReviewWritten(w.clone())])
            .when(ReviewCommand::Write(Box::new(w)))
            .then_expect_error(|e| e.code() == "ALREADY_REVIEWED");
    }

    #[test]
    fn refuses_bad_ratings_and_texts() {
        for (rating, text, field) in [
            (0, "좋아요", "rating"),
            (6, "좋아요", "rating"),
            (3, "", "text"),
        ] {
            AggregateTest::<Review>::given(vec![])
                .when(ReviewCommand::Write(Box::new(written(rating, text))))
                .then_expect_error(
                    |err| matches!(err, ReviewError::Invalid { field: f, .. } if *f == field),
                );
        }
        let long = "가".repeat(MAX_TEXT_CHARS + 1);
        AggregateTest::<Review>::given(vec![])
            .when(ReviewCommand::Write(Box::new(written(3, &long))))
            .then_expect_error(|e| e.code() == "BAD_USER_INPUT");
    }

    #[test]
    fn labels_only_written_reviews_and_only_changes() {
        AggregateTest::<Review>::given(vec![])
            .when(ReviewCommand::Label(labels(Sentiment::Positive)))
            .then_expect_error(|e| e.code() == "NOT_FOUND");
        let w = ReviewEvent::ReviewWritten(written(4, "달지 않아요"));
        let mut review = Review::default();
        review.apply(&w);
        let events = review
            .handle(ReviewCommand::Label(labels(Sentiment::Positive)))
            .unwrap();
        assert_eq!(events.len(), 1);
        review.apply(&events[0]);
        assert_eq!(review.labels, Some(labels(Sentiment::Positive)));
        assert!(
            review
                .handle(ReviewCommand::Label(labels(Sentiment::Positive)))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            review
                .handle(ReviewCommand::Label(labels(Sentiment::Negative)))
                .unwrap()
                .len(),
            1
        );
    }
}
