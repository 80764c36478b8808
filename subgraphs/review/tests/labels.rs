//! Labelling through the `Labeller` port: texts go out in order, answers are recorded as
//! `ReviewLabelled` events and reach the read model; a labeller that answers the wrong number
//! of texts is refused. The labeller here is a small keyword labeller written for the test
//! (the model service's adapter is built with the model service).

mod support;

use async_trait::async_trait;
use auth::Identity;
use review::{
    Aspect, AspectLabel, LabelError, Labeller, Labels, ReviewService, Sentiment, WriteReview,
};
use support::{Backend, Stack};

/// Finds sweetness complaints and praise by keyword.
struct KeywordLabeller;

#[async_trait]
impl Labeller for KeywordLabeller {
    async fn label(&self, texts: &[String]) -> Result<Vec<Labels>, LabelError> {
        Ok(texts
            .iter()
            .map(|text| {
                let sentiment = if text.contains("너무 달") {
                    Sentiment::Negative
                } else {
                    Sentiment::Positive
                };
                Labels {
                    sentiment,
                    aspects: vec![AspectLabel {
                        aspect: Aspect::Sweetness,
                        sentiment,
                        relevance: 0.7,
                    }],
                    model: "keywords".into(),
                    version: "1".into(),
                }
            })
            .collect())
    }
}

/// Answers one text too few.
struct ShortLabeller;

#[async_trait]
impl Labeller for ShortLabeller {
    async fn label(&self, texts: &[String]) -> Result<Vec<Labels>, LabelError> {
        let mut labels = KeywordLabeller.label(texts).await?;
        labels.pop();
        Ok(labels)
    }
}

#[tokio::test]
async fn labels_are_recorded_and_summarised() {
    let stack = Stack::new(Backend::Sqlite).await;
    stack.product("p1", "마카롱", "macaron").await;
    let service = ReviewService::new(stack.store.clone(), stack.models.clone())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (customer, text) in [("c1", "너무 달아요"), ("c2", "적당히 달콤해요")] {
        let order = stack.order(customer, &["p1"], true).await;
        let doc = service
            .write(
                Some(&Identity::customer(customer)),
                WriteReview {
                    order_id: order,
                    product_id: "p1".into(),
                    rating: 3,
                    text: text.into(),
                },
            )
            .await
            .unwrap();
        assert!(doc.labels.is_none());
        ids.push(doc.id.parse::<uuid::Uuid>().unwrap());
    }
    let err = service
        .label_reviews(&ShortLabeller, &ids)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "LABELLER_BAD_ANSWER");

    let unknown = uuid::Uuid::new_v4();
    let labelled = service
        .label_reviews(&KeywordLabeller, &[ids[0], unknown, ids[1]])
        .await
        .unwrap();
    assert_eq!(labelled, 2);
    stack.project().await;
    let too_sweet = service.get(&ids[0].to_string()).await.unwrap().unwrap();
    assert_eq!(too_sweet.labels.unwrap().sentiment, Sentiment::Negative);
    let summary = service.views().summary("p1").await.unwrap();
    let counts: Vec<(Aspect, Sentiment, i64)> = summary
        .iter()
        .map(|c| (c.aspect, c.sentiment, c.count))
        .collect();
    assert_eq!(
        counts,
        vec![
            (Aspect::Sweetness, Sentiment::Negative, 1),
            (Aspect::Sweetness, Sentiment::Positive, 1),
        ]
    );
    // The same answer again changes nothing.
    let before = stack.all_events().await.len();
    service.label_reviews(&KeywordLabeller, &ids).await.unwrap();
    assert_eq!(stack.all_events().await.len(), before);
}
