//! The engine on tiny random models written by the test itself, so the paths the default model
//! does not take run everywhere: [CLS] pooling (KoSimCSE) and the XLM-RoBERTa encoder
//! (KoSimCSE-RoBERTa) with its padded micro-batches.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, IndexOp as _, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert, xlm_roberta};
use model::manifest::{
    Architecture, CONFIG_FILE, ModelManifest, Pooling, TOKENIZER_FILE, WEIGHTS_FILE,
};
use model::{Engine, TextKind, cosine};
use tokenizers::Tokenizer;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::processors::template::TemplateProcessing;

const WORDS: [&str; 8] = [
    "케이크",
    "달아요",
    "맛있어요",
    "배송",
    "늦었어요",
    "크림",
    "딸기",
    "좋아요",
];
const HIDDEN: usize = 16;
const INTERMEDIATE: usize = 32;
const LAYERS: usize = 2;
const POSITIONS: usize = 40;

/// Deterministic pseudo-random weights in [-1, 1).
fn values(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            2.0 * ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 1.0
        })
        .collect()
}

/// Writes a tiny BERT-shaped model directory (the tensor names both encoders read).
fn write_model(dir: &Path, architecture: Architecture, pooling: Pooling) {
    let vocab: HashMap<String, u32> = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
        .iter()
        .chain(WORDS.iter())
        .enumerate()
        .map(|(i, w)| ((*w).to_owned(), i as u32))
        .collect();
    let vocab_size = vocab.len();
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace {}));
    tokenizer.with_post_processor(Some(
        TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .unwrap()
            .special_tokens(vec![("[CLS]", 1), ("[SEP]", 2)])
            .build()
            .unwrap(),
    ));
    tokenizer.save(dir.join(TOKENIZER_FILE), false).unwrap();

    let config = serde_json::json!({
        "vocab_size": vocab_size, "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
        "num_attention_heads": 4, "intermediate_size": INTERMEDIATE, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": POSITIONS, "type_vocab_size": 1, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute",
    });
    std::fs::write(dir.join(CONFIG_FILE), config.to_string()).unwrap();

    let mut seed = 7u64;
    let mut tensors = HashMap::new();
    let mut put = |name: String, shape: &[usize]| {
        let n = shape.iter().product();
        // Unit layer norms, so that the random weights rather than the norms' shift decide the
        // direction of a vector.
        let data = if name.ends_with("LayerNorm.weight") {
            vec![1.0; n]
        } else if name.ends_with("LayerNorm.bias") {
            vec![0.0; n]
        } else {
            values(n, &mut seed)
        };
        tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu).unwrap());
    };
    put(
        "embeddings.word_embeddings.weight".into(),
        &[vocab_size, HIDDEN],
    );
    put(
        "embeddings.position_embeddings.weight".into(),
        &[POSITIONS, HIDDEN],
    );
    put(
        "embeddings.token_type_embeddings.weight".into(),
        &[1, HIDDEN],
    );
    put("embeddings.LayerNorm.weight".into(), &[HIDDEN]);
    put("embeddings.LayerNorm.bias".into(), &[HIDDEN]);
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        for part in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
        ] {
            put(format!("{p}.{part}.weight"), &[HIDDEN, HIDDEN]);
            put(format!("{p}.{part}.bias"), &[HIDDEN]);
        }
        put(
            format!("{p}.attention.output.dense.weight"),
            &[HIDDEN, HIDDEN],
        );
        put(format!("{p}.attention.output.dense.bias"), &[HIDDEN]);
        put(format!("{p}.attention.output.LayerNorm.weight"), &[HIDDEN]);
        put(format!("{p}.attention.output.LayerNorm.bias"), &[HIDDEN]);
        put(
            format!("{p}.intermediate.dense.weight"),
            &[INTERMEDIATE, HIDDEN],
        );
        put(format!("{p}.intermediate.dense.bias"), &[INTERMEDIATE]);
        put(format!("{p}.output.dense.weight"), &[HIDDEN, INTERMEDIATE]);
        put(format!("{p}.output.dense.bias"), &[HIDDEN]);
        put(format!("{p}.output.LayerNorm.weight"), &[HIDDEN]);
        put(format!("{p}.output.LayerNorm.bias"), &[HIDDEN]);
    }
    candle_core::safetensors::save(&tensors, dir.join(WEIGHTS_FILE)).unwrap();

    ModelManifest {
        name: "tiny".into(),
        version: "1".into(),
        architecture,
        pooling,
        query_prefix: String::new(),
        passage_prefix: String::new(),
        max_tokens: 16,
    }
    .write(dir)
    .unwrap();
}

fn weights(dir: &Path) -> VarBuilder<'static> {
    let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu).unwrap()
}

fn normalised(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

#[test]
fn cls_pooling_is_the_normalised_first_token_state() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), Architecture::Bert, Pooling::Cls);
    let engine = Engine::load(dir.path()).unwrap();
    let texts = [
        "딸기 케이크 맛있어요",
        "배송 늦었어요 크림 달아요 좋아요",
        "케이크",
    ];
    let got = engine.embed(&texts, TextKind::Passage).unwrap();

    let config: bert::Config =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap())
            .unwrap();
    let reference = bert::BertModel::load(weights(dir.path()), &config).unwrap();
    let tokenizer = Tokenizer::from_file(dir.path().join(TOKENIZER_FILE)).unwrap();
    for (text, got) in texts.iter().zip(&got) {
        let ids = tokenizer.encode(*text, true).unwrap().get_ids().to_vec();
        assert_eq!(ids.first(), Some(&1), "[CLS] first");
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let states = reference
            .forward(&input, &input.zeros_like().unwrap(), None)
            .unwrap();
        let want = normalised(states.i((0, 0)).unwrap().to_vec1::<f32>().unwrap());
        let c = cosine(got, &want);
        assert!(c > 0.99999, "{text}: cosine {c} with the [CLS] state");
    }
    // Different texts, different vectors.
    assert!(cosine(&got[0], &got[1]) < 0.999);
}

#[test]
fn xlm_roberta_vectors_do_not_depend_on_their_batch() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), Architecture::XlmRoberta, Pooling::Mean);
    let engine = Engine::load(dir.path()).unwrap();
    assert_eq!(engine.dimension(), HIDDEN);
    let long = "딸기 케이크 맛있어요 배송 늦었어요 크림 달아요 좋아요 케이크 딸기";
    let batch = engine
        .embed(&[long, "케이크 좋아요", "크림"], TextKind::Query)
        .unwrap();
    let alone = engine.embed(&["케이크 좋아요"], TextKind::Query).unwrap();
    for v in &batch {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    // Padded beside a longer text, a short text gets the vector it gets alone.
    let c = cosine(&batch[1], &alone[0]);
    assert!(c > 0.99999, "cosine {c}");
    assert!(cosine(&batch[0], &batch[2]) < 0.999);

    // And it is what candle-transformers' XLM-RoBERTa gives, mean-pooled.
    let config: xlm_roberta::Config =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap())
            .unwrap();
    let reference = xlm_roberta::XLMRobertaModel::new(&config, weights(dir.path())).unwrap();
    let tokenizer = Tokenizer::from_file(dir.path().join(TOKENIZER_FILE)).unwrap();
    let ids = tokenizer
        .encode("케이크 좋아요", true)
        .unwrap()
        .get_ids()
        .to_vec();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = input.ones_like().unwrap();
    let states = reference
        .forward(
            &input,
            &mask,
            &input.zeros_like().unwrap(),
            None,
            None,
            None,
        )
        .unwrap();
    let want = normalised(
        states
            .i(0)
            .unwrap()
            .mean(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
    );
    let c = cosine(&alone[0], &want);
    assert!(c > 0.99999, "cosine {c} with the reference");
}
