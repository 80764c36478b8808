//! Hybrid ranking: reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009) of
//! several rankings of the same documents, with the paper's constant k = 60 (not tuned here).

use std::collections::HashMap;

/// The constant of reciprocal rank fusion.
pub const RRF_K: f64 = 60.0;

/// Documents by Σ 1 / (k + rank) over `rankings` (rank 1-based), best first; ties by id.
pub fn reciprocal_rank_fusion(rankings: &[&[String]]) -> Vec<String> {
    let mut scores: HashMap<&str, f64> = HashMap::new();
    for ranking in rankings {
        for (i, id) in ranking.iter().enumerate() {
            *scores.entry(id.as_str()).or_default() += 1.0 / (RRF_K + (i + 1) as f64);
        }
    }
    let mut scored: Vec<(&str, f64)> = scores.into_iter().collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    scored.into_iter().map(|(id, _)| id.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn agreement_wins_and_ties_go_by_id() {
        let a = ids(&["x", "y", "z"]);
        let b = ids(&["y", "x", "z"]);
        // x and y: 1/61 + 1/62 each (a tie, so by id); z: 2/63.
        assert_eq!(reciprocal_rank_fusion(&[&a, &b]), ["x", "y", "z"]);
        let c = ids(&["z", "y", "x"]);
        // y: 1/62 + 1/61 + 1/62 beats x: 1/61 + 1/62 + 1/63.
        assert_eq!(reciprocal_rank_fusion(&[&a, &b, &c])[0], "y");
    }
}
