//! Review labels without a trained head: which aspects a text talks about and with what
//! sentiment, from a Korean lexicon ([`crate::lexicon`]) and cosine similarity to anchor phrases
//! embedded once. Deterministic: the same text and model give the same labels.
//!
//! A text is cut into clauses (at punctuation and contrast connectives such as "지만"). A
//! clause is about an aspect when it contains one of its stems, or when its embedding is
//! clearly closer to that aspect's anchors than to the others'. A clause's sentiment is the
//! count of positive minus negative stems (a negation flips a stem), nudged by how much closer
//! the clause is to the positive than to the negative anchors; aspects and the whole text
//! average the sentiment of their clauses.

use crate::embedding::cosine;
use crate::lexicon::{
    ASPECT_ANCHORS, ASPECT_STEMS, CLAUSE_BREAKS, NEGATION_AFTER, NEGATION_BEFORE, NEGATIVE_ANCHORS,
    NEGATIVE_STEMS, POSITIVE_ANCHORS, POSITIVE_STEMS,
};

pub use contracts::labels::{Aspect, Sentiment};

/// Probabilities of the three sentiments (summing to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SentimentScores {
    /// Probability of positive.
    pub positive: f32,
    /// Probability of neutral.
    pub neutral: f32,
    /// Probability of negative.
    pub negative: f32,
}

/// One aspect of a text.
#[derive(Debug, Clone, PartialEq)]
pub struct AspectLabel {
    /// The aspect.
    pub aspect: Aspect,
    /// The sentiment about it.
    pub sentiment: Sentiment,
    /// Sentiment probabilities.
    pub scores: SentimentScores,
    /// How strongly the text is about the aspect, 0..=1.
    pub relevance: f32,
}

/// Labels of one text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLabel {
    /// Overall sentiment.
    pub sentiment: Sentiment,
    /// Overall sentiment probabilities.
    pub scores: SentimentScores,
    /// Aspects the text talks about, most relevant first.
    pub aspects: Vec<AspectLabel>,
}

/// Bias towards neutral in the sentiment softmax (a polarity must beat it).
const NEUTRAL_BIAS: f32 = 0.6;
/// Weight of the anchor-similarity difference in a clause's polarity.
const ANCHOR_WEIGHT: f32 = 8.0;
/// How much closer (in cosine) than the mean of the other aspects a clause must be to an
/// aspect's anchors to count as about it without a stem.
const ASPECT_MARGIN: f32 = 0.035;

/// Anchor embeddings: the labeller's only model-dependent state.
#[derive(Debug, Clone)]
pub struct Labeler {
    aspects: Vec<(Aspect, Vec<f32>)>,
    positive: Vec<f32>,
    negative: Vec<f32>,
}

/// Every anchor phrase, in the order [`Labeler::from_anchor_vectors`] expects their vectors.
pub fn anchor_phrases() -> Vec<&'static str> {
    let mut phrases: Vec<&str> = ASPECT_ANCHORS
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    phrases.extend(POSITIVE_ANCHORS);
    phrases.extend(NEGATIVE_ANCHORS);
    phrases
}

impl Labeler {
    /// Builds a labeller from the embeddings of [`anchor_phrases`] (same order).
    pub fn from_anchor_vectors(vectors: &[Vec<f32>]) -> Option<Self> {
        if vectors.len() != anchor_phrases().len() {
            return None;
        }
        let mut rest = vectors;
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            mean(head)
        };
        let aspects = ASPECT_ANCHORS
            .iter()
            .map(|(aspect, phrases)| (*aspect, take(phrases.len())))
            .collect();
        let positive = take(POSITIVE_ANCHORS.len());
        let negative = take(NEGATIVE_ANCHORS.len());
        Some(Self {
            aspects,
            positive,
            negative,
        })
    }

    /// Labels one text from its clauses ([`clauses`]) and their embeddings (same order).
    pub fn label(&self, clauses: &[String], vectors: &[Vec<f32>]) -> TextLabel {
        let mut overall = Vec::new();
        let mut per_aspect: Vec<(Aspect, f32, f32, f32)> = Vec::new(); // aspect, Σw·p, Σw, max w
        for (clause, vector) in clauses.iter().zip(vectors) {
            let anchor = cosine(vector, &self.positive) - cosine(vector, &self.negative);
            let polarity = lexical_polarity(clause) + ANCHOR_WEIGHT * anchor;
            overall.push(polarity);
            for (aspect, relevance) in self.relevance(clause, vector) {
                match per_aspect.iter_mut().find(|entry| entry.0 == aspect) {
                    Some(entry) => {
                        entry.1 += relevance * polarity;
                        entry.2 += relevance;
                        entry.3 = entry.3.max(relevance);
                    }
                    None => per_aspect.push((aspect, relevance * polarity, relevance, relevance)),
                }
            }
        }
        let text_polarity = if overall.is_empty() {
            0.0
        } else {
            overall.iter().sum::<f32>() / overall.len() as f32
        };
        let mut aspects: Vec<AspectLabel> = per_aspect
            .into_iter()
            .map(|(aspect, weighted, weight, relevance)| {
                let (sentiment, scores) = sentiment_of(weighted / weight);
                AspectLabel {
                    aspect,
                    sentiment,
                    scores,
                    relevance,
                }
            })
            .collect();
        aspects.sort_by(|a, b| {
            b.relevance
                .total_cmp(&a.relevance)
                .then(a.aspect.cmp(&b.aspect))
        });
        let (sentiment, scores) = sentiment_of(text_polarity);
        TextLabel {
            sentiment,
            scores,
            aspects,
        }
    }

    /// The aspects a clause is about, with relevance: 1 for a stem, less for a close anchor.
    fn relevance(&self, clause: &str, vector: &[f32]) -> Vec<(Aspect, f32)> {
        let mut found: Vec<(Aspect, f32)> = ASPECT_STEMS
            .iter()
            .filter(|(_, stems)| stems.iter().any(|stem| clause.contains(stem)))
            .map(|(aspect, _)| (*aspect, 1.0))
            .collect();
        if found.is_empty() && !self.aspects.is_empty() {
            let sims: Vec<f32> = self
                .aspects
                .iter()
                .map(|(_, a)| cosine(vector, a))
                .collect();
            let total: f32 = sims.iter().sum();
            let others = (sims.len() - 1).max(1) as f32;
            if let Some((best, sim)) = sims.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
                let margin = sim - (total - sim) / others;
                if margin >= ASPECT_MARGIN {
                    let relevance = (margin / (2.0 * ASPECT_MARGIN)).min(0.9);
                    found.push((self.aspects[best].0, relevance));
                }
            }
        }
        found
    }
}

/// Cuts a text into clauses at sentence punctuation and after contrast connectives.
pub fn clauses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sentence in text.split(['.', '!', '?', '\n', ',', '~', ';', '。']) {
        let mut rest = sentence;
        while let Some((at, len)) = CLAUSE_BREAKS
            .iter()
            .filter_map(|brk| rest.find(brk).map(|at| (at, brk.len())))
            .min()
        {
            push_clause(&mut out, &rest[..at + len]);
            rest = &rest[at + len..];
        }
        push_clause(&mut out, rest);
    }
    if out.is_empty() {
        push_clause(&mut out, text);
    }
    out
}

fn push_clause(out: &mut Vec<String>, clause: &str) {
    let clause = clause.trim();
    if !clause.is_empty() {
        out.push(clause.to_string());
    }
}

/// Positive minus negative stems in a clause; a negated stem counts for the other side.
pub fn lexical_polarity(clause: &str) -> f32 {
    let mut score = 0.0;
    let mut covered: Vec<(usize, usize)> = Vec::new();
    // Longer stems first so "너무 달" wins over shorter overlapping stems.
    let mut stems: Vec<(&str, f32)> = POSITIVE_STEMS
        .iter()
        .map(|s| (*s, 1.0))
        .chain(NEGATIVE_STEMS.iter().map(|s| (*s, -1.0)))
        .collect();
    stems.sort_by_key(|(stem, _)| std::cmp::Reverse(stem.len()));
    for (stem, sign) in stems {
        for (at, _) in clause.match_indices(stem) {
            let end = at + stem.len();
            if covered.iter().any(|(a, b)| at < *b && end > *a) {
                continue;
            }
            covered.push((at, end));
            let before = &clause[..at];
            let after = &clause[end..];
            let negated = NEGATION_AFTER.iter().any(|n| after.starts_with(n))
                || (!stem.starts_with("안 ")
                    && NEGATION_BEFORE.iter().any(|n| before.ends_with(n)));
            score += if negated { -sign } else { sign };
        }
    }
    score
}

/// Sentiment and probabilities of a polarity (softmax of `p`, a neutral bias, and `-p`).
fn sentiment_of(polarity: f32) -> (Sentiment, SentimentScores) {
    let p = polarity.clamp(-20.0, 20.0);
    let (ep, en, eg) = (p.exp(), NEUTRAL_BIAS.exp(), (-p).exp());
    let sum = ep + en + eg;
    let scores = SentimentScores {
        positive: ep / sum,
        neutral: en / sum,
        negative: eg / sum,
    };
    let sentiment = if scores.positive >= scores.neutral && scores.positive >= scores.negative {
        Sentiment::Positive
    } else if scores.negative >= scores.neutral {
        Sentiment::Negative
    } else {
        Sentiment::Neutral
    };
    (sentiment, scores)
}

fn mean(vectors: &[Vec<f32>]) -> Vec<f32> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut out = vec![0.0; dim];
    for v in vectors {
        for (o, x) in out.iter_mut().zip(v) {
            *o += x;
        }
    }
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    out.iter_mut().for_each(|x| *x /= norm);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_split_at_punctuation_and_contrast() {
        let parts = clauses("맛은 좋았지만 너무 달았어요. 배달은 빨랐어요!");
        assert_eq!(
            parts,
            vec!["맛은 좋았지만", "너무 달았어요", "배달은 빨랐어요"]
        );
    }

    #[test]
    fn negation_flips_a_stem() {
        assert!(lexical_polarity("정말 맛있어요") > 0.0);
        assert!(lexical_polarity("맛있지 않아요") < 0.0);
        assert!(lexical_polarity("배달이 늦지 않았어요") > 0.0);
        assert!(lexical_polarity("너무 달아요") < 0.0);
        assert!(lexical_polarity("안 달아서 좋아요") > 0.0);
        assert_eq!(lexical_polarity("케이크를 샀다"), 0.0);
    }

    #[test]
    fn sentiment_probabilities_sum_to_one_and_neutral_wins_at_zero() {
        let (sentiment, scores) = sentiment_of(0.0);
        assert_eq!(sentiment, Sentiment::Neutral);
        let sum = scores.positive + scores.neutral + scores.negative;
        assert!((sum - 1.0).abs() < 1e-5);
        assert_eq!(sentiment_of(2.0).0, Sentiment::Positive);
        assert_eq!(sentiment_of(-2.0).0, Sentiment::Negative);
    }
}
