//! `model-korsts`: prints the KorSTS Spearman correlation (×100) of the model's cosine
//! similarities with the gold scores.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use model::{Engine, TextKind};

/// Measures a model directory on KorSTS.
#[derive(Debug, Parser)]
struct Args {
    /// The model directory.
    #[arg(long, env = "MODEL_DIR", default_value_os_t = model::manifest::default_model_dir())]
    model_dir: PathBuf,
    /// The KorSTS TSV (read in place, never copied).
    #[arg(
        long,
        env = "KORSTS_FILE",
        default_value = "../shared/data/korsts/sts-test.tsv"
    )]
    file: PathBuf,
    /// Which prefix the sentences get.
    #[arg(long, value_enum, default_value_t = Kind::Query)]
    kind: Kind,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Query,
    Passage,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pairs = model::korsts::read_pairs(&args.file).context("cannot read KorSTS")?;
    let engine = Engine::load(&args.model_dir).context("cannot load the model")?;
    let kind = match args.kind {
        Kind::Query => TextKind::Query,
        Kind::Passage => TextKind::Passage,
    };
    let started = std::time::Instant::now();
    let spearman = model::korsts::evaluate_engine(&engine, &pairs, kind)?;
    println!(
        "KorSTS test spearman x100 = {spearman:.2} ({} pairs, {:?}, {} {}, {:.1} s)",
        pairs.len(),
        args.kind,
        engine.manifest().name,
        engine.manifest().version,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
