//! The inference engine: tokenizer + encoder (CPU) + pooling, synchronous.
//!
//! BERT models run on [`crate::encoder`]: a batch's token sequences are packed without padding
//! into passes of at most [`PACKED_TOKENS`] tokens. XLM-RoBERTa models run on
//! `candle-transformers`: a batch is sorted by length and cut into micro-batches of similar
//! length, so padding stays small, each one encoder pass with an attention mask. Token states
//! are pooled (mean over real tokens, or [CLS]) and L2-normalised.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert, xlm_roberta};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::embedding::TextKind;
use crate::encoder::BertEncoder;
use crate::error::ModelError;
use crate::manifest::{
    Architecture, CONFIG_FILE, ModelManifest, Pooling, TOKENIZER_FILE, WEIGHTS_FILE,
};

/// Padded tokens (texts × longest length) one XLM-RoBERTa pass may hold.
const MICRO_BATCH_TOKENS: usize = 2048;

/// Tokens one packed BERT pass may hold (bounds its activations to a few tens of MB).
pub const PACKED_TOKENS: usize = 8192;

/// The encoder network of a model directory.
enum Network {
    Bert(Box<BertEncoder>),
    XlmRoberta {
        model: xlm_roberta::XLMRobertaModel,
        /// The id padding a short text up to its micro-batch's length.
        pad_id: u32,
    },
}

/// A loaded model: embeds texts in-process.
pub struct Engine {
    manifest: ModelManifest,
    tokenizer: Tokenizer,
    network: Network,
    dimension: usize,
    device: Device,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("manifest", &self.manifest)
            .field("dimension", &self.dimension)
            .finish_non_exhaustive()
    }
}

/// One tokenised text, remembering its place in the batch.
struct Tokens {
    index: usize,
    ids: Vec<u32>,
}

impl Engine {
    /// Loads the model directory `dir` (manifest, config, weights, tokenizer) on the CPU.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let manifest = ModelManifest::read(dir)?;
        let device = Device::Cpu;
        let config_path = dir.join(CONFIG_FILE);
        let config =
            std::fs::read_to_string(&config_path).map_err(|e| ModelError::io(&config_path, e))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let weights = std::fs::read(&weights_path).map_err(|e| ModelError::io(&weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let (network, dimension) = match manifest.architecture {
            Architecture::Bert => {
                let config: bert::Config = serde_json::from_str(&config)
                    .map_err(|e| ModelError::format(&config_path, e.to_string()))?;
                let network = BertEncoder::load(vb, &config, &config_path)?;
                (Network::Bert(Box::new(network)), config.hidden_size)
            }
            Architecture::XlmRoberta => {
                let config: xlm_roberta::Config = serde_json::from_str(&config)
                    .map_err(|e| ModelError::format(&config_path, e.to_string()))?;
                let model = xlm_roberta::XLMRobertaModel::new(&config, vb)?;
                let network = Network::XlmRoberta {
                    model,
                    pad_id: config.pad_token_id,
                };
                (network, config.hidden_size)
            }
        };
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| ModelError::format(&tokenizer_path, e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: manifest.max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| ModelError::format(&tokenizer_path, e.to_string()))?;
        tracing::info!(
            model = %manifest.name,
            version = %manifest.version,
            dimension,
            pooling = manifest.pooling.as_str(),
            "model loaded"
        );
        Ok(Self {
            manifest,
            tokenizer,
            network,
            dimension,
            device,
        })
    }

    /// The model's manifest (name, version, pooling, prefixes).
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// Embedding dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Embeds `texts` (each with the prefix of `kind`): one L2-normalised vector per text.
    pub fn embed<S: AsRef<str>>(
        &self,
        texts: &[S],
        kind: TextKind,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let prefix = match kind {
            TextKind::Query => &self.manifest.query_prefix,
            TextKind::Passage => &self.manifest.passage_prefix,
        };
        let inputs: Vec<String> = texts
            .iter()
            .map(|text| format!("{prefix}{}", text.as_ref()))
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let ids: Vec<Vec<u32>> = encodings
            .into_iter()
            .map(|encoding| encoding.get_ids().to_vec())
            .collect();
        match &self.network {
            Network::Bert(encoder) => self.embed_packed(encoder, &ids),
            Network::XlmRoberta { model, pad_id } => self.embed_padded(model, *pad_id, ids),
        }
    }

    /// Embeds token sequences through the packed BERT encoder, in order.
    fn embed_packed(
        &self,
        encoder: &BertEncoder,
        ids: &[Vec<u32>],
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let width = encoder.hidden_size();
        let mut out = Vec::with_capacity(ids.len());
        let mut start = 0;
        while start < ids.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < ids.len() && (end == start || tokens + ids[end].len() <= PACKED_TOKENS) {
                tokens += ids[end].len();
                end += 1;
            }
            let batch: Vec<&[u32]> = ids[start..end].iter().map(Vec::as_slice).collect();
            let hidden = encoder.forward(&batch)?;
            for rows in &hidden.sequences {
                let states = &hidden.states[rows.start * width..rows.end * width];
                out.push(self.pool(states, width)?);
            }
            start = end;
        }
        Ok(out)
    }

    /// Pools one sequence's token states (`width`-wide rows) and L2-normalises the result.
    fn pool(&self, states: &[f32], width: usize) -> Result<Vec<f32>, ModelError> {
        let rows = states.len() / width;
        if rows == 0 {
            return Err(ModelError::Batch("a text produced no tokens".into()));
        }
        let mut pooled = match self.manifest.pooling {
            Pooling::Cls => states[..width].to_vec(),
            Pooling::Mean => {
                let mut sum = vec![0f32; width];
                for row in states.chunks_exact(width) {
                    for (s, x) in sum.iter_mut().zip(row) {
                        *s += x;
                    }
                }
                let n = rows as f32;
                sum.iter_mut().for_each(|s| *s /= n);
                sum
            }
        };
        let norm = pooled.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        pooled.iter_mut().for_each(|x| *x /= norm);
        Ok(pooled)
    }

    /// Embeds token sequences through the padded XLM-RoBERTa encoder, in order.
    fn embed_padded(
        &self,
        model: &xlm_roberta::XLMRobertaModel,
        pad_id: u32,
        ids: Vec<Vec<u32>>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut tokens: Vec<Tokens> = ids
            .into_iter()
            .enumerate()
            .map(|(index, ids)| Tokens { index, ids })
            .collect();
        tokens.sort_by_key(|t| std::cmp::Reverse(t.ids.len()));

        let mut out = vec![Vec::new(); tokens.len()];
        let mut start = 0;
        while start < tokens.len() {
            // Longest first: the first text of a micro-batch sets its padded length.
            let longest = tokens[start].ids.len().max(1);
            let fits = (MICRO_BATCH_TOKENS / longest).max(1);
            let end = (start + fits).min(tokens.len());
            let vectors = self.forward(model, pad_id, &tokens[start..end])?;
            for (t, vector) in tokens[start..end].iter().zip(vectors) {
                out[t.index] = vector;
            }
            start = end;
        }
        Ok(out)
    }

    /// One encoder pass over texts padded to the longest; returns normalised pooled vectors.
    fn forward(
        &self,
        model: &xlm_roberta::XLMRobertaModel,
        pad_id: u32,
        batch: &[Tokens],
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let n = batch.len();
        let len = batch.iter().map(|t| t.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![pad_id; n * len];
        let mut mask = vec![0u32; n * len];
        for (row, t) in batch.iter().enumerate() {
            ids[row * len..row * len + t.ids.len()].copy_from_slice(&t.ids);
            mask[row * len..row * len + t.ids.len()].fill(1);
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let types = ids.zeros_like()?;
        let states = model
            .forward(&ids, &mask, &types, None, None, None)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        // Each text's real tokens are the first rows of its padded block.
        let block = len * self.dimension;
        batch
            .iter()
            .enumerate()
            .map(|(row, t)| {
                let start = row * block;
                self.pool(
                    &states[start..start + t.ids.len() * self.dimension],
                    self.dimension,
                )
            })
            .collect()
    }

    /// Number of tokens (specials included, after truncation) of `text` as `kind`.
    pub fn token_count(&self, text: &str, kind: TextKind) -> Result<usize, ModelError> {
        let prefix = match kind {
            TextKind::Query => &self.manifest.query_prefix,
            TextKind::Passage => &self.manifest.passage_prefix,
        };
        let encoding = self
            .tokenizer
            .encode(format!("{prefix}{text}"), true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().len())
    }
}
