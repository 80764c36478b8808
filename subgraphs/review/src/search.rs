//! Semantic search over reviews, product recommendations by review similarity and rating,
//! and the assistant's [`Retriever`] over both.

use std::collections::HashMap;

use assistant::search_text::titled;
use assistant::{RetrievalError, RetrievedReview, Retriever};
use async_trait::async_trait;
use model::TextKind;
use vectorindex::SearchFilter;
use vectorindex::passage::search_reviews;

use crate::error::ServiceError;
use crate::reviews_view::{Rating, ReviewDoc, ReviewViews};
use crate::vectors::ReviewVectors;

/// Most candidate reviews one recommendation looks at.
const MAX_CANDIDATES: usize = 200;
/// Candidate reviews per recommended product asked for.
const CANDIDATES_PER_PRODUCT: usize = 10;
/// How many of a product's best-matching reviews make its similarity.
const TOP_PER_PRODUCT: usize = 3;
/// How many of a liked product's reviews describe it.
const LIKE_REVIEWS: usize = 16;
/// Weight of review similarity in a recommendation's score (the rest is its rating).
const SIMILARITY_WEIGHT: f64 = 0.8;

/// One review found, with its cosine similarity to the query.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The review.
    pub review: ReviewDoc,
    /// Cosine similarity, higher is closer.
    pub score: f32,
}

/// What recommendations are like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Like {
    /// Products whose reviews match this text.
    Query(String),
    /// Products whose reviews resemble this product's reviews (itself excluded).
    Product(String),
}

/// A recommended product.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The product.
    pub product_id: String,
    /// The ranking score in 0..=1: 0.8 × similarity relative to the other candidates (0 the
    /// least, 1 the most similar) + 0.2 × rating on a 0..1 scale.
    pub score: f64,
    /// Mean similarity of its best-matching reviews.
    pub similarity: f64,
    /// Its rating.
    pub rating: Rating,
    /// How many of its reviews matched.
    pub matching_reviews: usize,
}

/// Review search over the vector index and the `reviews` read model; cheap to clone.
#[derive(Clone)]
pub struct ReviewSearch {
    vectors: ReviewVectors,
    views: ReviewViews,
}

impl std::fmt::Debug for ReviewSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewSearch")
            .field("vectors", &self.vectors)
            .finish_non_exhaustive()
    }
}

impl ReviewSearch {
    /// Search over `vectors`, reading reviews from `views`.
    pub fn new(vectors: ReviewVectors, views: ReviewViews) -> Self {
        Self { vectors, views }
    }

    /// The `first` reviews most similar to `query` that pass `filter`, best first.
    #[tracing::instrument(skip_all, fields(first))]
    pub async fn search(
        &self,
        query: &str,
        filter: &SearchFilter,
        first: usize,
    ) -> Result<Vec<SearchHit>, ServiceError> {
        let (mut vectors, index) = self
            .vectors
            .embed(&[query.to_owned()], TextKind::Query)
            .await?;
        let Some(vector) = vectors.pop() else {
            return Ok(Vec::new());
        };
        let hits = search_reviews(index.as_ref(), &vector, filter, first).await?;
        let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
        let mut docs = self.views.get_many(&ids).await?;
        // A hit the read model no longer has is dropped, never shown half-known.
        Ok(hits
            .into_iter()
            .filter_map(|hit| {
                Some(SearchHit {
                    review: docs.remove(&hit.id)?,
                    score: hit.score,
                })
            })
            .collect())
    }

    /// Up to `first` products ranked by how well their reviews match `like` and by rating.
    #[tracing::instrument(skip_all, fields(first))]
    pub async fn recommend(
        &self,
        like: &Like,
        first: usize,
    ) -> Result<Vec<Recommendation>, ServiceError> {
        let (vector, index, exclude) = match like {
            Like::Query(text) => {
                let (mut vectors, index) = self
                    .vectors
                    .embed(std::slice::from_ref(text), TextKind::Query)
                    .await?;
                (vectors.pop().unwrap_or_default(), index, None)
            }
            Like::Product(product_id) => {
                let page = self.views.page(product_id, LIKE_REVIEWS, None).await?;
                if page.reviews.is_empty() {
                    return Err(ServiceError::bad_input(
                        "likeProductId",
                        "this product has no reviews to compare with",
                    ));
                }
                let texts: Vec<String> = page
                    .reviews
                    .iter()
                    .map(|r| titled(&r.product_name, &r.text))
                    .collect();
                let (vectors, index) = self.vectors.embed(&texts, TextKind::Passage).await?;
                (mean(&vectors), index, Some(product_id.as_str()))
            }
        };
        if vector.is_empty() {
            return Ok(Vec::new());
        }
        let k = first
            .saturating_add(1)
            .saturating_mul(CANDIDATES_PER_PRODUCT)
            .min(MAX_CANDIDATES);
        let hits = search_reviews(index.as_ref(), &vector, &SearchFilter::none(), k).await?;
        let mut by_product: HashMap<String, Vec<f32>> = HashMap::new();
        for hit in hits {
            if Some(hit.product_id.as_str()) != exclude {
                by_product
                    .entry(hit.product_id)
                    .or_default()
                    .push(hit.score);
            }
        }
        let ids: Vec<String> = by_product.keys().cloned().collect();
        let ratings = self.views.ratings(&ids).await?;
        let mut ranked: Vec<Recommendation> = by_product
            .into_iter()
            .map(|(product_id, mut scores)| {
                scores.sort_by(|a, b| b.total_cmp(a));
                let top = &scores[..scores.len().min(TOP_PER_PRODUCT)];
                let similarity = top.iter().map(|s| f64::from(*s)).sum::<f64>() / top.len() as f64;
                Recommendation {
                    score: 0.0,
                    similarity,
                    rating: ratings.get(&product_id).copied().unwrap_or_default(),
                    matching_reviews: scores.len(),
                    product_id,
                }
            })
            .collect();
        // Cosine similarities of one model sit in a narrow band: rank on where each product
        // sits between the least and the most similar candidate, so the rating refines the
        // order of close matches instead of overriding it.
        let low = ranked
            .iter()
            .map(|r| r.similarity)
            .fold(f64::INFINITY, f64::min);
        let high = ranked
            .iter()
            .map(|r| r.similarity)
            .fold(f64::NEG_INFINITY, f64::max);
        for r in &mut ranked {
            let relative = if high > low {
                (r.similarity - low) / (high - low)
            } else {
                1.0
            };
            // Unrated products sit in the middle of the rating scale.
            let stars = r.rating.average().map_or(0.5, |avg| (avg - 1.0) / 4.0);
            r.score = SIMILARITY_WEIGHT * relative + (1.0 - SIMILARITY_WEIGHT) * stars;
        }
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.product_id.cmp(&b.product_id))
        });
        ranked.truncate(first);
        Ok(ranked)
    }
}

/// The unit-length mean of `vectors` (empty when there are none).
fn mean(vectors: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = vectors.first() else {
        return Vec::new();
    };
    let mut sum = vec![0.0f32; first.len()];
    for vector in vectors {
        for (s, x) in sum.iter_mut().zip(vector) {
            *s += x;
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        sum.iter_mut().for_each(|x| *x /= norm);
    }
    sum
}

#[async_trait]
impl Retriever for ReviewSearch {
    async fn retrieve(
        &self,
        question: &str,
        product_id: Option<&str>,
        k: usize,
    ) -> Result<Vec<RetrievedReview>, RetrievalError> {
        let filter = SearchFilter {
            product_id: product_id.map(str::to_owned),
            category: None,
        };
        let hits = self
            .search(question, &filter, k)
            .await
            .map_err(|err| match err {
                ServiceError::Reindexing(_)
                | ServiceError::Model(_)
                | ServiceError::AiUnavailable => RetrievalError::Unavailable(err.to_string()),
                other => RetrievalError::Failed(other.to_string()),
            })?;
        Ok(hits.into_iter().map(retrieved).collect())
    }
}

/// What the assistant may see of a review: no author, order or date fields at all.
fn retrieved(hit: SearchHit) -> RetrievedReview {
    let doc = hit.review;
    RetrievedReview {
        labels: doc.labels.map(|labels| {
            labels
                .aspects
                .iter()
                .map(|a| (a.aspect.as_str().to_owned(), a.sentiment))
                .collect()
        }),
        id: doc.id,
        product_id: doc.product_id,
        product_name: doc.product_name,
        rating: u8::try_from(doc.rating.clamp(1, 5)).unwrap_or(5),
        text: doc.text,
        score: hit.score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_is_unit_length() {
        let m = mean(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!((m[0] - m[1]).abs() < 1e-6);
        assert!((m.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(mean(&[]).is_empty());
    }
}
