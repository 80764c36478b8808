//! KorSTS quality: Spearman correlation (×100) between the cosine similarity of two sentences'
//! vectors and the gold similarity score, over the test split's sentence pairs.

use std::path::Path;

use crate::embedding::{Embedder, TextKind, cosine};
use crate::engine::Engine;
use crate::error::ModelError;

/// One KorSTS pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Gold similarity, 0..=5.
    pub score: f64,
    /// First sentence.
    pub first: String,
    /// Second sentence.
    pub second: String,
}

/// Reads a KorSTS TSV (`genre filename year id score sentence1 sentence2`, with a header).
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [_, _, _, _, score, first, second] = fields.as_slice() else {
            return Err(ModelError::format(
                path,
                format!("line {}: expected 7 columns", number + 1),
            ));
        };
        let score = score
            .parse()
            .map_err(|_| ModelError::format(path, format!("line {}: bad score", number + 1)))?;
        pairs.push(Pair {
            score,
            first: (*first).to_string(),
            second: (*second).to_string(),
        });
    }
    Ok(pairs)
}

/// Ranks (1-based) with ties given their average rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman rank correlation of `x` and `y` (Pearson of their tie-averaged ranks).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let (rx, ry) = (ranks(x), ranks(y));
    let n = rx.len().min(ry.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// KorSTS Spearman ×100 of the vectors of `first` and `second` sentences (pair order).
pub fn spearman_of_vectors(pairs: &[Pair], first: &[Vec<f32>], second: &[Vec<f32>]) -> f64 {
    let cosines: Vec<f64> = first
        .iter()
        .zip(second)
        .map(|(a, b)| f64::from(cosine(a, b)))
        .collect();
    let gold: Vec<f64> = pairs.iter().map(|p| p.score).collect();
    100.0 * spearman(&cosines, &gold)
}

/// Embeds every sentence of `pairs` as `kind` through `embedder` and returns Spearman ×100.
pub async fn evaluate(
    embedder: &dyn Embedder,
    pairs: &[Pair],
    kind: TextKind,
) -> Result<f64, ModelError> {
    let texts: Vec<String> = pairs
        .iter()
        .flat_map(|p| [p.first.clone(), p.second.clone()])
        .collect();
    let vectors = crate::embedding::embed_all(embedder, &texts, kind).await?;
    let first: Vec<Vec<f32>> = vectors.iter().step_by(2).cloned().collect();
    let second: Vec<Vec<f32>> = vectors.iter().skip(1).step_by(2).cloned().collect();
    Ok(spearman_of_vectors(pairs, &first, &second))
}

/// Embeds every sentence of `pairs` as `kind` with `engine` directly (no queue) and returns
/// Spearman ×100.
pub fn evaluate_engine(engine: &Engine, pairs: &[Pair], kind: TextKind) -> Result<f64, ModelError> {
    let mut first = Vec::with_capacity(pairs.len());
    let mut second = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(64) {
        let a: Vec<&str> = chunk.iter().map(|p| p.first.as_str()).collect();
        let b: Vec<&str> = chunk.iter().map(|p| p.second.as_str()).collect();
        first.extend(engine.embed(&a, kind)?);
        second.extend(engine.embed(&b, kind)?);
    }
    Ok(spearman_of_vectors(pairs, &first, &second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_a_monotone_map_is_one_and_of_its_reverse_minus_one() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&x, &[10.0, 20.0, 30.0, 400.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn ties_get_their_average_rank() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }
}
