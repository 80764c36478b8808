//! Executing plans against real test subgraphs over HTTP.

mod support;

use federation::EngineConfig;
use serde_json::json;
use support::{World, run};

#[tokio::test]
async fn root_fetch_returns_the_projected_fields_in_query_order() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let before = world.products.counters.requests();
    let response = run(
        &engine,
        "{ product(upc: \"p1\") { price name upc } }",
        json!({}),
    )
    .await;
    assert_eq!(
        response,
        json!({ "data": { "product": { "price": 30000, "name": "Strawberry cake", "upc": "p1" } } })
    );
    let text = serde_json::to_string(&response).unwrap();
    assert!(
        text.find("price").unwrap() < text.find("name").unwrap(),
        "field order kept: {text}"
    );
    assert_eq!(world.products.counters.requests() - before, 1);
}
