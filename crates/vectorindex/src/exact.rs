//! Exact (brute-force) nearest-neighbour scoring over unit vectors.
//!
//! Used by the HNSW adapter for very selective filters and by the benchmark as ground truth.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Dot product of two equal-length vectors (cosine similarity when both are unit length).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A candidate and its score, ordered so that a max-heap keeps the worst on top.
#[derive(Debug, Clone, Copy)]
struct Scored<K> {
    score: f32,
    key: K,
}

impl<K> PartialEq for Scored<K> {
    fn eq(&self, other: &Self) -> bool {
        self.score.total_cmp(&other.score) == Ordering::Equal
    }
}
impl<K> Eq for Scored<K> {}
impl<K> PartialOrd for Scored<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Scored<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score)
    }
}

/// Keeps the `k` best-scoring keys seen so far.
#[derive(Debug)]
pub struct TopK<K> {
    k: usize,
    heap: BinaryHeap<Scored<K>>,
}

impl<K: Copy> TopK<K> {
    /// An empty collector of the `k` best.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Offers one candidate.
    pub fn push(&mut self, key: K, score: f32) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Scored { score, key });
        } else if self.heap.peek().is_some_and(|worst| score > worst.score) {
            self.heap.pop();
            self.heap.push(Scored { score, key });
        }
    }

    /// The kept candidates, best first.
    pub fn into_sorted(self) -> Vec<(K, f32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|s| (s.key, s.score))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn top_k_keeps_best_in_order() {
        let mut top = TopK::new(3);
        for (key, score) in [(1, 0.1), (2, 0.9), (3, 0.5), (4, 0.7), (5, -1.0)] {
            top.push(key, score);
        }
        assert_eq!(top.into_sorted(), vec![(2, 0.9), (4, 0.7), (3, 0.5)]);
    }
}
