//! The BERT encoder (BERT, multilingual-e5, KoSimCSE-BERT) on packed sequences: the tokens of
//! every text of a batch are rows of one matrix with no padding, so the linear layers are a
//! few large matrix products and only attention looks at sequence boundaries.
//!
//! It computes what `candle_transformers::models::bert::BertModel` computes (a test holds the two
//! together) with the kernels of [`crate::kernels`]: one fused query/key/value product, the
//! bias (and residual) added by the product itself, attention without padding or per-head
//! matrix products, and a vectorised exact GELU.

use std::ops::Range;
use std::path::Path;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::error::ModelError;
use crate::kernels::{self, Heads};

/// A layer norm's scale and shift.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// One transformer layer's weights (torch `Linear` layout: `out × in`, row-major).
struct Layer {
    qkv_w: Vec<f32>,
    qkv_b: Vec<f32>,
    attn_out_w: Vec<f32>,
    attn_out_b: Vec<f32>,
    attn_norm: Norm,
    inter_w: Vec<f32>,
    inter_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    out_norm: Norm,
}

/// A loaded BERT encoder.
pub(crate) struct BertEncoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    intermediate: usize,
    heads: Heads,
    vocab: usize,
    max_positions: usize,
    eps: f32,
}

/// The final hidden states of a batch: one `hidden`-wide row per token, and each sequence's rows.
pub(crate) struct Hidden {
    /// Row-major token states.
    pub states: Vec<f32>,
    /// The rows of each input sequence, in input order.
    pub sequences: Vec<Range<usize>>,
}

fn load(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Vec<f32>, ModelError> {
    let tensor: Tensor = vb.get(shape, name)?;
    Ok(tensor.flatten_all()?.to_vec1::<f32>()?)
}

fn norm(vb: &VarBuilder, width: usize) -> Result<Norm, ModelError> {
    Ok(Norm {
        gamma: load(vb, &[width], "weight")?,
        beta: load(vb, &[width], "bias")?,
    })
}

impl BertEncoder {
    /// Loads the encoder from `vb` (tensor names as Hugging Face's `BertModel`, optionally under
    /// `bert.`).
    /// `config_path` names the configuration in errors.
    pub(crate) fn load(
        vb: VarBuilder,
        config: &Config,
        config_path: &Path,
    ) -> Result<Self, ModelError> {
        if config.hidden_act != HiddenAct::Gelu {
            return Err(ModelError::format(
                config_path,
                format!(
                    "hidden_act {:?} is not supported (only gelu)",
                    config.hidden_act
                ),
            ));
        }
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let h = config.hidden_size;
        let i = config.intermediate_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !h.is_multiple_of(heads) {
            return Err(ModelError::format(
                config_path,
                format!("hidden_size {h} is not a multiple of num_attention_heads {heads}"),
            ));
        }
        let emb = vb.pp("embeddings");
        let word = load(&emb, &[config.vocab_size, h], "word_embeddings.weight")?;
        let position = load(
            &emb,
            &[config.max_position_embeddings, h],
            "position_embeddings.weight",
        )?;
        let types = load(
            &emb,
            &[config.type_vocab_size, h],
            "token_type_embeddings.weight",
        )?;
        let embed_norm = norm(&emb.pp("LayerNorm"), h)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for index in 0..config.num_hidden_layers {
            let vb = vb.pp(format!("encoder.layer.{index}"));
            let att = vb.pp("attention");
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                qkv_w.extend(load(&att.pp("self").pp(part), &[h, h], "weight")?);
                qkv_b.extend(load(&att.pp("self").pp(part), &[h], "bias")?);
            }
            layers.push(Layer {
                qkv_w,
                qkv_b,
                attn_out_w: load(&att.pp("output.dense"), &[h, h], "weight")?,
                attn_out_b: load(&att.pp("output.dense"), &[h], "bias")?,
                attn_norm: norm(&att.pp("output.LayerNorm"), h)?,
                inter_w: load(&vb.pp("intermediate.dense"), &[i, h], "weight")?,
                inter_b: load(&vb.pp("intermediate.dense"), &[i], "bias")?,
                out_w: load(&vb.pp("output.dense"), &[h, i], "weight")?,
                out_b: load(&vb.pp("output.dense"), &[h], "bias")?,
                out_norm: norm(&vb.pp("output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            word,
            position,
            token_type: types
                .get(..h)
                .ok_or_else(|| ModelError::format(config_path, "type_vocab_size is 0"))?
                .to_vec(),
            embed_norm,
            layers,
            hidden: h,
            intermediate: i,
            heads: Heads {
                count: heads,
                width: h / heads,
            },
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
            eps: config.layer_norm_eps as f32,
        })
    }

    /// Width of a token state.
    pub(crate) fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Runs the encoder over `sequences` (token ids, all of token type 0).
    pub(crate) fn forward(&self, sequences: &[&[u32]]) -> Result<Hidden, ModelError> {
        let h = self.hidden;
        let mut ranges = Vec::with_capacity(sequences.len());
        let mut rows = 0;
        for ids in sequences {
            if ids.len() > self.max_positions {
                return Err(ModelError::InvalidInput(format!(
                    "{} tokens exceed the model's {} positions",
                    ids.len(),
                    self.max_positions
                )));
            }
            ranges.push(rows..rows + ids.len());
            rows += ids.len();
        }
        let mut hidden = vec![0f32; rows * h];
        for (ids, range) in sequences.iter().zip(&ranges) {
            for (pos, (&id, row)) in ids
                .iter()
                .zip(hidden[range.start * h..range.end * h].chunks_exact_mut(h))
                .enumerate()
            {
                let id = id as usize;
                if id >= self.vocab {
                    return Err(ModelError::Batch(format!(
                        "token id {id} outside the model's vocabulary of {}",
                        self.vocab
                    )));
                }
                let word = &self.word[id * h..][..h];
                let position = &self.position[pos * h..][..h];
                for (((out, w), p), t) in
                    row.iter_mut().zip(word).zip(position).zip(&self.token_type)
                {
                    *out = w + p + t;
                }
            }
        }
        kernels::layer_norm(
            &mut hidden,
            &self.embed_norm.gamma,
            &self.embed_norm.beta,
            self.eps,
        );

        let mut qkv = vec![0f32; rows * 3 * h];
        let mut ctx = vec![0f32; rows * h];
        let mut attended = vec![0f32; rows * h];
        let mut inter = vec![0f32; rows * self.intermediate];
        for layer in &self.layers {
            kernels::fill_rows(&mut qkv, &layer.qkv_b);
            kernels::matmul_add(&mut qkv, &hidden, &layer.qkv_w, rows, 3 * h, h);
            kernels::attention(&qkv, &mut ctx, &ranges, self.heads);

            kernels::add_rows(&mut attended, &hidden, &layer.attn_out_b);
            kernels::matmul_add(&mut attended, &ctx, &layer.attn_out_w, rows, h, h);
            let n = &layer.attn_norm;
            kernels::layer_norm(&mut attended, &n.gamma, &n.beta, self.eps);

            kernels::fill_rows(&mut inter, &layer.inter_b);
            kernels::matmul_add(
                &mut inter,
                &attended,
                &layer.inter_w,
                rows,
                self.intermediate,
                h,
            );
            kernels::gelu(&mut inter);

            kernels::add_rows(&mut hidden, &attended, &layer.out_b);
            kernels::matmul_add(
                &mut hidden,
                &inter,
                &layer.out_w,
                rows,
                h,
                self.intermediate,
            );
            let n = &layer.out_norm;
            kernels::layer_norm(&mut hidden, &n.gamma, &n.beta, self.eps);
        }
        Ok(Hidden {
            states: hidden,
            sequences: ranges,
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, IndexOp as _};
    use tokenizers::Tokenizer;

    use super::*;
    use crate::manifest::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};

    /// The packed encoder gives the token states of candle-transformers' `BertModel` (each text
    /// run alone there, so no padding is involved) on the default model.
    #[test]
    fn token_states_match_candle_transformers_bert() {
        let dir = std::env::var_os("MODEL_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(crate::manifest::default_model_dir);
        if !crate::manifest::is_model_dir(&dir) {
            eprintln!("skipping: no model directory at {}", dir.display());
            return;
        }
        let config_path = dir.join(CONFIG_FILE);
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
        let weights = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).unwrap();
        let ours = BertEncoder::load(vb.clone(), &config, &config_path).unwrap();
        let theirs = candle_transformers::models::bert::BertModel::load(vb, &config).unwrap();
        let tokenizer = Tokenizer::from_file(dir.join(TOKENIZER_FILE)).unwrap();
        let texts = [
            "query: 덜 단 케이크 추천해 주세요",
            "passage: 딸기 타르트는 상큼하고 크림이 부드러워요. 배송은 조금 늦었어요.",
            "passage: 녹았어요",
        ];
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| tokenizer.encode(*t, true).unwrap().get_ids().to_vec())
            .collect();
        let batch: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let packed = ours.forward(&batch).unwrap();
        let h = ours.hidden_size();
        let mut worst = 0f32;
        for (ids, rows) in ids.iter().zip(&packed.sequences) {
            let input = Tensor::new(ids.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let types = input.zeros_like().unwrap();
            let want = theirs
                .forward(&input, &types, None)
                .unwrap()
                .i(0)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let got = &packed.states[rows.start * h..rows.end * h];
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                worst = worst.max((a - b).abs());
            }
        }
        eprintln!("max |difference| {worst}");
        assert!(worst < 1e-4, "max |difference| {worst}");
    }
}
