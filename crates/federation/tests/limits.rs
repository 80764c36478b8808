//! Operation limits: each refusal carries its code and no subgraph is called.

mod support;

use federation::EngineConfig;
use serde_json::json;
use support::{World, run};

async fn refused(world: &World, query: &str) -> String {
    let engine = world.engine(EngineConfig::default()).await;
    let before = world.total_requests();
    let response = run(&engine, query, json!({})).await;
    assert!(response.get("data").is_none(), "{response}");
    assert_eq!(world.total_requests(), before, "no subgraph call");
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn each_limit_has_its_code_and_calls_no_subgraph() {
    let world = World::start().await;

    let deep = format!(
        "{{ me {{ {} id {} }} }}",
        "reviews { author { ".repeat(8),
        "} } ".repeat(8)
    );
    assert_eq!(refused(&world, &deep).await, "MAX_DEPTH_EXCEEDED");

    let aliases: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let alias_bomb = format!("{{ {} }}", &aliases);
    let code = refused(&world, &alias_bomb).await;
    assert!(
        code == "MAX_ALIASES_EXCEEDED" || code == "MAX_ROOT_FIELDS_EXCEEDED",
        "{code}"
    );
    let nested_aliases: String = (0..31).map(|i| format!("a{i}: id ")).collect();
    assert_eq!(
        refused(&world, &format!("{{ me {{ {nested_aliases} }} }}")).await,
        "MAX_ALIASES_EXCEEDED"
    );

    let roots: String = (0..21).map(|_| "me { id } ").collect();
    assert_eq!(
        refused(&world, &format!("{{ {roots} }}")).await,
        "MAX_ROOT_FIELDS_EXCEEDED"
    );

    let tokens = format!("{{ me {{ {} }} }}", "id ".repeat(10_001));
    assert_eq!(refused(&world, &tokens).await, "MAX_TOKENS_EXCEEDED");

    // 5000 products * (1 + 10 reviews * (1 + 1 author)) = 105 000 > 50 000: lists multiply
    // their items' cost.
    let costly = "{ topProducts(first: 5000) { reviews { body author { id } } } }";
    assert_eq!(refused(&world, costly).await, "COST_LIMIT_EXCEEDED");

    assert_eq!(refused(&world, "{ me { id ").await, "GRAPHQL_PARSE_FAILED");
    assert_eq!(
        refused(&world, "{ me { nope } }").await,
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(
        refused(&world, "query A { me { id } } query B { me { id } }").await,
        "OPERATION_NOT_FOUND"
    );
}

#[tokio::test]
async fn prepared_operations_are_cached() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let first = engine.prepare("{ me { id } }", None).unwrap();
    let second = engine.prepare("{ me { id } }", None).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &second));
    let other = engine.prepare("{ me { name } }", None).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &other));
}

#[tokio::test]
async fn no_input_crashes_the_planner() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    for query in [
        "mutation { x }",
        "subscription { nope }",
        "{ product(upc: 99999999999999999999) { name } }",
        "query ($a: Int = 99999999999999999999) { me { id } }",
        "{ __typename }",
        "fragment F on Query { ...F } { ...F }",
        "",
        "{ media { ... on Book { ... on Media { title } } } }",
    ] {
        let _ = run(&engine, query, json!({})).await;
    }
    let response = run(&engine, "{ __typename }", json!({})).await;
    assert_eq!(response, json!({ "data": { "__typename": "Query" } }));
}
