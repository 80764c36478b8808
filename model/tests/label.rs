//! Labels of hand-written Korean reviews: the obvious aspects and sentiments.

mod support;

use std::sync::Arc;

use model::label::{Aspect, Sentiment, TextLabel};
use model::{Embedder, LocalEmbedder};

async fn label(texts: &[&str]) -> Option<Vec<TextLabel>> {
    let config = support::config()?;
    let embedder = Arc::new(LocalEmbedder::from_engine(support::engine()?, &config).unwrap());
    let texts = texts.iter().map(|t| t.to_string()).collect();
    Some(embedder.label(texts).await.unwrap().labels)
}

fn aspect(label: &TextLabel, aspect: Aspect) -> Option<Sentiment> {
    label
        .aspects
        .iter()
        .find(|a| a.aspect == aspect)
        .map(|a| a.sentiment)
}

#[tokio::test]
async fn obvious_reviews_get_obvious_labels() {
    let Some(labels) = label(&[
        "케이크가 정말 맛있어요! 강력 추천합니다.",
        "최악이에요. 크림에서 냄새가 나고 시트가 퍽퍽했어요.",
        "맛은 좋았지만 너무 달아서 다 못 먹었어요.",
        "배달이 한 시간이나 늦었고 포장이 다 찌그러져 왔어요.",
        "가격이 저렴한데 양도 많아서 가성비 최고예요.",
        "사장님이 너무 친절하셨어요.",
        "딸기가 신선하고 빵이 촉촉해요.",
    ])
    .await
    else {
        return;
    };
    let [praise, complaint, mixed, delivery, price, service, fresh] = labels.as_slice() else {
        panic!("one label per text");
    };
    assert_eq!(praise.sentiment, Sentiment::Positive);
    assert_eq!(aspect(praise, Aspect::Taste), Some(Sentiment::Positive));

    assert_eq!(complaint.sentiment, Sentiment::Negative);
    assert_eq!(
        aspect(complaint, Aspect::Texture),
        Some(Sentiment::Negative)
    );
    assert_eq!(
        aspect(complaint, Aspect::Freshness),
        Some(Sentiment::Negative)
    );

    assert_eq!(aspect(mixed, Aspect::Taste), Some(Sentiment::Positive));
    assert_eq!(aspect(mixed, Aspect::Sweetness), Some(Sentiment::Negative));

    assert_eq!(delivery.sentiment, Sentiment::Negative);
    assert_eq!(
        aspect(delivery, Aspect::Delivery),
        Some(Sentiment::Negative)
    );
    assert_eq!(
        aspect(delivery, Aspect::Packaging),
        Some(Sentiment::Negative)
    );

    assert_eq!(aspect(price, Aspect::Price), Some(Sentiment::Positive));
    assert_eq!(aspect(service, Aspect::Service), Some(Sentiment::Positive));
    assert_eq!(aspect(fresh, Aspect::Freshness), Some(Sentiment::Positive));
    assert_eq!(aspect(fresh, Aspect::Texture), Some(Sentiment::Positive));

    for label in &labels {
        let s = label.scores;
        assert!((s.positive + s.neutral + s.negative - 1.0).abs() < 1e-4);
        assert!(
            label
                .aspects
                .windows(2)
                .all(|w| w[0].relevance >= w[1].relevance)
        );
    }
}

#[tokio::test]
async fn labels_are_deterministic() {
    let text = "포장은 예뻤는데 케이크가 녹아서 왔어요.";
    let (Some(a), Some(b)) = (label(&[text]).await, label(&[text]).await) else {
        return;
    };
    assert_eq!(a, b);
}
