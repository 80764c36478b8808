//! Reviews stored as several vectors (passages: the whole review and each of its sentences),
//! and searches that fold passage hits back into one hit per review, scored by its best
//! passage (max-sim over a review's passages).

use std::collections::HashSet;

use crate::error::IndexError;
use crate::port::VectorIndex;
use crate::record::{Hit, SearchFilter};

/// Separates a review id from its passage number in a passage id.
pub const SEPARATOR: char = '#';
/// Passages asked of the index per review wanted, before any widening.
pub const FETCH_PER_REVIEW: usize = 4;
/// The most passages one search asks the index for.
pub const MAX_FETCH: usize = 4096;

/// The index id of passage `n` of `review_id`: the review id itself for passage 0 (the whole
/// review), `{review_id}#{n}` for the others.
pub fn passage_id(review_id: &str, n: usize) -> String {
    if n == 0 {
        review_id.to_owned()
    } else {
        format!("{review_id}{SEPARATOR}{n}")
    }
}

/// The review a passage id belongs to (an id without a passage number is a review id).
pub fn review_of(id: &str) -> &str {
    match id.rsplit_once(SEPARATOR) {
        Some((review, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => review,
        _ => id,
    }
}

/// Passage hits (best first) folded into at most `k` review hits, each with its best
/// passage's score and its review id, best first.
pub fn best_per_review(hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    let mut seen = HashSet::with_capacity(hits.len().min(k.saturating_mul(2)));
    let mut out = Vec::with_capacity(k.min(hits.len()));
    for mut hit in hits {
        if out.len() == k {
            break;
        }
        let review = review_of(&hit.id);
        if seen.contains(review) {
            continue;
        }
        seen.insert(review.to_owned());
        if review.len() != hit.id.len() {
            hit.id.truncate(review.len());
        }
        out.push(hit);
    }
    out
}

/// The `k` reviews whose best passage is most similar to `query`, best first: asks the index
/// for [`FETCH_PER_REVIEW`] passages per review and widens (up to [`MAX_FETCH`]) while the
/// passages found cover fewer than `k` reviews and the index has more.
pub async fn search_reviews(
    index: &dyn VectorIndex,
    query: &[f32],
    filter: &SearchFilter,
    k: usize,
) -> Result<Vec<Hit>, IndexError> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let mut fetch = k
        .saturating_mul(FETCH_PER_REVIEW)
        .clamp(k, MAX_FETCH.max(k));
    loop {
        let hits = index.search(query, filter, fetch).await?;
        let exhausted = hits.len() < fetch;
        let reviews = best_per_review(hits, k);
        if reviews.len() >= k || exhausted || fetch >= MAX_FETCH {
            return Ok(reviews);
        }
        fetch = fetch.saturating_mul(2).min(MAX_FETCH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32) -> Hit {
        Hit {
            id: id.into(),
            product_id: "p".into(),
            score,
        }
    }

    #[test]
    fn passage_ids_round_trip() {
        assert_eq!(passage_id("r1", 0), "r1");
        assert_eq!(passage_id("r1", 3), "r1#3");
        assert_eq!(review_of("r1#3"), "r1");
        assert_eq!(review_of("r1"), "r1");
        // Only a numeric suffix is a passage number.
        assert_eq!(review_of("a#b"), "a#b");
        assert_eq!(review_of("a#"), "a#");
    }

    #[test]
    fn folds_passages_into_their_best_review_hit() {
        let hits = vec![
            hit("r2#1", 0.9),
            hit("r1", 0.8),
            hit("r2", 0.7),
            hit("r3#2", 0.6),
            hit("r1#1", 0.5),
        ];
        let folded = best_per_review(hits.clone(), 10);
        let ids: Vec<(&str, f32)> = folded.iter().map(|h| (h.id.as_str(), h.score)).collect();
        assert_eq!(ids, [("r2", 0.9), ("r1", 0.8), ("r3", 0.6)]);
        assert_eq!(best_per_review(hits, 2).len(), 2);
    }

    #[tokio::test]
    async fn widens_until_enough_reviews_are_covered() {
        use crate::{HnswConfig, HnswIndex, ModelTag, VectorRecord};
        let dir = tempfile::tempdir().unwrap();
        let tag = ModelTag::new("m", "1", 2);
        let index = HnswIndex::open(dir.path(), tag, HnswConfig::default())
            .await
            .unwrap();
        let record = |id: String, x: f32| VectorRecord {
            id,
            product_id: "p".into(),
            category: "c".into(),
            vector: vec![1.0, x],
        };
        // Review "a" has 20 passages closer to the query than review "b"'s only one.
        let mut records: Vec<VectorRecord> = (0..20)
            .map(|n| record(passage_id("a", n), 0.01 * n as f32))
            .collect();
        records.push(record("b".into(), 1.0));
        index.upsert(&records).await.unwrap();
        let found = search_reviews(&index, &[1.0, 0.0], &SearchFilter::none(), 2)
            .await
            .unwrap();
        let ids: Vec<&str> = found.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(found[0].score > found[1].score);
        // Asking for more reviews than exist returns what there is.
        let all = search_reviews(&index, &[1.0, 0.0], &SearchFilter::none(), 5)
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
    }
}
