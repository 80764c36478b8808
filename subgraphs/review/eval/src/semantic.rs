//! Semantic search over the set, as the review subgraph searches: every review embedded as
//! passages (the whole review and each sentence, under the product name:
//! [`assistant::search_text`]) and queries as queries by any [`Embedder`]; a review scores its
//! best passage's cosine ([`vectorindex::passage`]), matched exactly or through the embedded
//! HNSW index.

use std::collections::HashMap;
use std::time::Instant;

use assistant::search_text::search_texts;
use model::{Embedder, TextKind, embed_all};
use vectorindex::passage::{passage_id, review_of, search_reviews};
use vectorindex::{HnswConfig, HnswIndex, ModelTag, SearchFilter, VectorIndex, VectorRecord};

use crate::error::EvalError;
use crate::set::Document;

/// How the query vectors are matched against the review vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IndexKind {
    /// Cosine against every passage.
    #[default]
    Exact,
    /// The vector index the review subgraph uses (usearch HNSW in a temporary directory).
    Hnsw,
}

impl IndexKind {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Hnsw => "hnsw",
        }
    }
}

/// The set's passages and queries embedded once, to be ranked by any [`IndexKind`].
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Index id of each passage (review id for the whole review, `{id}#{n}` for sentences).
    pub passage_ids: Vec<String>,
    /// Each passage's vector, in `passage_ids` order.
    pub passage_vectors: Vec<Vec<f32>>,
    /// Each query's vector, in query order.
    pub query_vectors: Vec<Vec<f32>>,
    /// Seconds spent embedding the reviews' passages.
    pub embed_reviews_seconds: f64,
    /// Seconds spent embedding the queries.
    pub embed_queries_seconds: f64,
}

/// Embeds every passage of `documents` and every query.
pub async fn embed(
    embedder: &dyn Embedder,
    documents: &[Document],
    queries: &[String],
) -> Result<Embedded, EvalError> {
    let mut passage_ids = Vec::new();
    let mut texts = Vec::new();
    for d in documents {
        for (n, text) in search_texts(&d.title, &d.body).into_iter().enumerate() {
            passage_ids.push(passage_id(&d.id, n));
            texts.push(text);
        }
    }
    let started = Instant::now();
    let passage_vectors = embed_all(embedder, &texts, TextKind::Passage).await?;
    let embed_reviews_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let query_vectors = embed_all(embedder, queries, TextKind::Query).await?;
    Ok(Embedded {
        passage_ids,
        passage_vectors,
        query_vectors,
        embed_reviews_seconds,
        embed_queries_seconds: started.elapsed().as_secs_f64(),
    })
}

/// One ranking of every review per query (in query order) by its best passage.
pub async fn rank(
    embedded: &Embedded,
    documents: &[Document],
    index: IndexKind,
) -> Result<Vec<Vec<String>>, EvalError> {
    match index {
        IndexKind::Exact => Ok(embedded
            .query_vectors
            .iter()
            .map(|q| {
                let mut best: HashMap<&str, f32> = HashMap::with_capacity(documents.len());
                for (id, v) in embedded.passage_ids.iter().zip(&embedded.passage_vectors) {
                    let score = model::cosine(q, v);
                    best.entry(review_of(id))
                        .and_modify(|s| *s = s.max(score))
                        .or_insert(score);
                }
                crate::ranking::order(
                    best.into_iter()
                        .map(|(id, score)| (id.to_owned(), score))
                        .collect(),
                )
            })
            .collect()),
        IndexKind::Hnsw => rank_hnsw(embedded, documents).await,
    }
}

async fn rank_hnsw(
    embedded: &Embedded,
    documents: &[Document],
) -> Result<Vec<Vec<String>>, EvalError> {
    let dimension = embedded.passage_vectors.first().map_or(0, Vec::len);
    let tag = ModelTag::new("eval", "1", dimension);
    let dir = tempfile::tempdir().map_err(EvalError::TempDir)?;
    let index = HnswIndex::open(dir.path().join("index"), tag, HnswConfig::default()).await?;
    let by_id: HashMap<&str, &Document> = documents.iter().map(|d| (d.id.as_str(), d)).collect();
    let records: Vec<VectorRecord> = embedded
        .passage_ids
        .iter()
        .zip(&embedded.passage_vectors)
        .filter_map(|(id, vector)| {
            let d = by_id.get(review_of(id))?;
            Some(VectorRecord {
                id: id.clone(),
                product_id: d.product_id.clone(),
                category: d.category.clone(),
                vector: vector.clone(),
            })
        })
        .collect();
    index.upsert(&records).await?;
    let mut rankings = Vec::with_capacity(embedded.query_vectors.len());
    for q in &embedded.query_vectors {
        let hits = search_reviews(&index, q, &SearchFilter::none(), documents.len()).await?;
        rankings.push(crate::ranking::order(
            hits.into_iter().map(|h| (h.id, h.score)).collect(),
        ));
    }
    Ok(rankings)
}
