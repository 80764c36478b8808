//! Vector search benchmark: recall@10 against exact search and search latency of the embedded
//! HNSW index, at configurable sizes (default 100k and 1M vectors of dimension 384).
//!
//! Data is synthetic, with the structure of sentence embeddings: a mixture of Gaussian clusters
//! ("topics", one per product) in a 64-dimensional latent space, mapped to 384 dimensions by a
//! fixed random linear map, plus isotropic noise, then L2-normalised. Queries are fresh draws
//! from the same mixture. Ends with one `BENCH {json}` line.

use anyhow::Context;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::time::Instant;
use vectorindex::exact::{TopK, dot};
use vectorindex::{HnswConfig, HnswIndex, ModelTag, SearchFilter, VectorIndex, VectorRecord};

const LATENT: usize = 64;
const REVIEWS_PER_PRODUCT: usize = 500;
const CATEGORIES: usize = 20;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Vector search benchmark (recall@10 and latency of the HNSW index)")]
struct Args {
    /// Index sizes to measure, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100000,1000000",
        env = "VECTOR_BENCH_SIZES"
    )]
    sizes: Vec<usize>,
    /// Number of queries per size.
    #[arg(long, default_value_t = 1000, env = "VECTOR_BENCH_QUERIES")]
    queries: usize,
    /// Vector dimension.
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// HNSW connectivity (M).
    #[arg(long, default_value_t = HnswConfig::default().connectivity)]
    connectivity: usize,
    /// HNSW expansion while building (ef_construction).
    #[arg(long, default_value_t = HnswConfig::default().expansion_add)]
    ef_construction: usize,
    /// HNSW expansion while searching (ef).
    #[arg(long, default_value_t = HnswConfig::default().expansion_search)]
    ef_search: usize,
    /// Results per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// The clustered embedding generator.
struct Generator {
    dim: usize,
    centers: Vec<f32>,
    projection: Vec<f32>,
}

impl Generator {
    fn new(dim: usize, clusters: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(7);
        let centers = (0..clusters * LATENT).map(|_| gaussian(&mut rng)).collect();
        let scale = 1.0 / (LATENT as f32).sqrt();
        let projection = (0..dim * LATENT)
            .map(|_| gaussian(&mut rng) * scale)
            .collect();
        Self {
            dim,
            centers,
            projection,
        }
    }

    fn clusters(&self) -> usize {
        self.centers.len() / LATENT
    }

    /// Writes one unit vector from cluster `c` into `out`.
    fn sample(&self, rng: &mut StdRng, c: usize, out: &mut [f32]) {
        let center = &self.centers[c * LATENT..(c + 1) * LATENT];
        let latent: Vec<f32> = center.iter().map(|m| m + 0.6 * gaussian(rng)).collect();
        for (d, value) in out.iter_mut().enumerate() {
            let row = &self.projection[d * LATENT..(d + 1) * LATENT];
            *value = dot(row, &latent) + 0.08 * gaussian(rng);
        }
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        out.iter_mut().for_each(|x| *x /= norm);
    }

    /// `n` vectors (flat) and their cluster ids, generated on all cores.
    fn generate(&self, n: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
        let mut vectors = vec![0.0f32; n * self.dim];
        let mut clusters = vec![0usize; n];
        let per = n.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (t, (vs, cs)) in vectors
                .chunks_mut(per * self.dim)
                .zip(clusters.chunks_mut(per))
                .enumerate()
            {
                scope.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed * 1000 + t as u64);
                    for (v, c) in vs.chunks_mut(self.dim).zip(cs.iter_mut()) {
                        *c = rng.random_range(0..self.clusters());
                        self.sample(&mut rng, *c, v);
                    }
                });
            }
        });
        (vectors, clusters)
    }
}

/// Exact top-k ids (row numbers) for every query, on all cores.
fn ground_truth(data: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<Vec<usize>> {
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let nq = queries.len() / dim;
    let per = nq.div_ceil(threads).max(1);
    let mut out = vec![Vec::new(); nq];
    std::thread::scope(|scope| {
        for (qs, outs) in queries.chunks(per * dim).zip(out.chunks_mut(per)) {
            scope.spawn(move || {
                // Blocks of queries per pass over the data keep the data scan cache-friendly.
                for (block, block_out) in qs.chunks(16 * dim).zip(outs.chunks_mut(16)) {
                    let mut tops: Vec<TopK<usize>> =
                        (0..block_out.len()).map(|_| TopK::new(k)).collect();
                    for (row, v) in data.chunks(dim).enumerate() {
                        for (top, q) in tops.iter_mut().zip(block.chunks(dim)) {
                            top.push(row, dot(q, v));
                        }
                    }
                    for (o, top) in block_out.iter_mut().zip(tops) {
                        *o = top.into_sorted().into_iter().map(|(row, _)| row).collect();
                    }
                }
            });
        }
    });
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

async fn measure(args: &Args, n: usize) -> anyhow::Result<Value> {
    let clusters = (n / REVIEWS_PER_PRODUCT).max(10);
    let generator = Generator::new(args.dim, clusters);
    let t = Instant::now();
    let (data, cluster_of) = generator.generate(n, 1);
    let (queries, query_clusters) = generator.generate(args.queries, 2);
    eprintln!("n={n}: generated in {:.1}s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let truth = ground_truth(&data, &queries, args.dim, args.k);
    eprintln!(
        "n={n}: exact search for {} queries in {:.1}s",
        args.queries,
        t.elapsed().as_secs_f64()
    );

    let dir = std::env::temp_dir().join(format!("vectorindex-bench-{}-{n}", std::process::id()));
    let tag = ModelTag::new("bench-synthetic", "1", args.dim);
    let config = HnswConfig {
        connectivity: args.connectivity,
        expansion_add: args.ef_construction,
        expansion_search: args.ef_search,
        ..HnswConfig::default()
    };
    let index = HnswIndex::open(&dir, tag, config).await?;
    let t = Instant::now();
    for start in (0..n).step_by(50_000) {
        let end = (start + 50_000).min(n);
        let batch: Vec<VectorRecord> = (start..end)
            .map(|row| VectorRecord {
                id: row.to_string(),
                product_id: format!("p{}", cluster_of[row]),
                category: format!("c{}", cluster_of[row] % CATEGORIES),
                vector: data[row * args.dim..(row + 1) * args.dim].to_vec(),
            })
            .collect();
        index.upsert(&batch).await?;
    }
    let build_s = t.elapsed().as_secs_f64();
    eprintln!("n={n}: built in {build_s:.1}s");
    drop(data);

    let unfiltered = SearchFilter::none();
    let mut latencies = Vec::with_capacity(args.queries);
    let mut found = 0usize;
    for (q, expected) in queries.chunks(args.dim).zip(&truth) {
        let t = Instant::now();
        let hits = index.search(q, &unfiltered, args.k).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        found += hits
            .iter()
            .filter(|h| {
                h.id.parse::<usize>()
                    .is_ok_and(|row| expected.contains(&row))
            })
            .count();
    }
    latencies.sort_by(f64::total_cmp);
    let recall = found as f64 / (truth.len() * args.k) as f64;

    // Filtered by the query's product (about 500 reviews): must return exactly k, by exact scoring.
    let mut filtered = Vec::with_capacity(args.queries);
    let mut short = 0usize;
    for (q, c) in queries.chunks(args.dim).zip(&query_clusters) {
        let filter = SearchFilter::product(format!("p{c}"));
        let t = Instant::now();
        let hits = index.search(q, &filter, args.k).await?;
        filtered.push(t.elapsed().as_secs_f64() * 1e3);
        short += usize::from(hits.len() < args.k);
    }
    filtered.sort_by(f64::total_cmp);

    let t = Instant::now();
    index.flush().await?;
    let save_s = t.elapsed().as_secs_f64();
    drop(index);
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;

    let figures = json!({
        "recall_at_10": round(recall, 4),
        "p50_ms": round(percentile(&latencies, 0.50), 3),
        "p99_ms": round(percentile(&latencies, 0.99), 3),
        "build_s": round(build_s, 1),
        "save_s": round(save_s, 1),
        "product_filter_p50_ms": round(percentile(&filtered, 0.50), 3),
        "product_filter_p99_ms": round(percentile(&filtered, 0.99), 3),
        "product_filter_short_results": short,
    });
    eprintln!("n={n}: {figures}");
    Ok(figures)
}

fn size_label(n: usize) -> String {
    match n {
        n if n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut bench = serde_json::Map::new();
    bench.insert("name".into(), json!("vectorsearch"));
    for &n in &args.sizes {
        bench.insert(size_label(n), measure(&args, n).await?);
    }
    bench.insert("dim".into(), json!(args.dim));
    bench.insert("k".into(), json!(args.k));
    bench.insert("queries".into(), json!(args.queries));
    bench.insert(
        "engine".into(),
        json!(format!("usearch {}", usearch_version())),
    );
    bench.insert(
        "hnsw".into(),
        json!({ "connectivity": args.connectivity, "ef_construction": args.ef_construction, "ef_search": args.ef_search, "scalar": "f32", "metric": "inner product on unit vectors" }),
    );
    bench.insert(
        "data".into(),
        json!("synthetic: Gaussian clusters (one per product, ~500 vectors each) in a 64-d latent space, random linear map to dim, plus noise, L2-normalised; queries drawn from the same mixture"),
    );
    bench.insert(
        "units".into(),
        json!({ "recall_at_10": "fraction of exact top-10 found", "p50_ms": "ms per query, one query at a time", "build_s": "s to insert all vectors", "save_s": "s to persist" }),
    );
    bench.insert(
        "threads".into(),
        json!(std::thread::available_parallelism().map_or(0, |t| t.get())),
    );
    println!("BENCH {}", Value::Object(bench));
    Ok(())
}

fn usearch_version() -> &'static str {
    vectorindex::hnsw::engine_version()
}
