//! Test data for the assistant's integration tests: a small shelf of Korean reviews and
//! a `Retriever` over it with a lexical (character-bigram) scorer.

#![allow(dead_code)]

use std::collections::HashSet;

use assistant::{Labels, RetrievalError, RetrievedReview, Retriever, Sentiment};
use async_trait::async_trait;

/// A stored review as the review subgraph holds it, author included.
#[derive(Debug, Clone)]
pub struct StoredReview {
    pub id: &'static str,
    pub product_id: &'static str,
    pub product_name: &'static str,
    pub author_name: &'static str,
    pub author_email: &'static str,
    pub rating: u8,
    pub text: &'static str,
    pub labels: &'static [(&'static str, Sentiment)],
}

/// An in-memory review search: reviews sharing character bigrams with the question, most
/// shared first.
#[derive(Debug, Clone)]
pub struct Shelf {
    pub reviews: Vec<StoredReview>,
}

impl Shelf {
    pub fn new(reviews: Vec<StoredReview>) -> Self {
        Self { reviews }
    }

    pub fn ids(&self) -> HashSet<&'static str> {
        self.reviews.iter().map(|r| r.id).collect()
    }

    pub fn get(&self, id: &str) -> Option<&StoredReview> {
        self.reviews.iter().find(|r| r.id == id)
    }
}

fn bigrams(text: &str) -> HashSet<(char, char)> {
    text.split_whitespace()
        .flat_map(|word| {
            let chars: Vec<char> = word.chars().filter(|c| c.is_alphanumeric()).collect();
            chars
                .windows(2)
                .map(|pair| (pair[0], pair[1]))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[async_trait]
impl Retriever for Shelf {
    async fn retrieve(
        &self,
        question: &str,
        product_id: Option<&str>,
        k: usize,
    ) -> Result<Vec<RetrievedReview>, RetrievalError> {
        let question = bigrams(question);
        let mut found: Vec<RetrievedReview> = self
            .reviews
            .iter()
            .filter(|r| product_id.is_none_or(|p| p == r.product_id))
            .filter_map(|r| {
                let shared = bigrams(r.text).intersection(&question).count();
                (shared > 0).then(|| RetrievedReview {
                    id: r.id.to_owned(),
                    product_id: r.product_id.to_owned(),
                    product_name: r.product_name.to_owned(),
                    rating: r.rating,
                    text: r.text.to_owned(),
                    labels: (!r.labels.is_empty()).then(|| {
                        r.labels
                            .iter()
                            .map(|(aspect, sentiment)| ((*aspect).to_owned(), *sentiment))
                            .collect::<Labels>()
                    }),
                    score: shared as f32,
                })
            })
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        found.truncate(k);
        Ok(found)
    }
}

const fn review(
    id: &'static str,
    product_id: &'static str,
    product_name: &'static str,
    author_name: &'static str,
    rating: u8,
    text: &'static str,
    labels: &'static [(&'static str, Sentiment)],
) -> StoredReview {
    StoredReview {
        id,
        product_id,
        product_name,
        author_name,
        author_email: "author@bloody-sweet.test",
        rating,
        text,
        labels,
    }
}

use Sentiment::{Negative, Positive};

/// Reviews of three cakes.
pub fn cakes() -> Shelf {
    Shelf::new(vec![
        review(
            "rv-1",
            "p-strawberry",
            "딸기 생크림 케이크",
            "김민지",
            5,
            "생크림이 가볍고 덜 달아서 부담 없어요. 딸기도 신선했어요.",
            &[("SWEETNESS", Positive), ("FRESHNESS", Positive)],
        ),
        review(
            "rv-2",
            "p-choco",
            "초코 퍼지 케이크",
            "박서준",
            3,
            "초코가 진하지만 너무 달아요. 커피랑 먹어야 해요.",
            &[("SWEETNESS", Negative), ("TASTE", Positive)],
        ),
        review(
            "rv-3",
            "p-cheese",
            "바스크 치즈 케이크",
            "이하늘",
            4,
            "치즈 풍미가 진하고 단맛은 적당해요. 가격이 조금 비싸요.",
            &[("TASTE", Positive), ("PRICE", Negative)],
        ),
        review(
            "rv-4",
            "p-strawberry",
            "딸기 생크림 케이크",
            "최유진",
            4,
            "배송이 빨랐어요. 포장도 꼼꼼했어요.",
            &[("DELIVERY", Positive), ("PACKAGING", Positive)],
        ),
        review(
            "rv-5",
            "p-choco",
            "초코 퍼지 케이크",
            "정도윤",
            2,
            "케이크가 뭉개져서 왔어요. 문의는 doyun.jung@example.com 이나 010-2345-6789로 연락 주세요.",
            &[("DELIVERY", Negative)],
        ),
    ])
}
