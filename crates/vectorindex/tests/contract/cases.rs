//! The contract cases, generic over the adapter's catalog.

use futures::stream;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use vectorindex::exact::{TopK, dot};
use vectorindex::{
    Hit, IndexCatalog, IndexError, ModelTag, SearchFilter, VectorIndex, VectorRecord, open_current,
    reindex,
};

const DIM: usize = 8;

fn tag() -> ModelTag {
    ModelTag::new("test-embedder", "1", DIM)
}

fn unit(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn record(id: &str, product: &str, category: &str, vector: Vec<f32>) -> VectorRecord {
    VectorRecord {
        id: id.into(),
        product_id: product.into(),
        category: category.into(),
        vector,
    }
}

/// `n` random records spread over `products` products in two categories.
fn records(rng: &mut StdRng, n: usize, products: usize, dim: usize) -> Vec<VectorRecord> {
    (0..n)
        .map(|i| {
            let p = i % products;
            let category = if p.is_multiple_of(2) {
                "cake"
            } else {
                "cookie"
            };
            record(&format!("r{i}"), &format!("p{p}"), category, unit(rng, dim))
        })
        .collect()
}

/// Searches until `done` holds (the Atlas index is eventually consistent), at most two minutes.
async fn settled<I: VectorIndex>(
    index: &I,
    query: &[f32],
    filter: &SearchFilter,
    k: usize,
    done: impl Fn(&[Hit]) -> bool,
) -> Vec<Hit> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let hits = index.search(query, filter, k).await.expect("search");
        if done(&hits) || tokio::time::Instant::now() >= deadline {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Exact top-k ids among `records` passing `filter`.
fn exact_ids(
    records: &[VectorRecord],
    query: &[f32],
    filter: &SearchFilter,
    k: usize,
) -> Vec<String> {
    let mut top = TopK::new(k);
    for (i, r) in records.iter().enumerate() {
        if filter.matches(&r.product_id, &r.category) {
            top.push(i, dot(query, &r.vector));
        }
    }
    top.into_sorted()
        .into_iter()
        .map(|(i, _)| records[i].id.clone())
        .collect()
}

fn ids(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.id.clone()).collect()
}

pub async fn finds_the_nearest<C: IndexCatalog>(catalog: &C) {
    let mut rng = StdRng::seed_from_u64(1);
    let index = catalog.open(&tag()).await.unwrap();
    let data = records(&mut rng, 200, 20, DIM);
    index.upsert(&data).await.unwrap();
    assert_eq!(index.len().await.unwrap(), 200);
    let target = &data[37];
    let hits = settled(&index, &target.vector, &SearchFilter::none(), 5, |h| {
        h.len() == 5
    })
    .await;
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].id, "r37");
    assert_eq!(hits[0].product_id, target.product_id);
    assert!(
        (hits[0].score - 1.0).abs() < 1e-3,
        "self-similarity {}",
        hits[0].score
    );
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "best first: {hits:?}"
    );
    let expected = exact_ids(&data, &target.vector, &SearchFilter::none(), 5);
    assert_eq!(ids(&hits), expected);
    // Scaling the query does not change cosine results.
    let scaled: Vec<f32> = target.vector.iter().map(|x| x * 7.5).collect();
    let again = index
        .search(&scaled, &SearchFilter::none(), 5)
        .await
        .unwrap();
    assert_eq!(ids(&again), expected);
}

pub async fn reupsert_replaces_by_id<C: IndexCatalog>(catalog: &C) {
    let mut rng = StdRng::seed_from_u64(2);
    let index = catalog.open(&tag()).await.unwrap();
    let data = records(&mut rng, 50, 5, DIM);
    index.upsert(&data).await.unwrap();
    let moved = record("r3", "p-new", "tart", unit(&mut rng, DIM));
    index.upsert(std::slice::from_ref(&moved)).await.unwrap();
    index.upsert(std::slice::from_ref(&moved)).await.unwrap();
    assert_eq!(index.len().await.unwrap(), 50);
    let hits = settled(
        &index,
        &moved.vector,
        &SearchFilter::product("p-new"),
        3,
        |h| h.len() == 1,
    )
    .await;
    assert_eq!(ids(&hits), ["r3"]);
    assert_eq!(hits[0].product_id, "p-new");
    let old_product = SearchFilter::product(data[3].product_id.clone());
    let old = settled(&index, &data[3].vector, &old_product, 20, |h| {
        h.iter().all(|h| h.id != "r3")
    })
    .await;
    assert!(
        old.iter().all(|h| h.id != "r3"),
        "old version still found: {old:?}"
    );
}

pub async fn remove_drops_records<C: IndexCatalog>(catalog: &C) {
    let mut rng = StdRng::seed_from_u64(3);
    let index = catalog.open(&tag()).await.unwrap();
    let data = records(&mut rng, 30, 3, DIM);
    index.upsert(&data).await.unwrap();
    index
        .remove(&[
            "r5".to_string(),
            "r6".to_string(),
            "no-such-review".to_string(),
        ])
        .await
        .unwrap();
    assert_eq!(index.len().await.unwrap(), 28);
    let hits = settled(&index, &data[5].vector, &SearchFilter::none(), 28, |h| {
        h.len() == 28 && h.iter().all(|h| h.id != "r5" && h.id != "r6")
    })
    .await;
    assert_eq!(hits.len(), 28);
    assert!(hits.iter().all(|h| h.id != "r5" && h.id != "r6"));
}

pub async fn filters_return_exact_k_under_selective_filters<C: IndexCatalog>(catalog: &C) {
    let mut rng = StdRng::seed_from_u64(4);
    let index = catalog.open(&tag()).await.unwrap();
    let mut data = records(&mut rng, 3000, 100, DIM);
    // A product with only 15 reviews, in a category of its own, among 3000.
    for i in 0..15 {
        data.push(record(
            &format!("rare{i}"),
            "rare",
            "tart",
            unit(&mut rng, DIM),
        ));
    }
    index.upsert(&data).await.unwrap();
    for _ in 0..5 {
        let query = unit(&mut rng, DIM);
        for filter in [
            SearchFilter::product("rare"),
            SearchFilter::category("tart"),
            SearchFilter::category("cake"),
            SearchFilter::product("p4"),
            SearchFilter {
                product_id: Some("p7".into()),
                category: Some("cookie".into()),
            },
        ] {
            let expected = exact_ids(&data, &query, &filter, 10);
            let hits = settled(&index, &query, &filter, 10, |h| h.len() == 10).await;
            assert_eq!(hits.len(), 10, "{filter:?} returned {hits:?}");
            let found = ids(&hits).iter().filter(|id| expected.contains(id)).count();
            assert!(found >= 9, "{filter:?}: {found}/10 of the exact top 10");
            for hit in &hits {
                let r = data.iter().find(|r| r.id == hit.id).unwrap();
                assert!(
                    filter.matches(&r.product_id, &r.category),
                    "{hit:?} fails {filter:?}"
                );
            }
        }
        // Contradictory and unknown filters match nothing.
        let none = SearchFilter {
            product_id: Some("rare".into()),
            category: Some("cake".into()),
        };
        assert!(index.search(&query, &none, 10).await.unwrap().is_empty());
        let unknown = SearchFilter::product("no-such-product");
        assert!(index.search(&query, &unknown, 10).await.unwrap().is_empty());
    }
    // Fewer matching than k: all of them.
    let query = unit(&mut rng, DIM);
    let all_rare = settled(&index, &query, &SearchFilter::product("rare"), 40, |h| {
        h.len() == 15
    })
    .await;
    assert_eq!(all_rare.len(), 15);
}

pub async fn persists_across_reopen<C: IndexCatalog>(catalog: &C) {
    let mut rng = StdRng::seed_from_u64(5);
    let data = records(&mut rng, 300, 10, DIM);
    {
        let index = catalog.open(&tag()).await.unwrap();
        index.upsert(&data).await.unwrap();
        index.remove(&["r0".to_string()]).await.unwrap();
        index.flush().await.unwrap();
    }
    let index = catalog.open(&tag()).await.unwrap();
    assert_eq!(index.len().await.unwrap(), 299);
    let hits = settled(
        &index,
        &data[42].vector,
        &SearchFilter::product("p2"),
        3,
        |h| h.len() == 3,
    )
    .await;
    assert_eq!(hits[0].id, "r42");
    let gone = index
        .search(&data[0].vector, &SearchFilter::none(), 1)
        .await
        .unwrap();
    assert_ne!(gone.first().map(|h| h.id.as_str()), Some("r0"));
    // Writes after reopening get fresh keys and survive another reopen.
    index
        .upsert(&[record("late", "p1", "cookie", data[0].vector.clone())])
        .await
        .unwrap();
    index.flush().await.unwrap();
    drop(index);
    let index = catalog.open(&tag()).await.unwrap();
    assert_eq!(index.len().await.unwrap(), 300);
    let hits = settled(&index, &data[0].vector, &SearchFilter::none(), 1, |h| {
        h.first().is_some_and(|h| h.id == "late")
    })
    .await;
    assert_eq!(ids(&hits), ["late"]);
}

pub async fn refuses_wrong_dimension<C: IndexCatalog>(catalog: &C) {
    let mut rng = StdRng::seed_from_u64(6);
    let index = catalog.open(&tag()).await.unwrap();
    let good = record("ok", "p", "c", unit(&mut rng, DIM));
    let bad = record("short", "p", "c", unit(&mut rng, DIM - 1));
    let err = index.upsert(&[good, bad]).await.unwrap_err();
    assert!(
        matches!(&err, IndexError::DimensionMismatch { id, expected: DIM, actual, .. } if id == "short" && *actual == DIM - 1),
        "{err:?}"
    );
    assert_eq!(err.code(), "VECTOR_DIMENSION_MISMATCH");
    assert_eq!(
        index.len().await.unwrap(),
        0,
        "a batch with a bad record writes nothing"
    );
    let err = index
        .search(&unit(&mut rng, DIM + 3), &SearchFilter::none(), 3)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IndexError::DimensionMismatch { .. }),
        "{err:?}"
    );
    let nan = record("nan", "p", "c", vec![f32::NAN; DIM]);
    assert!(matches!(
        index.upsert(&[nan]).await,
        Err(IndexError::InvalidVector { .. })
    ));
}

pub async fn refuses_another_model<C: IndexCatalog>(catalog: &C) {
    let mut rng = StdRng::seed_from_u64(7);
    let current = open_current(catalog, &tag()).await.unwrap();
    current
        .upsert(&records(&mut rng, 10, 2, DIM))
        .await
        .unwrap();
    current.flush().await.unwrap();
    assert_eq!(catalog.current().await.unwrap(), Some(tag()));
    let newer = ModelTag::new("test-embedder", "2", DIM);
    let err = open_current(catalog, &newer).await.unwrap_err();
    assert!(
        matches!(&err, IndexError::ModelMismatch { expected, found } if *expected == newer && *found == tag()),
        "{err:?}"
    );
    assert_eq!(err.code(), "VECTOR_MODEL_MISMATCH");
    // Same name and version, other dimension: the stored index is not for this model.
    let wider = ModelTag::new("test-embedder", "1", DIM * 2);
    let err = catalog.open(&wider).await.unwrap_err();
    assert!(matches!(err, IndexError::ModelMismatch { .. }), "{err:?}");
    assert!(matches!(
        catalog.retire(&tag()).await,
        Err(IndexError::InUse(_))
    ));
}

pub async fn reindex_swaps_when_complete<C: IndexCatalog>(catalog: &C) {
    let mut rng = StdRng::seed_from_u64(8);
    let old = open_current(catalog, &tag()).await.unwrap();
    old.upsert(&records(&mut rng, 40, 4, DIM)).await.unwrap();
    old.flush().await.unwrap();
    drop(old);

    let new_tag = ModelTag::new("test-embedder", "2", DIM / 2);
    let data = records(&mut rng, 40, 4, DIM / 2);
    let batches: Vec<Result<Vec<VectorRecord>, IndexError>> =
        data.chunks(15).map(|c| Ok(c.to_vec())).collect();
    let new = reindex(catalog, &new_tag, stream::iter(batches))
        .await
        .unwrap();
    assert_eq!(new.model(), &new_tag);
    assert_eq!(new.len().await.unwrap(), 40);
    assert_eq!(catalog.current().await.unwrap(), Some(new_tag.clone()));
    let hits = settled(&new, &data[9].vector, &SearchFilter::none(), 1, |h| {
        h.len() == 1
    })
    .await;
    assert_eq!(ids(&hits), ["r9"]);
    drop(new);

    // The old model is refused and its vectors are gone.
    assert!(matches!(
        open_current(catalog, &tag()).await,
        Err(IndexError::ModelMismatch { .. })
    ));
    let reopened = open_current(catalog, &new_tag).await.unwrap();
    assert_eq!(reopened.len().await.unwrap(), 40);
    assert_eq!(catalog.open(&tag()).await.unwrap().len().await.unwrap(), 0);
}

pub async fn failed_reindex_keeps_the_old_index<C: IndexCatalog>(catalog: &C) {
    let mut rng = StdRng::seed_from_u64(9);
    let old = open_current(catalog, &tag()).await.unwrap();
    old.upsert(&records(&mut rng, 20, 2, DIM)).await.unwrap();
    old.flush().await.unwrap();

    let new_tag = ModelTag::new("test-embedder", "2", DIM);
    let batches = vec![
        Ok(records(&mut rng, 10, 2, DIM)),
        Err(IndexError::InvalidRecord(
            "embedding service went away".into(),
        )),
    ];
    let err = reindex(catalog, &new_tag, stream::iter(batches))
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::InvalidRecord(_)));
    assert_eq!(catalog.current().await.unwrap(), Some(tag()));
    let still = open_current(catalog, &tag()).await.unwrap();
    assert_eq!(still.len().await.unwrap(), 20);
}
