//! `review-bench`: batch import throughput, preprocessing included (no embedding), on
//! Postgres (one transaction per chunk) and on the embedded SQLite store.
//!
//! It writes a synthetic JSON Lines file of `--reviews` records (default 50,000) made from the
//! evaluation reviews with varied text (markup, entities, odd whitespace, one malformed line in
//! 200), creates the evaluation products in a scratch database, imports the file and ends with
//! one `BENCH {json}` line. Postgres comes from `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the benchmark creates and drops its own
//! database there.
//!
//! Then the embedding pipeline's catch-up rate: `--catch-up N` (default 500) more records
//! imported into a scratch SQLite store and embedded, labelled and indexed (whole reviews and
//! sentences) by the model in-process from `MODEL_DIR` (skipped, with the reason printed, when
//! there is no model directory; `scripts/model` builds it).
//!
//! Usage: `review-bench [--reviews N] [--chunk-size N] [--backend postgres|sqlite|both]
//! [--catch-up N]`

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use eventstore::{EventStore, Metadata, PgEventStore, Position, SqliteEventStore};
use inventory::{Inventory, NewProduct, ProductCatalog, ProductId};
use model::{Embedder, LocalEmbedder, ServiceConfig};
use projections::Projection;
use projections::ReadModels;
use review::batch::{self, ImportOptions, ImportReport, ImportStore};
use review::preprocess::clean;
use review::{EmbeddingPipeline, ModelLabeller, ReviewState, ReviewVectors, ReviewsView};
use serde::Deserialize;
use sqlx::{Connection as _, Executor as _, PgConnection};
use vectorindex::{HnswCatalog, HnswConfig};

const EVAL_REVIEWS: &str = include_str!("../../eval/reviews.jsonl");
const EVAL_PRODUCTS: &str = include_str!("../../eval/products.jsonl");
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The throughput the issue asks for, reviews per second.
const TARGET_PER_S: f64 = 2_000.0;

/// Phrases appended to vary the evaluation reviews.
const ENDINGS: [&str; 12] = [
    "재구매 의사 있어요",
    "선물용으로도 좋아요",
    "다음엔 다른 맛도 먹어볼게요",
    "포장이 꼼꼼했어요",
    "가격은 조금 아쉬워요",
    "아이들이 좋아했어요",
    "배달이 빨랐어요",
    "사진보다 실물이 나아요",
    "냉장 보관 필수예요",
    "주말에 또 갈게요",
    "커피랑 잘 어울려요",
    "양이 넉넉해요",
];

#[derive(Deserialize)]
struct EvalReview {
    product_id: String,
    rating: i64,
    text: String,
}

#[derive(Deserialize)]
struct EvalProduct {
    id: String,
    name: String,
    category: String,
    price: i64,
}

struct Args {
    reviews: usize,
    chunk_size: usize,
    catch_up: usize,
    postgres: bool,
    sqlite: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        reviews: 50_000,
        chunk_size: batch::DEFAULT_CHUNK_SIZE,
        catch_up: 500,
        postgres: true,
        sqlite: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--reviews" => args.reviews = value()?.parse().context("--reviews")?,
            "--chunk-size" => args.chunk_size = value()?.parse().context("--chunk-size")?,
            "--catch-up" => args.catch_up = value()?.parse().context("--catch-up")?,
            "--backend" => match value()?.as_str() {
                "postgres" => args.sqlite = false,
                "sqlite" => args.postgres = false,
                "both" => {}
                other => bail!("unknown backend {other:?}: postgres, sqlite or both"),
            },
            "--help" | "-h" => {
                eprintln!(
                    "review-bench [--reviews N] [--chunk-size N] [--backend postgres|sqlite|both] \
                     [--catch-up N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

/// Writes `n` records varied from the evaluation reviews; returns how many are malformed.
fn synthesise(path: &Path, n: usize) -> anyhow::Result<usize> {
    let base: Vec<EvalReview> = EVAL_REVIEWS
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("eval reviews")?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut malformed = 0;
    for i in 0..n {
        if i % 200 == 199 {
            malformed += 1;
            writeln!(
                out,
                "{{\"product_id\":\"p01\",\"rating\":7,\"text\":\"별점 오류 {i}\"}}"
            )?;
            continue;
        }
        let r = &base[i % base.len()];
        let ending = ENDINGS[(i / base.len()) % ENDINGS.len()];
        let text = match i % 4 {
            0 => format!("{} {ending} ({i}번째 주문)", r.text),
            1 => format!("<p>{}</p><br>{ending} &amp; 만족 ({i}번째 주문)", r.text),
            2 => format!("  {}\t\t{ending}\u{200B} ({i}번째 주문)  ", r.text),
            _ => format!("{}\n{ending}!! ({i}번째 주문)", r.text),
        };
        let record = serde_json::json!({
            "id": format!("bench-{i}"),
            "product_id": r.product_id,
            "rating": r.rating,
            "text": text,
            "author_id": format!("bench-user-{}", i % 5_000),
            "created_at": format!("2025-{:02}-{:02}T{:02}:00:00Z", 1 + i % 12, 1 + i % 28, i % 24),
        });
        writeln!(out, "{record}")?;
    }
    out.flush()?;
    Ok(malformed)
}

/// Applies every event of `store` to `projection`'s read model.
async fn project(
    store: &dyn EventStore,
    models: &ReadModels,
    projection: &dyn Projection,
) -> anyhow::Result<()> {
    models.register(projection).await?;
    let mut from = Position::START;
    loop {
        let events = store.read_all(from, 1_000).await?;
        let Some(last) = events.last() else { break };
        from = last.position;
        models
            .apply_batch(projection, &events, Some("$all"))
            .await?;
    }
    Ok(())
}

/// The embedding pipeline's catch-up over `n` freshly imported reviews, with the model
/// `config` names: reviews, passages and labels per second.
async fn catch_up(n: usize, config: &ServiceConfig) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("reviews.jsonl");
    synthesise(&path, n)?;
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteEventStore::open(dir.path().join("events.db")).await?);
    let url = format!("sqlite://{}", dir.path().join("read.db").display());
    let models = ReadModels::connect(&url).await?;
    catalog(store.clone(), &models).await?;
    run(
        &ImportStore::Store(store.clone()),
        &models,
        &path,
        batch::DEFAULT_CHUNK_SIZE,
    )
    .await?;
    project(store.as_ref(), &models, &ReviewsView).await?;

    let embedder: Arc<dyn Embedder> = Arc::new(LocalEmbedder::load(config).await?);
    let state = ReviewState::new(store, models).await?;
    let index_catalog = HnswCatalog::new(dir.path().join("index"), HnswConfig::default());
    let tag = review::vectors::tag_of(embedder.info());
    let index = vectorindex::open_current(&index_catalog, &tag).await?;
    let pipeline = EmbeddingPipeline::new(
        state.service.clone(),
        ReviewVectors::new(embedder.clone(), Arc::new(index)),
        Some(Arc::new(ModelLabeller::new(embedder))),
    )
    .await?;
    let done = pipeline.catch_up().await?;
    let passages = pipeline.vectors().current().1.len().await?;
    let seconds = done.seconds.max(1e-9);
    eprintln!(
        "catch-up: {} reviews ({passages} passages) embedded, {} labelled in {:.1} s = {:.1} \
         reviews/s, {:.1} passages/s",
        done.embedded,
        done.labelled,
        done.seconds,
        done.rate(),
        passages as f64 / seconds
    );
    Ok(serde_json::json!({
        "reviews": done.embedded,
        "labelled": done.labelled,
        "passages": passages,
        "seconds": (done.seconds * 1000.0).round() / 1000.0,
        "reviews_per_s": (done.rate() * 10.0).round() / 10.0,
        "passages_per_s": (passages as f64 / seconds * 10.0).round() / 10.0,
    }))
}

/// Creates the evaluation products and projects them into the catalog read model.
async fn catalog(store: Arc<dyn EventStore>, models: &ReadModels) -> anyhow::Result<()> {
    let inventory = Inventory::new(store.clone());
    for line in EVAL_PRODUCTS.lines() {
        let p: EvalProduct = serde_json::from_str(line)?;
        let details = NewProduct {
            description: format!("{} (bench)", p.name),
            name: p.name,
            price: p.price,
            category: p.category,
            image_url: None,
            initial_stock: 100,
        };
        inventory
            .create_product(Some(ProductId::parse(&p.id)?), details, Metadata::new())
            .await?;
    }
    project(store.as_ref(), models, &ProductCatalog).await
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

async fn on_postgres(path: &Path, chunk_size: usize) -> anyhow::Result<ImportReport> {
    let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER.to_owned());
    let name = format!(
        "bs_bench_review_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut admin = PgConnection::connect(&server)
        .await
        .context("cannot connect to Postgres (DATABASE_URL)")?;
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await?;
    let url = with_database(&server, &name);
    let result = async {
        let pg = PgEventStore::connect(&url, 8).await?;
        let models = ReadModels::connect(&url).await?;
        catalog(Arc::new(pg.clone()), &models).await?;
        let report = run(&ImportStore::Postgres(pg), &models, path, chunk_size).await;
        models.pool().close().await;
        report
    }
    .await;
    admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
        .await?;
    result
}

async fn on_sqlite(path: &Path, chunk_size: usize) -> anyhow::Result<ImportReport> {
    let dir = tempfile::tempdir()?;
    let store = SqliteEventStore::open(dir.path().join("events.db")).await?;
    let url = format!("sqlite://{}", dir.path().join("read.db").display());
    let models = ReadModels::connect(&url).await?;
    let store: Arc<dyn EventStore> = Arc::new(store);
    catalog(store.clone(), &models).await?;
    run(&ImportStore::Store(store), &models, path, chunk_size).await
}

async fn run(
    store: &ImportStore,
    models: &ReadModels,
    path: &Path,
    chunk_size: usize,
) -> anyhow::Result<ImportReport> {
    let options = ImportOptions {
        chunk_size,
        ..ImportOptions::default()
    };
    Ok(batch::import(store, models, path, options).await?)
}

fn summary(backend: &str, report: &ImportReport) -> serde_json::Value {
    let c = report.counts;
    eprintln!(
        "{backend}: read {} written {} skipped {} duplicates {} in {:.2} s = {:.0} reviews/s",
        c.read,
        c.written,
        c.skipped,
        c.duplicates,
        report.elapsed.as_secs_f64(),
        report.throughput()
    );
    serde_json::json!({
        "reviews_per_s": report.throughput().round(),
        "read": c.read,
        "written": c.written,
        "skipped": c.skipped,
        "seconds": (report.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("reviews.jsonl");
    let malformed = synthesise(&path, args.reviews)?;
    let bytes = std::fs::metadata(&path)?.len();
    eprintln!(
        "review-bench: {} records ({malformed} malformed, {:.1} MiB), chunks of {}",
        args.reviews,
        bytes as f64 / (1024.0 * 1024.0),
        args.chunk_size
    );

    // Preprocessing alone, for scale: every text cleaned once, in memory.
    let texts: Vec<String> = std::fs::read_to_string(&path)?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_owned))
        .collect();
    let started = Instant::now();
    let cleaned: usize = texts.iter().map(|t| clean(t).len()).sum();
    let clean_per_s =
        texts.len() as f64 / started.elapsed().max(Duration::from_nanos(1)).as_secs_f64();
    eprintln!("preprocessing alone: {clean_per_s:.0} texts/s ({cleaned} bytes out)");

    let mut bench = serde_json::json!({
        "name": "review_import",
        "reviews": args.reviews,
        "chunk_size": args.chunk_size,
        "target_reviews_per_s": TARGET_PER_S,
        "preprocess_texts_per_s": clean_per_s.round(),
        "unit": "reviews/s",
    });
    if args.postgres {
        let report = on_postgres(&path, args.chunk_size).await?;
        bench["reviews_per_s"] = report.throughput().round().into();
        bench["postgres"] = summary("postgres", &report);
    }
    if args.sqlite {
        let report = on_sqlite(&path, args.chunk_size).await?;
        if !args.postgres {
            bench["reviews_per_s"] = report.throughput().round().into();
        }
        bench["sqlite"] = summary("sqlite", &report);
    }
    if args.catch_up > 0 {
        let config = ServiceConfig::default().with_env()?;
        if model::manifest::is_model_dir(&config.model_dir) {
            bench["catch_up"] = catch_up(args.catch_up, &config).await?;
        } else {
            eprintln!(
                "catch-up skipped: no model directory at {} (scripts/model builds it)",
                config.model_dir.display()
            );
        }
    }
    println!("BENCH {bench}");
    Ok(())
}
