//! The batcher's priority lane on the real model: a single query overtakes a bulk load that is
//! already running, and chunked bulk requests still get exactly their own vectors.

mod support;

use std::sync::Arc;
use std::time::Duration;

use model::batcher::{BatchLimits, Batcher};
use model::{TextKind, cosine};

const CHUNK: usize = 8;
const BULK: usize = 192;

fn limits() -> BatchLimits {
    BatchLimits {
        max_batch_texts: 64,
        max_batch_wait: Duration::from_millis(3),
        queue_capacity: 1024,
        priority_max_texts: 4,
        bulk_chunk_texts: CHUNK,
    }
}

/// Polls until `done` holds (the model runs a chunk in well under a second).
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached within 30 s");
}

#[tokio::test]
async fn a_query_overtakes_a_running_bulk_load() {
    let Some(engine) = support::engine() else {
        return;
    };
    let batcher = Arc::new(Batcher::start(engine, limits()).unwrap());
    let bulk = {
        let batcher = Arc::clone(&batcher);
        tokio::spawn(async move {
            batcher
                .embed(model::reviews::reviews(BULK), TextKind::Passage)
                .await
        })
    };
    // The bulk load is running: its first chunk is done.
    until(|| batcher.stats().embedded_texts >= CHUNK as u64).await;
    let before = batcher.stats();
    let query = batcher
        .embed(vec!["덜 단 케이크 추천해 주세요".into()], TextKind::Query)
        .await
        .unwrap();
    let after = batcher.stats();
    assert_eq!(query.len(), 1);

    // Between the query's arrival and its answer the thread finishes the chunk it was running,
    // then the query: CHUNK + 1 texts. One chunk more is allowed for the instant between
    // reading `before` and queueing the query, and for the next chunk finishing before this
    // task reads `after`. Without the lane the query would wait for all 192 bulk texts (one
    // batch), or for every remaining chunk (a single FIFO of chunks): at least 176.
    let embedded_meanwhile = after.embedded_texts - before.embedded_texts;
    assert!(
        embedded_meanwhile <= (2 * CHUNK + 1) as u64,
        "{embedded_meanwhile} texts were embedded while the query waited ({before:?} -> {after:?})"
    );
    assert!(
        after.embedded_texts < BULK as u64,
        "the bulk load is still in progress when the query is answered"
    );
    assert!(!bulk.is_finished());
    let vectors = bulk.await.unwrap().unwrap();
    assert_eq!(vectors.len(), BULK);
    // 192 texts in chunks of 8, plus the query: at least 25 engine calls.
    assert!(batcher.stats().engine_calls > (BULK / CHUNK) as u64);
}

#[tokio::test]
async fn chunked_and_concurrent_requests_get_their_own_vectors_in_order() {
    let Some(engine) = support::engine() else {
        return;
    };
    let batcher = Arc::new(Batcher::start(Arc::clone(&engine), limits()).unwrap());
    let texts = model::reviews::reviews(40);
    let queries = ["촉촉한 케이크", "배달이 늦었어요", "포장이 예뻐요"];
    let bulk_passages = {
        let (batcher, texts) = (Arc::clone(&batcher), texts.clone());
        tokio::spawn(async move { batcher.embed(texts, TextKind::Passage).await })
    };
    let bulk_queries = {
        let (batcher, texts) = (Arc::clone(&batcher), texts[..20].to_vec());
        tokio::spawn(async move { batcher.embed(texts, TextKind::Query).await })
    };
    let singles = queries.map(|q| {
        let batcher = Arc::clone(&batcher);
        tokio::spawn(async move { batcher.embed(vec![q.to_string()], TextKind::Query).await })
    });
    let passages = bulk_passages.await.unwrap().unwrap();
    let as_queries = bulk_queries.await.unwrap().unwrap();

    // The same texts through the engine in one call: the same vectors, in the same order
    // (padding within a micro-batch moves the last digits only).
    let expected = engine.embed(&texts, TextKind::Passage).unwrap();
    assert_eq!(passages.len(), 40);
    for (i, (a, b)) in passages.iter().zip(&expected).enumerate() {
        assert!(cosine(a, b) > 0.9999, "passage {i}: {}", cosine(a, b));
    }
    let expected = engine.embed(&texts[..20], TextKind::Query).unwrap();
    for (i, (a, b)) in as_queries.iter().zip(&expected).enumerate() {
        assert!(
            cosine(a, b) > 0.9999,
            "query-kind text {i}: {}",
            cosine(a, b)
        );
    }
    for (single, text) in singles.into_iter().zip(queries) {
        let got = single.await.unwrap().unwrap();
        let want = engine.embed(&[text], TextKind::Query).unwrap();
        assert!(cosine(&got[0], &want[0]) > 0.9999, "{text}");
    }
    // Every reserved text went back to the queue's capacity.
    assert_eq!(batcher.stats().queued_texts, 0);
}

#[tokio::test]
async fn a_cancelled_bulk_request_gives_its_room_back() {
    let Some(engine) = support::engine() else {
        return;
    };
    let batcher = Arc::new(Batcher::start(engine, limits()).unwrap());
    let bulk = {
        let batcher = Arc::clone(&batcher);
        tokio::spawn(async move {
            batcher
                .embed(model::reviews::reviews(BULK), TextKind::Passage)
                .await
        })
    };
    until(|| batcher.stats().embedded_texts >= CHUNK as u64).await;
    bulk.abort();
    // The thread notices the caller is gone at its next chunk and drops the rest.
    until(|| batcher.stats().queued_texts == 0).await;
    let embedded = batcher.stats().embedded_texts;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        batcher.stats().embedded_texts,
        embedded,
        "no more work for a cancelled request"
    );
    assert!(embedded < BULK as u64);
}
