//! One evaluation run: both systems rank every review for every query, and each ranking is
//! scored against the judgements, overall and per query kind.

use std::collections::BTreeMap;

use model::Embedder;
use serde::Serialize;

use crate::error::EvalError;
use crate::lexical::Bm25;
use crate::metrics::Scores;
use crate::semantic::{self, IndexKind};
use crate::set::{DocumentText, EvalSet, Query};

/// How one system did.
#[derive(Debug, Clone, Serialize)]
pub struct SystemReport {
    /// Macro average over all queries.
    pub overall: Scores,
    /// Macro average per query kind.
    pub by_kind: BTreeMap<String, Scores>,
    /// Each query's figures, in query order.
    #[serde(skip)]
    pub per_query: Vec<Scores>,
}

impl SystemReport {
    /// Scores `rankings` (one per query, in query order) against the queries' judgements.
    pub fn score(queries: &[Query], rankings: &[Vec<String>]) -> Self {
        let per_query: Vec<Scores> = queries
            .iter()
            .zip(rankings)
            .map(|(q, ranking)| Scores::of(ranking, &q.relevant))
            .collect();
        let mut kinds: BTreeMap<String, Vec<Scores>> = BTreeMap::new();
        for (q, s) in queries.iter().zip(&per_query) {
            kinds.entry(q.kind.clone()).or_default().push(*s);
        }
        Self {
            overall: Scores::mean(&per_query),
            by_kind: kinds
                .into_iter()
                .map(|(kind, scores)| (kind, Scores::mean(&scores)))
                .collect(),
            per_query,
        }
    }
}

/// The result of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Embedding model name.
    pub model: String,
    /// Embedding model version.
    pub version: String,
    /// How semantic search matched vectors.
    pub index: &'static str,
    /// What text stood for a review.
    pub documents: &'static str,
    /// Number of reviews ranked.
    pub reviews: usize,
    /// Number of passages embedded for them (whole reviews and sentences).
    pub passages: usize,
    /// Number of queries.
    pub queries: usize,
    /// Semantic search.
    pub semantic: SystemReport,
    /// The BM25 baseline.
    pub bm25: SystemReport,
    /// Both fused by reciprocal rank (for comparison; not a requirement).
    pub hybrid: SystemReport,
    /// Seconds spent embedding the reviews' passages.
    pub embed_reviews_seconds: f64,
    /// Seconds spent embedding the queries.
    pub embed_queries_seconds: f64,
}

/// Runs both systems over `set` with `text` standing for each review, semantic search through
/// `embedder` and `index`.
pub async fn evaluate(
    set: &EvalSet,
    text: DocumentText,
    embedder: &dyn Embedder,
    index: IndexKind,
) -> Result<Evaluation, EvalError> {
    let documents = set.documents(text);
    let embedded = semantic::embed(embedder, &documents, &query_texts(set)).await?;
    evaluate_embedded(set, text, embedder, &embedded, index).await
}

/// The queries' texts, in query order.
pub fn query_texts(set: &EvalSet) -> Vec<String> {
    set.queries.iter().map(|q| q.query.clone()).collect()
}

/// [`evaluate`] with the set already embedded by `embedder` (so several index kinds can
/// share one embedding).
pub async fn evaluate_embedded(
    set: &EvalSet,
    text: DocumentText,
    embedder: &dyn Embedder,
    embedded: &semantic::Embedded,
    index: IndexKind,
) -> Result<Evaluation, EvalError> {
    let documents = set.documents(text);
    let rankings = semantic::rank(embedded, &documents, index).await?;
    let bm25 = Bm25::new(&documents);
    let lexical: Vec<Vec<String>> = set.queries.iter().map(|q| bm25.rank(&q.query)).collect();
    let hybrid: Vec<Vec<String>> = rankings
        .iter()
        .zip(&lexical)
        .map(|(s, b)| crate::fusion::reciprocal_rank_fusion(&[s, b]))
        .collect();
    let info = embedder.info();
    Ok(Evaluation {
        model: info.name.clone(),
        version: info.version.clone(),
        index: index.as_str(),
        documents: text.as_str(),
        reviews: documents.len(),
        passages: embedded.passage_ids.len(),
        queries: set.queries.len(),
        semantic: SystemReport::score(&set.queries, &rankings),
        bm25: SystemReport::score(&set.queries, &lexical),
        hybrid: SystemReport::score(&set.queries, &hybrid),
        embed_reviews_seconds: embedded.embed_reviews_seconds,
        embed_queries_seconds: embedded.embed_queries_seconds,
    })
}

impl Evaluation {
    /// A table of both systems, overall and per kind, for people.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} reviews ({}, {} passages), {} queries; semantic: {}@{} ({} search)\n",
            self.reviews,
            self.documents,
            self.passages,
            self.queries,
            self.model,
            self.version,
            self.index
        );
        out.push_str(&format!(
            "{:<10} {:<11} {:>9} {:>8} {:>6}\n",
            "system", "queries", "recall@5", "nDCG@10", "MRR"
        ));
        let systems = [
            ("semantic", &self.semantic),
            ("bm25", &self.bm25),
            ("hybrid", &self.hybrid),
        ];
        for (name, report) in systems {
            let rows = std::iter::once(("all", &report.overall))
                .chain(report.by_kind.iter().map(|(k, s)| (k.as_str(), s)));
            for (kind, s) in rows {
                out.push_str(&format!(
                    "{name:<10} {kind:<11} {:>9.3} {:>8.3} {:>6.3}\n",
                    s.recall_at_5, s.ndcg_at_10, s.mrr
                ));
            }
        }
        out
    }

    /// Semantic nDCG@10 minus BM25's.
    pub fn ndcg_margin(&self) -> f64 {
        self.semantic.overall.ndcg_at_10 - self.bm25.overall.ndcg_at_10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(id: &str, kind: &str, relevant: &[(&str, u8)]) -> Query {
        Query {
            id: id.into(),
            query: id.into(),
            kind: kind.into(),
            relevant: relevant
                .iter()
                .map(|(r, g)| ((*r).to_string(), *g))
                .collect(),
        }
    }

    #[test]
    fn reports_average_overall_and_per_kind() {
        let queries = [
            query("q1", "lexical", &[("a", 3)]),
            query("q2", "paraphrase", &[("b", 2)]),
            query("q3", "paraphrase", &[("c", 2)]),
        ];
        let ranking = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let report = SystemReport::score(&queries, &vec![ranking; 3]);
        // MRR per query: 1, 1/2, 1/3.
        assert!((report.overall.mrr - (1.0 + 0.5 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((report.by_kind["paraphrase"].mrr - (0.5 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((report.by_kind["lexical"].ndcg_at_10 - 1.0).abs() < 1e-12);
        assert_eq!(report.per_query.len(), 3);
    }
}
