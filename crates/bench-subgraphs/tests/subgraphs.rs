//! The four subgraphs served over real HTTP: their Federation v2 SDL and their entities.

use std::net::{IpAddr, Ipv4Addr};

use bench_subgraphs::{RunningSubgraphs, Subgraph};
use serde_json::{Value, json};

async fn start() -> (RunningSubgraphs, reqwest::Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let running = bench_subgraphs::start(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
        .await
        .unwrap();
    (running, reqwest::Client::new())
}

async fn post(
    client: &reqwest::Client,
    running: &RunningSubgraphs,
    subgraph: Subgraph,
    body: Value,
) -> Value {
    let response = client
        .post(running.url(subgraph).unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let value: Value = response.json().await.unwrap();
    assert!(value.get("errors").is_none(), "{subgraph:?}: {value}");
    value
}

async fn entities(
    client: &reqwest::Client,
    running: &RunningSubgraphs,
    subgraph: Subgraph,
    representations: Value,
    selection: &str,
) -> Value {
    let query = format!(
        "query($representations: [_Any!]!) {{ _entities(representations: $representations) {{ {selection} }} }}"
    );
    let body = json!({ "query": query, "variables": { "representations": representations } });
    post(client, running, subgraph, body).await["data"]["_entities"].clone()
}

#[tokio::test]
async fn every_subgraph_serves_its_federation_sdl() {
    let (running, client) = start().await;
    let expected: [(Subgraph, &[&str]); 4] = [
        (
            Subgraph::Accounts,
            &[
                r#"type User @key(fields: "id")"#,
                "username: String @shareable",
                "users: [User]",
            ],
        ),
        (
            Subgraph::Inventory,
            &[
                r#"type Product @key(fields: "upc")"#,
                "price: Int @external",
                "weight: Int @external",
                r#"shippingEstimate: Int @requires(fields: "price weight")"#,
            ],
        ),
        (
            Subgraph::Products,
            &[
                r#"type Product @key(fields: "upc")"#,
                "topProducts(first: Int = 5): [Product]",
            ],
        ),
        (
            Subgraph::Reviews,
            &[
                r#"type Review @key(fields: "id")"#,
                r#"author: User @provides(fields: "username")"#,
                "username: String @external",
            ],
        ),
    ];
    for (subgraph, fragments) in expected {
        let value = post(
            &client,
            &running,
            subgraph,
            json!({ "query": "{ _service { sdl } }" }),
        )
        .await;
        let sdl = value["data"]["_service"]["sdl"].as_str().unwrap();
        assert!(
            sdl.contains("https://specs.apollo.dev/federation/v2"),
            "{subgraph:?}: {sdl}"
        );
        for fragment in fragments {
            assert!(
                sdl.contains(fragment),
                "{subgraph:?} lacks {fragment}: {sdl}"
            );
        }
        assert_eq!(sdl.trim_end(), subgraph.sdl().trim_end());
    }
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn accounts_resolves_users_and_unknown_ids_to_null() {
    let (running, client) = start().await;
    let found = entities(
        &client,
        &running,
        Subgraph::Accounts,
        json!([{ "__typename": "User", "id": "2" }, { "__typename": "User", "id": "99" }]),
        "... on User { id name username birthday }",
    )
    .await;
    assert_eq!(
        found,
        json!([
            { "id": "2", "name": "Min-jun Kim", "username": "minjun.kim", "birthday": 1234567890 },
            null
        ])
    );
    let users = post(
        &client,
        &running,
        Subgraph::Accounts,
        json!({ "query": "{ users { id } me { id } }" }),
    )
    .await;
    assert_eq!(users["data"]["users"].as_array().unwrap().len(), 6);
    assert_eq!(users["data"]["me"]["id"], "1");
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn inventory_estimates_shipping_from_the_required_price_and_weight() {
    let (running, client) = start().await;
    let found = entities(
        &client,
        &running,
        Subgraph::Inventory,
        json!([
            { "__typename": "Product", "upc": "1", "price": 899, "weight": 100 },
            { "__typename": "Product", "upc": "2", "price": 1299, "weight": 1000 },
        ]),
        "... on Product { upc inStock shippingEstimate }",
    )
    .await;
    assert_eq!(
        found,
        json!([
            { "upc": "1", "inStock": true, "shippingEstimate": 50 },
            { "upc": "2", "inStock": false, "shippingEstimate": 0 },
        ])
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn products_resolves_products_and_top_products() {
    let (running, client) = start().await;
    let found = entities(
        &client,
        &running,
        Subgraph::Products,
        json!([{ "__typename": "Product", "upc": "3" }]),
        "... on Product { upc name price weight }",
    )
    .await;
    assert_eq!(
        found,
        json!([{ "upc": "3", "name": "Scone", "price": 15, "weight": 20 }])
    );
    let top = post(
        &client,
        &running,
        Subgraph::Products,
        json!({ "query": "{ a: topProducts { upc } b: topProducts(first: 2) { upc } }" }),
    )
    .await;
    assert_eq!(top["data"]["a"].as_array().unwrap().len(), 5);
    assert_eq!(top["data"]["b"], json!([{ "upc": "1" }, { "upc": "2" }]));
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn reviews_resolves_reviews_users_and_products() {
    let (running, client) = start().await;
    let found = entities(
        &client,
        &running,
        Subgraph::Reviews,
        json!([
            { "__typename": "Review", "id": "11" },
            { "__typename": "User", "id": "3" },
            { "__typename": "Product", "upc": "1" },
        ]),
        "... on Review { id product { upc } author { id username } } \
         ... on User { id reviews { id } } \
         ... on Product { upc reviews { id } }",
    )
    .await;
    assert_eq!(
        found,
        json!([
            { "id": "11", "product": { "upc": "4" }, "author": { "id": "1", "username": "syeon" } },
            { "id": "3", "reviews": [{ "id": "1" }, { "id": "2" }] },
            { "upc": "1", "reviews": [{ "id": "1" }, { "id": "2" }, { "id": "3" }, { "id": "4" }] },
        ])
    );
    running.shutdown().await.unwrap();
}
