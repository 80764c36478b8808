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

#[tokio::test]
async fn entities_across_three_subgraphs_are_batched_one_request_per_step() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let reviews_before = world.reviews.counters.entity_requests();
    let accounts_before = world.accounts.counters.entity_requests();
    let response = run(
        &engine,
        "{ topProducts(first: 2) { upc name reviews { body author { id username } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        response,
        json!({ "data": { "topProducts": [
            { "upc": "p1", "name": "Strawberry cake", "reviews": [
                { "body": "Not too sweet", "author": { "id": "u1", "username": "minji" } },
                { "body": "Lovely", "author": { "id": "u2", "username": "jisoo" } }
            ] },
            { "upc": "p2", "name": "Chocolate cookie", "reviews": [
                { "body": "Crunchy", "author": { "id": "u1", "username": "minji" } }
            ] }
        ] } })
    );
    assert_eq!(
        world.reviews.counters.entity_requests() - reviews_before,
        1,
        "one _entities call to reviews"
    );
    assert_eq!(
        world.accounts.counters.entity_requests() - accounts_before,
        1,
        "one _entities call to accounts"
    );
    let bodies = world.accounts.counters.bodies.lock().unwrap().clone();
    assert!(bodies.iter().any(|q| q.contains("_entities")));
}

#[tokio::test]
async fn identical_representations_are_sent_once() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    // u1 appears twice among the authors; accounts must get it once.
    let prepared = engine
        .prepare(
            "{ topProducts(first: 2) { reviews { author { username } } } }",
            None,
        )
        .unwrap();
    assert!(
        prepared
            .fetches()
            .iter()
            .any(|f| f.subgraph == "accounts" && f.entities)
    );
    let response = engine
        .execute(
            &prepared,
            Default::default(),
            &federation::RequestContext::default(),
        )
        .await;
    let authors: Vec<_> = response.data.as_ref().unwrap().to_value()["topProducts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["reviews"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["author"]["username"].clone())
        })
        .collect();
    assert_eq!(
        authors,
        vec![json!("minji"), json!("jisoo"), json!("minji")]
    );
}

#[tokio::test]
async fn requires_sends_the_required_fields_from_another_subgraph() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let response = run(
        &engine,
        "{ topProducts(first: 2) { upc inStock shippingEstimate } }",
        json!({}),
    )
    .await;
    assert_eq!(
        response,
        json!({ "data": { "topProducts": [
            { "upc": "p1", "inStock": true, "shippingEstimate": 0 },
            { "upc": "p2", "inStock": false, "shippingEstimate": 50 }
        ] } })
    );
}

#[tokio::test]
async fn provides_avoids_the_owning_subgraph() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let accounts_before = world.accounts.counters.requests();
    let response = run(
        &engine,
        "{ latestReview { body author { name } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        response,
        json!({ "data": { "latestReview": { "body": "Not too sweet", "author": { "name": "Minji" } } } })
    );
    assert_eq!(
        world.accounts.counters.requests(),
        accounts_before,
        "name came from reviews via @provides"
    );
    let response = run(
        &engine,
        "{ latestReview { author { username } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        response,
        json!({ "data": { "latestReview": { "author": { "username": "minji" } } } })
    );
    assert_eq!(world.accounts.counters.requests() - accounts_before, 1);
}

#[tokio::test]
async fn interfaces_and_unions_resolve_across_subgraphs() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let response = run(
        &engine,
        "{ media { __typename title ... on Book { pages rating } ... on Movie { minutes } }
           search { ... on Movie { title rating } ... on Book { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        response,
        json!({ "data": {
            "media": [
                { "__typename": "Book", "title": "Baking basics", "pages": 320, "rating": 4 },
                { "__typename": "Movie", "title": "The Great Bake", "minutes": 95 }
            ],
            "search": [
                { "title": "The Great Bake", "rating": 5 },
                { "id": "b1" }
            ]
        } })
    );
}

#[tokio::test]
async fn aliases_fragments_directives_and_variables() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let query = "query Q($upc: String!, $withReviews: Boolean!, $skipName: Boolean = false) {
        first: product(upc: $upc) { ...Basic reviews @include(if: $withReviews) { text: body } }
        second: product(upc: \"p2\") { label: name @skip(if: $skipName) __typename }
    }
    fragment Basic on Product { id: upc cost: price }";
    let response = run(
        &engine,
        query,
        json!({ "upc": "p1", "withReviews": true, "skipName": true }),
    )
    .await;
    assert_eq!(
        response,
        json!({ "data": {
            "first": { "id": "p1", "cost": 30000, "reviews": [{ "text": "Not too sweet" }, { "text": "Lovely" }] },
            "second": { "__typename": "Product" }
        } })
    );
    let reviews_before = world.reviews.counters.requests();
    let response = run(&engine, query, json!({ "upc": "p2", "withReviews": false })).await;
    assert_eq!(
        response,
        json!({ "data": {
            "first": { "id": "p2", "cost": 3000 },
            "second": { "label": "Chocolate cookie", "__typename": "Product" }
        } })
    );
    assert_eq!(
        world.reviews.counters.requests(),
        reviews_before,
        "skipped branch fetched nothing"
    );
}

#[tokio::test]
async fn missing_required_variable_is_bad_user_input_without_subgraph_calls() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let before = world.total_requests();
    let response = run(
        &engine,
        "query Q($upc: String!) { product(upc: $upc) { name } }",
        json!({}),
    )
    .await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    assert!(response.get("data").is_none());
    assert_eq!(world.total_requests(), before);
}

#[tokio::test]
async fn subgraph_error_paths_are_rerooted_and_nulls_propagate() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let response = run(
        &engine,
        "{ topProducts { upc reviews { body } } }",
        json!({}),
    )
    .await;
    let data = &response["data"]["topProducts"];
    assert_eq!(data[0]["upc"], "p1");
    // p3's reviews failed: reviews is [Review!]!, so the nullable list item becomes null.
    assert_eq!(data[2], json!(null));
    assert_eq!(data[3], json!({ "upc": "p4", "reviews": [] }));
    let errors = response["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["path"], json!(["topProducts", 2, "reviews"]));
    assert_eq!(errors[0]["message"], "reviews are unavailable for p3");
}

#[tokio::test]
async fn root_subgraph_error_keeps_its_path() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let response = run(
        &engine,
        "{ failing product(upc: \"p1\") { name } }",
        json!({}),
    )
    .await;
    assert_eq!(
        response["data"],
        json!({ "failing": null, "product": { "name": "Strawberry cake" } })
    );
    assert_eq!(response["errors"][0]["path"], json!(["failing"]));
}

#[tokio::test]
async fn subgraph_down_gives_partial_data_and_a_located_error() {
    let world = World::start().await;
    let broken = support::closing_server().await;
    let mut config = EngineConfig::default();
    config.subgraph_urls.insert("accounts".to_owned(), broken);
    let engine = world.engine(config).await;
    let response = run(
        &engine,
        "{ product(upc: \"p1\") { name } me { name } }",
        json!({}),
    )
    .await;
    assert_eq!(
        response["data"]["product"],
        json!({ "name": "Strawberry cake" })
    );
    assert_eq!(response["data"]["me"], json!(null));
    let error = &response["errors"][0];
    assert_eq!(error["extensions"]["code"], "SUBGRAPH_REQUEST_FAILED");
    assert_eq!(error["path"], json!(["me"]));
    let text = error["message"].as_str().unwrap();
    assert!(!text.contains("127.0.0.1"), "no internal details: {text}");
}

#[tokio::test]
async fn non_null_root_field_failure_nulls_data() {
    let world = World::start().await;
    let broken = support::closing_server().await;
    let mut config = EngineConfig::default();
    config.subgraph_urls.insert("reviews".to_owned(), broken);
    let engine = world.engine(config).await;
    // latestReview is Review!: its failure nulls the whole data.
    let response = run(
        &engine,
        "{ product(upc: \"p1\") { name } latestReview { body } }",
        json!({}),
    )
    .await;
    assert_eq!(response["data"], json!(null));
    assert_eq!(response["errors"][0]["path"], json!(["latestReview"]));
}

#[tokio::test]
async fn non_null_entity_field_failure_bubbles_to_the_nearest_nullable_parent() {
    let world = World::start().await;
    let broken = support::closing_server().await;
    let mut config = EngineConfig::default();
    config.subgraph_urls.insert("inventory".to_owned(), broken);
    let engine = world.engine(config).await;
    // inStock is Boolean!: without inventory the product (nullable) becomes null.
    let response = run(
        &engine,
        "{ product(upc: \"p1\") { name inStock } }",
        json!({}),
    )
    .await;
    assert_eq!(response["data"], json!({ "product": null }));
    let errors = response["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["extensions"]["code"], "SUBGRAPH_REQUEST_FAILED");
    assert_eq!(errors[0]["path"], json!(["product"]));
}

#[tokio::test]
async fn subgraph_timeout_is_a_subgraph_request_failure() {
    let world = World::start().await;
    let config = EngineConfig {
        subgraph_timeout: std::time::Duration::from_millis(200),
        ..EngineConfig::default()
    };
    let engine = world.engine(config).await;
    let started = std::time::Instant::now();
    let response = run(&engine, "{ slow }", json!({})).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(response["data"], json!({ "slow": null }));
    assert_eq!(
        response["errors"][0]["extensions"]["code"],
        "SUBGRAPH_REQUEST_FAILED"
    );
}

#[tokio::test]
async fn introspection_is_answered_from_the_api_schema() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let before = world.total_requests();
    let response = run(
        &engine,
        "{ __type(name: \"Product\") { name fields { name } } __schema { queryType { name } } }",
        json!({}),
    )
    .await;
    assert_eq!(response["data"]["__schema"]["queryType"]["name"], "Query");
    let fields: Vec<&str> = response["data"]["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"shippingEstimate") && fields.contains(&"reviews"),
        "{fields:?}"
    );
    assert!(!response["data"].to_string().contains("join__"));
    assert_eq!(
        world.total_requests(),
        before,
        "introspection calls no subgraph"
    );
    let mixed = run(&engine, "{ __typename product(upc: \"p2\") { name } __type(name: \"Category\") { enumValues { name } } }", json!({})).await;
    assert_eq!(mixed["data"]["__typename"], "Query");
    assert_eq!(mixed["data"]["product"]["name"], "Chocolate cookie");
    assert_eq!(
        mixed["data"]["__type"]["enumValues"],
        json!([{ "name": "CAKE" }, { "name": "COOKIE" }])
    );
}
