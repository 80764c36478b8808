//! Composing our own subgraphs' SDLs, then planning our main operations across them.

use federation::{Engine, EngineConfig, SubgraphSource, Supergraph, compose};

fn our_subgraphs() -> Vec<SubgraphSource> {
    let source = |name: &str, port: u16, sdl: &str| SubgraphSource {
        name: name.to_owned(),
        url: format!("http://127.0.0.1:{port}/graphql"),
        sdl: sdl.to_owned(),
    };
    vec![
        source("order", 4001, include_str!("../../../schema/order.graphql")),
        source(
            "inventory",
            4002,
            include_str!("../../../schema/inventory.graphql"),
        ),
        source(
            "payment",
            4003,
            include_str!("../../../schema/payment.graphql"),
        ),
    ]
}

fn our_engine() -> Engine {
    let sdl = compose(&our_subgraphs()).expect("compose");
    let supergraph = Supergraph::parse(&sdl).expect("parse");
    Engine::new(supergraph, EngineConfig::default()).expect("engine")
}

#[test]
fn composed_supergraph_names_every_subgraph_and_hides_join_internals() {
    let sdl = compose(&our_subgraphs()).expect("compose");
    assert!(sdl.contains("type Query @join__type(graph: INVENTORY) @join__type(graph: ORDER) @join__type(graph: PAYMENT)"));
    let supergraph = Supergraph::parse(&sdl).expect("parse");
    let names: Vec<&str> = supergraph
        .subgraphs()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["inventory", "order", "payment"]);
    assert!(
        supergraph
            .subgraphs()
            .iter()
            .any(|s| s.url == "http://127.0.0.1:4002/graphql")
    );
    let api = supergraph.api_schema_sdl();
    assert!(api.contains("placeOrder") && api.contains("type Payment"));
    assert!(!api.contains("join__"), "{api}");
}

#[test]
fn order_with_payment_and_product_crosses_three_subgraphs() {
    let engine = our_engine();
    let prepared = engine
        .prepare(
            "query($id: ID!) { order(id: $id) { id total payment { status amount } lines { quantity product { name price } } } }",
            None,
        )
        .expect("prepare");
    let fetches = prepared.fetches();
    let summary: Vec<(&str, bool)> = fetches
        .iter()
        .map(|f| (f.subgraph.as_str(), f.entities))
        .collect();
    assert_eq!(summary[0], ("order", false), "{summary:?}");
    assert!(summary.contains(&("payment", true)), "{summary:?}");
    assert!(summary.contains(&("inventory", true)), "{summary:?}");
    assert_eq!(fetches.len(), 3, "{summary:?}");
    let inventory = fetches.iter().find(|f| f.subgraph == "inventory").unwrap();
    assert!(inventory.operation.contains("_entities") && inventory.operation.contains("price"));
}

#[test]
fn main_operations_plan_snapshots() {
    let engine = our_engine();
    let operations = [
        (
            "catalog_products",
            "query Catalog($first: Int!, $after: String) { products(first: $first, after: $after) { edges { cursor node { id name price category available status } } pageInfo { hasNextPage endCursor } } }",
        ),
        (
            "place_order",
            "mutation Place($input: PlaceOrderInput!, $key: String!) { placeOrder(input: $input, idempotencyKey: $key) { id status total lines { quantity product { id name } } } }",
        ),
        (
            "order_with_payment_and_product",
            "query Order($id: ID!) { order(id: $id) { id status total payment { status method amount } lines { quantity unitPrice product { name imageUrl } } } }",
        ),
        (
            "my_orders",
            "query Mine { myOrders(first: 10) { nodes { id status total placedAt lines { product { name } } } pageInfo { hasNextPage } } }",
        ),
    ];
    for (name, query) in operations {
        let prepared = engine
            .prepare(query, None)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        insta::assert_snapshot!(name, prepared.plan_text());
    }
}
