//! The subgraph over real HTTP (bound to port 0, served by `run`), on Postgres and SQLite:
//! public queries, federation (`_service`, `_entities`), staff-only mutations with typed errors.

use std::sync::Arc;
use std::time::Duration;

use auth::{IDENTITY_HEADER, Identity};
use eventstore::{EventStore, StreamId};
use inventory::{InventoryState, ProductCatalog};
use projections::ReadModels;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use testkit::stores::{postgres, sqlite};

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, models, _guard) = super::postgres().await;
                    let server = super::TestServer::start(store, models).await;
                    super::$case(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, models, _guard) = super::sqlite().await;
                    let server = super::TestServer::start(store, models).await;
                    super::$case(&server).await;
                    server.stop().await;
                }
            )*
        }
    };
}

on_both!(
    anyone_can_browse_products_page_by_page,
    federation_exposes_the_product_entity,
    staff_mutations_return_their_own_write,
    only_staff_may_change_the_catalog,
    bad_input_is_refused_with_the_field_and_nothing_is_written,
    every_error_has_a_code,
);

/// The subgraph on a random port, its projection following the event store.
struct TestServer {
    url: String,
    client: reqwest::Client,
    store: Arc<dyn EventStore>,
    stop_server: oneshot::Sender<()>,
    stop_projection: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn start(store: Arc<dyn EventStore>, models: ReadModels) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let state = InventoryState::new(store.clone(), models.clone())
            .await
            .unwrap();
        let (stop_projection, stopped) = oneshot::channel::<()>();
        let projection_store = store.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            projections::run_from_store(
                models,
                Arc::new(ProductCatalog),
                projection_store,
                shutdown,
            )
            .await
            .expect("projection runs");
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/graphql", listener.local_addr().unwrap());
        let (stop_server, stop) = oneshot::channel::<()>();
        let served = tokio::spawn(inventory::run(listener, state, async {
            let _ = stop.await;
        }));
        Self {
            url,
            client: reqwest::Client::new(),
            store,
            stop_server,
            stop_projection,
            served,
        }
    }

    async fn stop(self) {
        let _ = self.stop_projection.send(());
        let _ = self.stop_server.send(());
        self.served.await.unwrap().unwrap();
    }

    /// Posts a GraphQL request as `identity` and returns the JSON response.
    async fn post(&self, identity: Option<&Identity>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(identity) = identity {
            request = request.header(IDENTITY_HEADER, identity.to_header_value());
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap()
    }

    async fn create(&self, id: &str, name: &str, category: &str, stock: i32) -> Value {
        let body = self
            .post(
                Some(&staff()),
                "mutation($input: CreateProductInput!) { createProduct(input: $input) { id name stockOnHand status } }",
                json!({ "input": {
                    "id": id, "name": name, "price": 6500, "category": category,
                    "description": format!("{name} from the test kitchen"), "initialStock": stock,
                    "imageUrl": format!("https://img.example/{id}.png"),
                }}),
            )
            .await;
        assert_eq!(body["errors"], Value::Null, "{body}");
        body["data"]["createProduct"].clone()
    }

    /// Waits until the public listing shows `n` products.
    async fn wait_for_products(&self, n: usize) {
        let ok = testkit::eventually(Duration::from_secs(20), || async {
            let body = self
                .post(
                    None,
                    "{ products(first: 100) { edges { node { id } } } }",
                    json!({}),
                )
                .await;
            body["data"]["products"]["edges"]
                .as_array()
                .is_some_and(|edges| edges.len() == n)
        })
        .await;
        assert!(ok, "the catalog never showed {n} products");
    }
}

fn staff() -> Identity {
    Identity::staff("staff-1")
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

async fn anyone_can_browse_products_page_by_page(server: &TestServer) {
    server.create("p-3", "Tiramisu", "cake", 4).await;
    server.create("p-1", "Canele", "pastry", 2).await;
    server.create("p-2", "Madeleine", "pastry", 0).await;
    server.wait_for_products(3).await;
    let query = "query($after: String) {
        products(first: 2, after: $after) {
            edges { cursor node { id name price category imageUrl stockOnHand reserved available status } }
            pageInfo { hasNextPage endCursor }
        }
    }";
    let first = server.post(None, query, json!({})).await;
    let page = &first["data"]["products"];
    assert_eq!(page["edges"][0]["node"]["name"], "Canele");
    assert_eq!(page["edges"][1]["node"]["name"], "Madeleine");
    assert_eq!(page["edges"][1]["node"]["status"], "SOLD_OUT");
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        page["edges"][0]["node"]["imageUrl"],
        "https://img.example/p-1.png"
    );
    let after = page["pageInfo"]["endCursor"].clone();
    assert_eq!(page["edges"][1]["cursor"], after);
    let second = server.post(None, query, json!({ "after": after })).await;
    let page = &second["data"]["products"];
    assert_eq!(
        page["edges"][0]["node"],
        json!({
            "id": "p-3", "name": "Tiramisu", "price": 6500, "category": "cake",
            "imageUrl": "https://img.example/p-3.png", "stockOnHand": 4, "reserved": 0,
            "available": 4, "status": "ON_SALE",
        })
    );
    assert_eq!(page["pageInfo"]["hasNextPage"], false);

    let on_sale = server
        .post(
            None,
            r#"{ products(category: "pastry", onSale: true) { edges { node { id } } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        on_sale["data"]["products"]["edges"],
        json!([{ "node": { "id": "p-1" } }])
    );
    let one = server
        .post(
            None,
            r#"{ product(id: "p-2") { name } none: product(id: "p-9") { name } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        one["data"],
        json!({ "product": { "name": "Madeleine" }, "none": null })
    );
}

async fn federation_exposes_the_product_entity(server: &TestServer) {
    let sdl = server.post(None, "{ _service { sdl } }", json!({})).await;
    let sdl = sdl["data"]["_service"]["sdl"].as_str().unwrap().to_owned();
    assert!(sdl.contains(r#"type Product @key(fields: "id")"#), "{sdl}");
    assert!(
        sdl.contains("https://specs.apollo.dev/federation/v2"),
        "{sdl}"
    );
    assert_eq!(sdl.trim_end(), inventory::sdl().trim_end());

    server.create("p-1", "Canele", "pastry", 2).await;
    server.create("p-2", "Madeleine", "pastry", 1).await;
    server.wait_for_products(2).await;
    let body = server
        .post(
            None,
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id name available } } }",
            json!({ "r": [
                { "__typename": "Product", "id": "p-2" },
                { "__typename": "Product", "id": "p-404" },
                { "__typename": "Product", "id": "p-1" },
            ]}),
        )
        .await;
    assert_eq!(body["errors"], Value::Null, "{body}");
    assert_eq!(
        body["data"]["_entities"],
        json!([
            { "id": "p-2", "name": "Madeleine", "available": 1 },
            null,
            { "id": "p-1", "name": "Canele", "available": 2 },
        ])
    );
}

async fn staff_mutations_return_their_own_write(server: &TestServer) {
    let created = server.create("p-1", "Canele", "pastry", 2).await;
    assert_eq!(
        created,
        json!({ "id": "p-1", "name": "Canele", "stockOnHand": 2, "status": "ON_SALE" })
    );
    let me = staff();
    let body = server
        .post(
            Some(&me),
            r#"mutation { changePrice(id: "p-1", price: 7000) { price } restock(id: "p-1", quantity: 8) { stockOnHand available } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({ "changePrice": { "price": 7000 }, "restock": { "stockOnHand": 10, "available": 10 } })
    );
    // With an idempotency key, a restock asked again (after a lost answer) adds its units once.
    let keyed = r#"mutation { restock(id: "p-1", quantity: 5, idempotencyKey: "delivery-7") { stockOnHand } }"#;
    for _ in 0..2 {
        let body = server.post(Some(&me), keyed, json!({})).await;
        assert_eq!(body["data"]["restock"]["stockOnHand"], 15, "{body}");
    }
    let body = server
        .post(
            Some(&me),
            r#"mutation { discontinue(id: "p-1") { status } }"#,
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["discontinue"]["status"], "DISCONTINUED");
    let body = server
        .post(
            Some(&me),
            r#"mutation { restock(id: "p-1", quantity: 1) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "NOT_ON_SALE", "{body}");
    let body = server
        .post(
            Some(&me),
            r#"mutation { discontinue(id: "nope") { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert_eq!(body["errors"][0]["message"], "product nope does not exist");

    // Creating again with the same id and details is a safe retry (even after the price
    // changed); other details conflict.
    let again = server.create("p-1", "Canele", "pastry", 0).await;
    assert_eq!(again["stockOnHand"], 15);
    let body = server
        .post(
            Some(&me),
            r#"mutation { createProduct(input: { id: "p-1", name: "Other", price: 1, category: "x" }) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "ALREADY_EXISTS", "{body}");
}

async fn only_staff_may_change_the_catalog(server: &TestServer) {
    let mutation = r#"mutation { createProduct(input: { id: "p-1", name: "Canele", price: 3000, category: "pastry" }) { id } }"#;
    let body = server
        .post(Some(&Identity::customer("c-1")), mutation, json!({}))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(body["data"], Value::Null);
    let body = server.post(None, mutation, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let malformed = server
        .client
        .post(&server.url)
        .header(IDENTITY_HEADER, "not-an-identity")
        .json(&json!({ "query": mutation }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(code(&malformed), "UNAUTHENTICATED", "{malformed}");
    let admin = Identity {
        groups: vec![auth::Group::Admins],
        ..Identity::customer("a-1")
    };
    let body = server.post(Some(&admin), mutation, json!({})).await;
    assert_eq!(body["data"]["createProduct"]["id"], "p-1", "{body}");
}

async fn bad_input_is_refused_with_the_field_and_nothing_is_written(server: &TestServer) {
    let me = staff();
    for (price, message) in [
        (0, "invalid price: must be 1..=10000000 KRW, got 0"),
        (
            10_000_001,
            "invalid price: must be 1..=10000000 KRW, got 10000001",
        ),
    ] {
        let body = server
            .post(
                Some(&me),
                "mutation($price: Int!) { createProduct(input: { id: \"p-1\", name: \"Canele\", price: $price, category: \"pastry\" }) { id } }",
                json!({ "price": price }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "price");
        assert_eq!(body["errors"][0]["message"], message);
    }
    let body = server
        .post(
            Some(&me),
            r#"mutation { createProduct(input: { id: "p-1", name: "Canele", price: 100, category: "pastry", imageUrl: "javascript:alert(1)" }) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "imageUrl",
        "{body}"
    );
    let body = server
        .post(
            Some(&me),
            r#"mutation { createProduct(input: { id: "../p", name: "Canele", price: 100, category: "pastry" }) { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "id", "{body}");
    let stream = StreamId::parse("inventory-product:p-1").unwrap();
    assert_eq!(server.store.stream_version(&stream).await.unwrap(), 0);

    server.create("p-2", "Madeleine", "pastry", 1).await;
    for (mutation, field) in [
        (
            r#"mutation { restock(id: "p-2", quantity: 0) { id } }"#,
            "quantity",
        ),
        (
            r#"mutation { restock(id: "p-2", quantity: 10001) { id } }"#,
            "quantity",
        ),
        (
            r#"mutation { changePrice(id: "p-2", price: -1) { id } }"#,
            "price",
        ),
        (
            r#"mutation { restock(id: "p-2", quantity: 1, idempotencyKey: " ") { id } }"#,
            "idempotencyKey",
        ),
        (
            r#"mutation { restock(id: "p-2", quantity: 1, idempotencyKey: "배송-1") { id } }"#,
            "idempotencyKey",
        ),
    ] {
        let body = server.post(Some(&me), mutation, json!({})).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let stream = StreamId::parse("inventory-product:p-2").unwrap();
    assert_eq!(server.store.stream_version(&stream).await.unwrap(), 2);
}

async fn every_error_has_a_code(server: &TestServer) {
    for (query, expected) in [
        (
            "{ products(first: 0) { edges { cursor } } }",
            "BAD_USER_INPUT",
        ),
        (
            r#"{ products(after: "forged") { edges { cursor } } }"#,
            "BAD_USER_INPUT",
        ),
        (r#"{ product(id: "a b") { id } }"#, "BAD_USER_INPUT"),
        ("{ products { nope } }", "GRAPHQL_VALIDATION_FAILED"),
        (
            "{ products(first: \"x\") { edges { cursor } } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("{ products {", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let body = server.post(None, query, json!({})).await;
        assert_eq!(code(&body), expected, "{query}: {body}");
    }
    let response = server
        .client
        .post(&server.url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "BAD_REQUEST", "{body}");
}
