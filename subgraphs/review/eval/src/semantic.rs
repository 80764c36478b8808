//! Semantic search over the set: reviews embedded as passages and queries as queries by any
//! [`Embedder`], ranked by cosine exactly or through the embedded HNSW index.

use std::time::Instant;

use model::{Embedder, TextKind};
use vectorindex::{HnswConfig, HnswIndex, ModelTag, SearchFilter, VectorIndex, VectorRecord};

use crate::error::EvalError;
use crate::set::Document;

/// How the query vectors are matched against the review vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IndexKind {
    /// Cosine against every review.
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

/// Semantic rankings and what producing them cost.
#[derive(Debug, Clone)]
pub struct SemanticRun {
    /// One ranking of every review per query, in query order.
    pub rankings: Vec<Vec<String>>,
    /// Seconds spent embedding the reviews.
    pub embed_reviews_seconds: f64,
    /// Seconds spent embedding the queries.
    pub embed_queries_seconds: f64,
}

/// Embeds `texts` as `kind`, in requests no larger than the embedder allows.
pub async fn embed_all(
    embedder: &dyn Embedder,
    texts: &[String],
    kind: TextKind,
) -> Result<Vec<Vec<f32>>, EvalError> {
    let per_request = embedder.info().max_texts_per_request.max(1);
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(per_request) {
        vectors.extend(embedder.embed(chunk.to_vec(), kind).await?.vectors);
    }
    Ok(vectors)
}

/// Ranks every document for every query by cosine similarity of their embeddings.
pub async fn rank(
    embedder: &dyn Embedder,
    documents: &[Document],
    queries: &[String],
    index: IndexKind,
) -> Result<SemanticRun, EvalError> {
    let started = Instant::now();
    let texts: Vec<String> = documents.iter().map(|d| d.text.clone()).collect();
    let doc_vectors = embed_all(embedder, &texts, TextKind::Passage).await?;
    let embed_reviews_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let query_vectors = embed_all(embedder, queries, TextKind::Query).await?;
    let embed_queries_seconds = started.elapsed().as_secs_f64();

    let rankings = match index {
        IndexKind::Exact => query_vectors
            .iter()
            .map(|q| {
                let scored = documents
                    .iter()
                    .zip(&doc_vectors)
                    .map(|(d, v)| (d.id.clone(), model::cosine(q, v)))
                    .collect();
                crate::ranking::order(scored)
            })
            .collect(),
        IndexKind::Hnsw => rank_hnsw(embedder, documents, doc_vectors, &query_vectors).await?,
    };
    Ok(SemanticRun {
        rankings,
        embed_reviews_seconds,
        embed_queries_seconds,
    })
}

async fn rank_hnsw(
    embedder: &dyn Embedder,
    documents: &[Document],
    doc_vectors: Vec<Vec<f32>>,
    query_vectors: &[Vec<f32>],
) -> Result<Vec<Vec<String>>, EvalError> {
    let info = embedder.info();
    let tag = ModelTag::new(&info.name, &info.version, info.dimension);
    let dir = tempfile::tempdir().map_err(EvalError::TempDir)?;
    let index = HnswIndex::open(dir.path().join("index"), tag, HnswConfig::default()).await?;
    let records: Vec<VectorRecord> = documents
        .iter()
        .zip(doc_vectors)
        .map(|(d, vector)| VectorRecord {
            id: d.id.clone(),
            product_id: d.product_id.clone(),
            category: d.category.clone(),
            vector,
        })
        .collect();
    index.upsert(&records).await?;
    let mut rankings = Vec::with_capacity(query_vectors.len());
    for q in query_vectors {
        let hits = index
            .search(q, &SearchFilter::none(), documents.len())
            .await?;
        rankings.push(crate::ranking::order(
            hits.into_iter().map(|h| (h.id, h.score)).collect(),
        ));
    }
    Ok(rankings)
}
