//! The lexical baseline: BM25 (the `bm25` crate, k1 = 1.2, b = 0.75) over character bigrams.
//!
//! Why bigrams: Korean attaches particles and endings to its stems (케이크가, 케이크는;
//! 달아요, 달지, 단맛), so whitespace words of a query and of a review rarely match, and a
//! morphological analyser needs a dictionary this build cannot download. Overlapping
//! two-syllable pieces of each word match a shared stem whatever is attached to it (크림이 and
//! 크림치즈 share 크림), which is the usual dictionary-free way to index CJK text.

use bm25::{Embedder, EmbedderBuilder, Scorer, Tokenizer};

use crate::set::Document;

/// BM25's term-frequency saturation.
pub const K1: f32 = 1.2;
/// BM25's document-length normalisation.
pub const B: f32 = 0.75;

/// Lower-cased character bigrams of each word (a one-character word is its own token); words
/// are runs of letters and digits, so punctuation, emoji and spaces separate them.
#[derive(Debug, Clone, Copy, Default)]
pub struct CharBigrams;

impl Tokenizer for CharBigrams {
    fn tokenize(&self, input_text: &str) -> Vec<String> {
        let lower = input_text.to_lowercase();
        let mut tokens = Vec::new();
        for word in lower.split(|c: char| !c.is_alphanumeric()) {
            let chars: Vec<char> = word.chars().collect();
            match chars.len() {
                0 => {}
                1 => tokens.push(word.to_string()),
                _ => tokens.extend(chars.windows(2).map(|pair| pair.iter().collect::<String>())),
            }
        }
        tokens
    }
}

/// A BM25 index over documents, ranking all of them for a query.
pub struct Bm25 {
    embedder: Embedder<u32, CharBigrams>,
    scorer: Scorer<usize, u32>,
    ids: Vec<String>,
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25")
            .field("documents", &self.ids.len())
            .field("avgdl", &self.embedder.avgdl())
            .finish_non_exhaustive()
    }
}

impl Bm25 {
    /// Indexes `documents` (average length fitted to them).
    pub fn new(documents: &[Document]) -> Self {
        let corpus: Vec<&str> = documents.iter().map(|d| d.text.as_str()).collect();
        let embedder = EmbedderBuilder::<u32, CharBigrams>::with_tokenizer_and_fit_to_corpus(
            CharBigrams,
            &corpus,
        )
        .k1(K1)
        .b(B)
        .build();
        let mut scorer = Scorer::new();
        for (i, text) in corpus.iter().enumerate() {
            scorer.upsert(&i, embedder.embed(text));
        }
        Self {
            embedder,
            scorer,
            ids: documents.iter().map(|d| d.id.clone()).collect(),
        }
    }

    /// Every document's id, best BM25 score first; ties by id, ascending.
    pub fn rank(&self, query: &str) -> Vec<String> {
        let query = self.embedder.embed(query);
        let scored: Vec<(String, f32)> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), self.scorer.score(&i, &query).unwrap_or(0.0)))
            .collect();
        crate::ranking::order(scored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, text: &str) -> Document {
        Document {
            id: id.into(),
            product_id: "p".into(),
            category: "c".into(),
            text: text.into(),
            title: String::new(),
            body: text.into(),
        }
    }

    #[test]
    fn bigrams_of_each_word_lower_cased() {
        let tokens = CharBigrams.tokenize("케이크가 너무 달아요! OK 굿");
        assert_eq!(
            tokens,
            ["케이", "이크", "크가", "너무", "달아", "아요", "ok", "굿"]
        );
        assert!(CharBigrams.tokenize(" ?! ").is_empty());
    }

    #[test]
    fn a_shared_stem_ranks_first_and_ties_go_by_id() {
        let docs = [
            doc("r3", "배달이 늦었어요"),
            doc("r1", "크림이 느끼해요"),
            doc("r2", "크림치즈가 진해요"),
            doc("r0", "포장이 예뻐요"),
        ];
        let bm25 = Bm25::new(&docs);
        let ranking = bm25.rank("크림 맛");
        // Both cream reviews share 크림; the shorter one (r1, 5 bigrams against 6) scores
        // higher. The rest score 0 and follow by id.
        assert_eq!(ranking, ["r1", "r2", "r0", "r3"]);
    }
}
