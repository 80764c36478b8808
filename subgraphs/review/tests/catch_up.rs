//! The embedding catch-up over reviews of the evaluation set (the first [`REVIEWS`], in
//! batches of 16): every review imported by the batch job is embedded,
//! labelled and indexed, a rerun embeds nothing, and a pipeline over an index that lost its
//! files embeds everything again. Prints the catch-up rate.
//!
//! Model-dependent: prints a reason and passes without running when the model directory
//! (`scripts/model`, or `MODEL_DIR`) is absent.

mod support;

use std::sync::Arc;

use model::{Embedder, LocalEmbedder};
use review::{EmbeddingPipeline, ModelLabeller, ReviewState, ReviewVectors};
use support::{Backend, Stack};
use vectorindex::{HnswCatalog, HnswConfig};

const EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/eval");
/// How many of the evaluation reviews are imported (all 339 take minutes in a debug build).
const REVIEWS: usize = 40;

async fn embedder() -> Option<Arc<dyn Embedder>> {
    let config = model::ServiceConfig::default().with_env().ok()?;
    if !model::manifest::is_model_dir(&config.model_dir) {
        eprintln!(
            "skipping: no model directory at {} (scripts/model creates it)",
            config.model_dir.display()
        );
        return None;
    }
    Some(Arc::new(LocalEmbedder::load(&config).await.unwrap()))
}

/// The evaluation set's products and its first `reviews` reviews, imported and projected:
/// product names by id, the review lines, how many were written, and the import's directory.
async fn import(
    stack: &Stack,
    reviews: usize,
) -> (
    std::collections::HashMap<String, String>,
    Vec<String>,
    usize,
    tempfile::TempDir,
) {
    let products = std::fs::read_to_string(format!("{EVAL}/products.jsonl")).unwrap();
    let mut names = std::collections::HashMap::new();
    for line in products.lines().filter(|l| !l.trim().is_empty()) {
        let p: serde_json::Value = serde_json::from_str(line).unwrap();
        names.insert(
            p["id"].as_str().unwrap().to_owned(),
            p["name"].as_str().unwrap().to_owned(),
        );
        stack
            .product(
                p["id"].as_str().unwrap(),
                p["name"].as_str().unwrap(),
                p["category"].as_str().unwrap(),
            )
            .await;
    }
    stack.project().await;
    let all = std::fs::read_to_string(format!("{EVAL}/reviews.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reviews.jsonl");
    let some: Vec<String> = all.lines().take(reviews).map(str::to_owned).collect();
    std::fs::write(&file, some.join("\n")).unwrap();
    let report = review::batch::import(
        &stack.import_store(),
        &stack.models,
        &file,
        review::batch::ImportOptions::default(),
    )
    .await
    .unwrap();
    let written = report.counts.written as usize;
    assert!(written >= reviews - 2, "{report}");
    stack.project().await;
    (names, some, written, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_embeds_every_imported_review_once() {
    let Some(embedder) = embedder().await else {
        return;
    };
    let stack = Stack::new(Backend::Postgres).await;
    let (names, some, written, dir) = import(&stack, REVIEWS).await;

    let state = ReviewState::new(stack.store.clone(), stack.models.clone())
        .await
        .unwrap();
    let catalog = HnswCatalog::new(dir.path().join("index"), HnswConfig::default());
    let tag = review::vectors::tag_of(embedder.info());
    let index = vectorindex::open_current(&catalog, &tag).await.unwrap();
    let pipeline = EmbeddingPipeline::new(
        state.service.clone(),
        ReviewVectors::new(embedder.clone(), Arc::new(index)),
        Some(Arc::new(ModelLabeller::new(embedder.clone()))),
    )
    .await
    .unwrap()
    .with_batch(16);
    assert_eq!(pipeline.missing().await.unwrap(), written as u64);
    let done = pipeline.catch_up().await.unwrap();
    println!(
        "catch-up: {} reviews embedded and {} labelled in {:.2} s = {:.1} reviews/s",
        done.embedded,
        done.labelled,
        done.seconds,
        done.rate()
    );
    assert_eq!((done.embedded, done.labelled), (written, written));
    assert_eq!(pipeline.catch_up().await.unwrap().embedded, 0);
    assert_eq!(pipeline.missing().await.unwrap(), 0);
    let (_, index) = pipeline.vectors().current();
    // One passage per review and one per sentence of those with several.
    let passages: usize = some
        .iter()
        .map(|line| {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            let name = names[r["product_id"].as_str().unwrap()].as_str();
            assistant::search_text::search_texts(name, r["text"].as_str().unwrap()).len()
        })
        .sum();
    let indexed = index.len().await.unwrap();
    if written == some.len() {
        assert_eq!(indexed, passages);
    } else {
        assert!(
            indexed > written && indexed <= passages,
            "{indexed} of {passages}"
        );
    }
    drop((index, pipeline));

    // The index's files are lost: a new pipeline over an empty index embeds everything again.
    let other = tempfile::tempdir().unwrap();
    let catalog = HnswCatalog::new(other.path(), HnswConfig::default());
    let index = vectorindex::open_current(&catalog, &tag).await.unwrap();
    let pipeline = EmbeddingPipeline::new(
        state.service.clone(),
        ReviewVectors::new(embedder.clone(), Arc::new(index)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(pipeline.missing().await.unwrap(), written as u64);
    assert_eq!(pipeline.catch_up().await.unwrap().embedded, written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_pipeline_leaves_the_rest_of_its_backlog_for_later() {
    let Some(embedder) = embedder().await else {
        return;
    };
    let stack = Stack::new(Backend::Postgres).await;
    let (_, _, written, dir) = import(&stack, REVIEWS).await;
    let state = ReviewState::new(stack.store.clone(), stack.models.clone())
        .await
        .unwrap();
    let tag = review::vectors::tag_of(embedder.info());
    let pipeline_over = |path: std::path::PathBuf| {
        let (service, embedder, tag) = (state.service.clone(), embedder.clone(), tag.clone());
        async move {
            let catalog = HnswCatalog::new(path, HnswConfig::default());
            let index = vectorindex::open_current(&catalog, &tag).await.unwrap();
            EmbeddingPipeline::new(service, ReviewVectors::new(embedder, Arc::new(index)), None)
                .await
                .unwrap()
        }
    };
    // Two reviews per flush, so the backlog takes many flushes; a second pipeline of the same
    // model only watches the progress.
    let pipeline = pipeline_over(dir.path().join("index"))
        .await
        .with_batch(2)
        .with_per_flush(2);
    let watcher = pipeline_over(dir.path().join("watcher")).await;
    assert_eq!(watcher.missing().await.unwrap(), written as u64);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(pipeline.run(std::time::Duration::from_secs(60), shutdown.clone()));
    let started = testkit::eventually(std::time::Duration::from_secs(120), || async {
        watcher.missing().await.unwrap() < written as u64
    })
    .await;
    assert!(started, "the pipeline embedded nothing");
    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(30), running)
        .await
        .expect("the pipeline stops after the flush in progress")
        .unwrap();
    let missing = watcher.missing().await.unwrap();
    assert!(
        missing > 0,
        "it stopped only after the whole backlog of {written}"
    );
}
