//! Embedded-adapter specifics: on-disk layout, the pointer file, and the exact-scoring path.

use vectorindex::{
    HnswCatalog, HnswConfig, HnswIndex, IndexCatalog, IndexError, ModelTag, SearchFilter,
    VectorIndex, VectorRecord, open_current,
};

fn tag(version: &str) -> ModelTag {
    ModelTag::new("intfloat/e5-small", version, 4)
}

fn record(id: usize, product: &str, vector: [f32; 4]) -> VectorRecord {
    VectorRecord {
        id: format!("r{id}"),
        product_id: product.into(),
        category: "cake".into(),
        vector: vector.to_vec(),
    }
}

#[tokio::test]
async fn index_lives_under_its_model_directory_with_a_pointer_file() {
    let root = tempfile::tempdir().unwrap();
    let catalog = HnswCatalog::new(root.path(), HnswConfig::default());
    let index = open_current(&catalog, &tag("1")).await.unwrap();
    index
        .upsert(&[record(1, "p", [1.0, 0.0, 0.0, 0.0])])
        .await
        .unwrap();
    index.flush().await.unwrap();
    let dir = root.path().join("intfloat_e5-small@1");
    assert_eq!(index.dir(), dir);
    for file in ["model.json", "index.usearch", "records.json"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let pointer: ModelTag =
        serde_json::from_slice(&std::fs::read(root.path().join("CURRENT")).unwrap()).unwrap();
    assert_eq!(pointer, tag("1"));
    // Opening that directory directly for another model is refused.
    let err = HnswIndex::open(&dir, tag("2"), HnswConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::ModelMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn small_filters_are_scored_exactly_and_k_zero_returns_nothing() {
    let root = tempfile::tempdir().unwrap();
    let index = HnswIndex::open(root.path(), tag("1"), HnswConfig::default())
        .await
        .unwrap();
    let mut records: Vec<VectorRecord> = (0..500)
        .map(|i| record(i, "busy", [1.0, (i as f32).sin(), (i as f32).cos(), 0.1]))
        .collect();
    records.extend((500..515).map(|i| record(i, "quiet", [0.0, 1.0, i as f32 / 515.0, 0.0])));
    index.upsert(&records).await.unwrap();
    let query = [0.0, 1.0, 1.0, 0.0];
    let hits = index
        .search(&query, &SearchFilter::product("quiet"), 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.product_id == "quiet"));
    // The largest third component is the closest to the query: r514 first, then downwards.
    let expected: Vec<String> = (505..515).rev().map(|i| format!("r{i}")).collect();
    assert_eq!(
        hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(
        index
            .search(&query, &SearchFilter::none(), 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!index.is_empty().await.unwrap());
    assert!(catalog_is_empty(root.path()).await);
}

async fn catalog_is_empty(root: &std::path::Path) -> bool {
    HnswCatalog::new(root, HnswConfig::default())
        .current()
        .await
        .unwrap()
        .is_none()
}
