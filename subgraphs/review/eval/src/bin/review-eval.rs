//! `review-eval`: recall@5, nDCG@10 and MRR of semantic review search and of a BM25 baseline
//! (and of both fused) over the evaluation set; ends with one `BENCH {json}` line, whose
//! `semantic_beats_bm25_ndcg` says whether the goal is met.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use model::{Embedder, GrpcEmbedder, LocalEmbedder, ServiceConfig};
use review_eval::{DocumentText, EvalSet, IndexKind};

/// Evaluates review search on the hand-written Korean set.
#[derive(Debug, Parser)]
struct Args {
    /// The evaluation set's directory.
    #[arg(long, default_value_os_t = review_eval::set::default_dir())]
    set: PathBuf,
    /// The model directory (in-process inference).
    #[arg(long, env = "MODEL_DIR", default_value_os_t = model::manifest::default_model_dir())]
    model_dir: PathBuf,
    /// Embed through a running model service instead (e.g. `http://127.0.0.1:50051`).
    #[arg(long, env = "MODEL_SERVICE_URL")]
    model_url: Option<String>,
    /// How query vectors are matched against review vectors.
    #[arg(long, value_enum, default_value_t = IndexKind::Exact)]
    index: IndexKind,
    /// What text stands for a review, for every system.
    #[arg(long, value_enum, default_value_t = DocumentText::NameAndText)]
    documents: DocumentText,
    /// Also print every query's nDCG@10 under both systems.
    #[arg(long)]
    per_query: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let set = EvalSet::load(&args.set)
        .with_context(|| format!("cannot load the evaluation set in {}", args.set.display()))?;
    let embedder: Arc<dyn Embedder> = match &args.model_url {
        Some(url) => Arc::new(
            GrpcEmbedder::connect(url.clone())
                .await
                .with_context(|| format!("cannot reach the model service at {url}"))?,
        ),
        None => {
            let config = ServiceConfig {
                model_dir: args.model_dir.clone(),
                ..ServiceConfig::default()
            }
            .with_env()?;
            Arc::new(LocalEmbedder::load(&config).await.with_context(|| {
                format!(
                    "cannot load the model in {} (scripts/model builds it)",
                    args.model_dir.display()
                )
            })?)
        }
    };
    let evaluation =
        review_eval::evaluate(&set, args.documents, embedder.as_ref(), args.index).await?;
    eprint!("{}", evaluation.table());
    if args.per_query {
        eprintln!("query  kind        semantic  bm25  text");
        for ((q, s), b) in set
            .queries
            .iter()
            .zip(&evaluation.semantic.per_query)
            .zip(&evaluation.bm25.per_query)
        {
            eprintln!(
                "{:<6} {:<11} {:>8.3} {:>5.3}  {}",
                q.id, q.kind, s.ndcg_at_10, b.ndcg_at_10, q.query
            );
        }
    }
    eprintln!(
        "embedding: {} reviews in {:.1} s, {} queries in {:.1} s",
        evaluation.reviews,
        evaluation.embed_reviews_seconds,
        evaluation.queries,
        evaluation.embed_queries_seconds
    );
    let mut line = serde_json::to_value(&evaluation)?;
    line["name"] = "eval".into();
    line["semantic_beats_bm25_ndcg"] = (evaluation.ndcg_margin() > 0.0).into();
    line["units"] = serde_json::json!({
        "recall_at_5": "fraction", "ndcg_at_10": "fraction", "mrr": "fraction",
        "embed_*_seconds": "s",
    });
    println!("BENCH {line}");
    if evaluation.ndcg_margin() <= 0.0 {
        eprintln!(
            "goal not met: semantic search does not beat BM25 on nDCG@10 ({:.3} vs {:.3})",
            evaluation.semantic.overall.ndcg_at_10, evaluation.bm25.overall.ndcg_at_10
        );
    }
    Ok(())
}
