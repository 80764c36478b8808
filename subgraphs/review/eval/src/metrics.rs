//! The ranking metrics of the evaluation README: recall@k, nDCG@k (exponential gain) and MRR
//! (first hit of grade ≥ 2 within a cutoff), per query, and their macro average.

use std::collections::HashMap;

use serde::Serialize;

/// Grades of one query: review id → 1..=3 (unlisted reviews are 0).
pub type Grades = HashMap<String, u8>;

/// Cutoff of recall.
pub const RECALL_AT: usize = 5;
/// Cutoff of nDCG.
pub const NDCG_AT: usize = 10;
/// Cutoff of MRR: a first hit below it counts 0.
pub const MRR_AT: usize = 10;
/// Lowest grade that counts as a hit for MRR.
pub const MRR_MIN_GRADE: u8 = 2;

fn grade(grades: &Grades, id: &str) -> u8 {
    grades.get(id).copied().unwrap_or(0)
}

/// Share of the reviews with grade ≥ 1 that are among the first `k` of `ranking`.
pub fn recall_at(k: usize, ranking: &[String], grades: &Grades) -> f64 {
    let relevant = grades.values().filter(|&&g| g >= 1).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranking
        .iter()
        .take(k)
        .filter(|id| grade(grades, id) >= 1)
        .count();
    found as f64 / relevant as f64
}

/// DCG of `grades_in_order` cut at `k`: Σ (2^grade − 1) / log2(position + 1).
fn dcg(k: usize, grades_in_order: impl Iterator<Item = u8>) -> f64 {
    grades_in_order
        .take(k)
        .enumerate()
        .map(|(i, g)| (2f64.powi(i32::from(g)) - 1.0) / ((i + 2) as f64).log2())
        .sum()
}

/// DCG@k of `ranking` over the best possible DCG@k (the judged reviews by grade, descending).
pub fn ndcg_at(k: usize, ranking: &[String], grades: &Grades) -> f64 {
    let mut ideal: Vec<u8> = grades.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let best = dcg(k, ideal.into_iter());
    if best == 0.0 {
        return 0.0;
    }
    dcg(k, ranking.iter().map(|id| grade(grades, id))) / best
}

/// 1 / position of the first review within `cutoff` whose grade is at least `min_grade`; 0
/// when there is none.
pub fn reciprocal_rank(cutoff: usize, min_grade: u8, ranking: &[String], grades: &Grades) -> f64 {
    ranking
        .iter()
        .take(cutoff)
        .position(|id| grade(grades, id) >= min_grade)
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// The three figures of one query, or their mean over queries.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Scores {
    /// recall@5.
    pub recall_at_5: f64,
    /// nDCG@10.
    pub ndcg_at_10: f64,
    /// MRR (first grade ≥ 2 within 10).
    pub mrr: f64,
}

impl Scores {
    /// The figures of one query's ranking.
    pub fn of(ranking: &[String], grades: &Grades) -> Self {
        Self {
            recall_at_5: recall_at(RECALL_AT, ranking, grades),
            ndcg_at_10: ndcg_at(NDCG_AT, ranking, grades),
            mrr: reciprocal_rank(MRR_AT, MRR_MIN_GRADE, ranking, grades),
        }
    }

    /// The macro average of `scores` (all zero when there are none).
    pub fn mean(scores: &[Scores]) -> Self {
        if scores.is_empty() {
            return Self::default();
        }
        let n = scores.len() as f64;
        Self {
            recall_at_5: scores.iter().map(|s| s.recall_at_5).sum::<f64>() / n,
            ndcg_at_10: scores.iter().map(|s| s.ndcg_at_10).sum::<f64>() / n,
            mrr: scores.iter().map(|s| s.mrr).sum::<f64>() / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    fn grades(list: &[(&str, u8)]) -> Grades {
        list.iter().map(|(id, g)| ((*id).to_string(), *g)).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn recall_counts_every_grade_and_only_the_first_k() {
        let g = grades(&[("a", 3), ("c", 2), ("x", 1)]);
        // a and c are in the first 5, x is not ranked at all: 2 of 3.
        let ranking = ids(&["a", "b", "c", "d", "e", "x"]);
        assert!(close(recall_at(5, &ranking, &g), 2.0 / 3.0));
        // x at position 6 counts from k = 6 on.
        assert!(close(recall_at(6, &ranking, &g), 1.0));
        assert!(close(recall_at(5, &ids(&["b", "d"]), &g), 0.0));
        assert!(close(recall_at(5, &ranking, &Grades::new()), 0.0));
    }

    #[test]
    fn ndcg_by_hand() {
        let g = grades(&[("a", 3), ("c", 2), ("x", 1)]);
        // DCG = 7/log2 2 + 3/log2 4 = 8.5; IDCG = 7 + 3/log2 3 + 1/log2 4 = 9.39279.
        let ranking = ids(&["a", "b", "c", "d"]);
        assert!(close(ndcg_at(10, &ranking, &g), 0.904_949_505_846_097_1));
        // The ideal order scores 1; nothing relevant scores 0.
        assert!(close(ndcg_at(10, &ids(&["a", "c", "x"]), &g), 1.0));
        assert!(close(ndcg_at(10, &ids(&["b", "d"]), &g), 0.0));
        // DCG = 7/log2 3 + 1/log2 4 over IDCG = 7 + 1/log2 3 (a:3, c:1).
        let g = grades(&[("a", 3), ("c", 1)]);
        let ranking = ids(&["b", "a", "c"]);
        assert!(close(ndcg_at(10, &ranking, &g), 0.644_286_926_203_082_8));
    }

    #[test]
    fn ndcg_cuts_both_the_ranking_and_the_ideal_at_k() {
        // Two grade-3 reviews, k = 1: the ideal DCG@1 is 7, so one hit on top is perfect.
        let g = grades(&[("a", 3), ("b", 3)]);
        assert!(close(ndcg_at(1, &ids(&["a", "z", "b"]), &g), 1.0));
        // A hit just past k does not count.
        assert!(close(ndcg_at(1, &ids(&["z", "a"]), &g), 0.0));
    }

    #[test]
    fn mrr_counts_grade_two_or_more_within_the_cutoff() {
        let g = grades(&[("x", 1), ("c", 2)]);
        // x (grade 1) on top does not count; c at position 3 does.
        assert!(close(
            reciprocal_rank(10, 2, &ids(&["x", "b", "c"]), &g),
            1.0 / 3.0
        ));
        // A first hit at position 11 is past the cutoff of 10.
        let mut late = ids(&["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10"]);
        late.push("c".into());
        assert!(close(reciprocal_rank(10, 2, &late, &g), 0.0));
        assert!(close(reciprocal_rank(11, 2, &late, &g), 1.0 / 11.0));
    }

    #[test]
    fn scores_and_their_macro_average() {
        let g = grades(&[("a", 3), ("c", 2), ("x", 1)]);
        let s = Scores::of(&ids(&["a", "b", "c", "d"]), &g);
        assert!(close(s.recall_at_5, 2.0 / 3.0));
        assert!(close(s.ndcg_at_10, 0.904_949_505_846_097_1));
        assert!(close(s.mrr, 1.0));
        let zero = Scores::of(&ids(&["b"]), &g);
        let mean = Scores::mean(&[s, zero]);
        assert!(close(mean.recall_at_5, 1.0 / 3.0));
        assert!(close(mean.mrr, 0.5));
        assert_eq!(Scores::mean(&[]), Scores::default());
    }
}
