//! Turning scores into the evaluation's deterministic ranking.

/// Ids by score, highest first; equal scores by id, ascending (the README's tie rule).
pub fn order(mut scored: Vec<(String, f32)>) -> Vec<String> {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    scored.into_iter().map(|(id, _)| id).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn score_descending_then_id_ascending() {
        let scored = vec![
            ("r2".to_string(), 0.5),
            ("r9".to_string(), 0.9),
            ("r1".to_string(), 0.5),
            ("r0".to_string(), 0.0),
        ];
        assert_eq!(super::order(scored), ["r9", "r1", "r2", "r0"]);
    }
}
