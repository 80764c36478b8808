//! Subscriptions over graphql-transport-ws with entity fields from another subgraph per event.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use federation::{EngineConfig, RequestContext};
use futures::StreamExt;
use serde_json::json;
use support::World;

#[tokio::test]
async fn each_event_gets_entity_fields_from_another_subgraph() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let op = engine
        .prepare(
            "subscription { productAdded { upc name reviews { body } } }",
            None,
        )
        .expect("prepare");
    let stream = engine
        .subscribe(op, Default::default(), RequestContext::default())
        .await
        .expect("subscribe");
    let events: Vec<serde_json::Value> =
        tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
            .await
            .expect("the stream completes")
            .into_iter()
            .map(|response| serde_json::to_value(response).unwrap())
            .collect();
    assert_eq!(
        events,
        vec![
            json!({ "data": { "productAdded": { "upc": "p1", "name": "Strawberry cake",
                "reviews": [{ "body": "Not too sweet" }, { "body": "Lovely" }] } } }),
            json!({ "data": { "productAdded": { "upc": "p2", "name": "Chocolate cookie",
                "reviews": [{ "body": "Crunchy" }] } } }),
            json!({ "data": { "productAdded": { "upc": "p4", "name": "Macaron", "reviews": [] } } }),
        ]
    );
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_subscription() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let op = engine
        .prepare("subscription { ticks { upc inStock } }", None)
        .expect("prepare");
    let mut stream = engine
        .subscribe(op, Default::default(), RequestContext::default())
        .await
        .expect("subscribe");
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event")
        .expect("open");
    assert_eq!(
        serde_json::to_value(first).unwrap(),
        json!({ "data": { "ticks": { "upc": "p2", "inStock": false } } })
    );
    let active = &world.products.counters.active_subscriptions;
    assert_eq!(active.load(Ordering::SeqCst), 1);
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while active.load(Ordering::SeqCst) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream subscription still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn queries_cannot_be_subscribed_and_subscriptions_cannot_be_executed() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let query = engine.prepare("{ me { id } }", None).unwrap();
    assert!(
        engine
            .subscribe(query, Default::default(), RequestContext::default())
            .await
            .is_err()
    );
    let subscription = engine
        .prepare("subscription { ticks { upc } }", None)
        .unwrap();
    let response = engine
        .execute(
            &subscription,
            Default::default(),
            &RequestContext::default(),
        )
        .await;
    assert!(response.data.is_none());
    assert!(!response.errors.is_empty());
}
