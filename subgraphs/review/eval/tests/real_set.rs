//! The evaluation over the real set: the set loads and checks, BM25 finds something, and,
//! when the model directory exists, semantic search beats BM25 on nDCG@10.

use std::path::PathBuf;

use model::{LocalEmbedder, ServiceConfig};
use review_eval::{DocumentText, EvalSet, IndexKind};

fn set() -> EvalSet {
    EvalSet::load(&review_eval::set::default_dir()).unwrap()
}

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(model::manifest::default_model_dir);
    if model::manifest::is_model_dir(&dir) {
        Some(dir)
    } else {
        eprintln!(
            "skipping: no model directory at {} (scripts/model creates it)",
            dir.display()
        );
        None
    }
}

#[test]
fn the_shipped_set_loads_with_its_documented_sizes() {
    let set = set();
    assert_eq!(
        (set.products.len(), set.reviews.len(), set.queries.len()),
        (31, 339, 66)
    );
    let docs = set.documents(DocumentText::NameAndText);
    assert_eq!(docs[0].id, "r001");
    // r001 is a review of p03, the basque cheesecake: name, newline, text.
    assert!(docs[0].text.starts_with("바스크 치즈케이크\n달지 않고"));
}

#[test]
fn bm25_over_bigrams_finds_relevant_reviews() {
    let set = set();
    let bm25 = review_eval::lexical::Bm25::new(&set.documents(DocumentText::NameAndText));
    let rankings: Vec<Vec<String>> = set.queries.iter().map(|q| bm25.rank(&q.query)).collect();
    let report = review_eval::SystemReport::score(&set.queries, &rankings);
    eprintln!("bm25: {:?}", report.overall);
    // Far above a random ranking (nDCG@10 around 0.03 here) on every kind.
    for (kind, s) in &report.by_kind {
        assert!(s.ndcg_at_10 > 0.3, "{kind}: {s:?}");
    }
}

/// The goal: semantic search (as the review subgraph runs it: whole reviews and
/// their sentences under the product name, a review scored by its best passage) beats BM25
/// over the same documents on nDCG@10, exactly and through the HNSW index. One embedding of
/// the set serves both.
#[tokio::test]
async fn semantic_search_beats_bm25_on_ndcg_at_10() {
    let Some(dir) = model_dir() else {
        return;
    };
    let config = ServiceConfig {
        model_dir: dir,
        ..ServiceConfig::default()
    };
    let embedder = LocalEmbedder::load(&config).await.unwrap();
    let set = set();
    let documents = set.documents(DocumentText::NameAndText);
    let embedded =
        review_eval::semantic::embed(&embedder, &documents, &review_eval::query_texts(&set))
            .await
            .unwrap();
    // Whole reviews plus the sentences of those with several.
    assert!(embedded.passage_ids.len() > documents.len());

    for index in [IndexKind::Exact, IndexKind::Hnsw] {
        let protocol = review_eval::evaluate_embedded(
            &set,
            DocumentText::NameAndText,
            &embedder,
            &embedded,
            index,
        )
        .await
        .unwrap();
        eprint!("{}", protocol.table());
        assert_eq!(protocol.semantic.per_query.len(), 66);
        assert!(
            protocol.ndcg_margin() > 0.0,
            "{index:?}: semantic nDCG@10 {:.3} <= BM25 {:.3}",
            protocol.semantic.overall.ndcg_at_10,
            protocol.bm25.overall.ndcg_at_10
        );
    }
}
