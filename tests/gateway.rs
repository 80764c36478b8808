//! The gateway over the real ordering stack (order, inventory and payment subgraphs on
//! Postgres and the Kafka-protocol broker), with tokens from the dev issuer: a customer
//! places, pays and reads an order across subgraphs, another customer is denied, and
//! `orderUpdated` arrives over the gateway's WebSocket.

use std::time::Duration;

use auth::{Group, MintRequest};
use bloody_sweet::platform::Platform;
use bloody_sweet::settings::Settings;
use bloody_sweet::stack::LocalStack;
use eventstore::Metadata;
use futures::{SinkExt as _, StreamExt as _};
use inventory::NewProduct;
use order::SagaConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        self.http
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

const ORDER: &str = "query ($id: ID!) { order(id: $id) { id status total \
    lines { quantity product { id name price } } payment { status amount } } }";

/// The ordering stack with a product, the dev issuer, and the gateway over the subgraphs.
struct Harness {
    stack: LocalStack,
    issuer: auth::DevIssuer,
    client: Client,
    addr: std::net::SocketAddr,
    product_id: String,
    _db: testkit::TestDb,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stack.shutdown.cancel();
    }
}

async fn harness() -> Harness {
    testkit::init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = testkit::TestDb::new().await;
    let prefix = testkit::unique_name("gw") + ".";
    let url = db.url().to_owned();
    let settings = Settings::load_from(None, |name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "KAFKA_BROKERS" => Some(testkit::kafka_brokers()),
        "KAFKA_TOPIC_PREFIX" => Some(prefix.clone()),
        "KAFKA_PARTITIONS" => Some("3".into()),
        "KAFKA_SESSION_TIMEOUT_MS" => Some("6000".into()),
        // The gateway signs the identity it passes on; the subgraphs take no other.
        "IDENTITY_SECRET" => Some("a secret the gateway and subgraphs share".into()),
        _ => None,
    })
    .unwrap();
    let signer = settings.identity_signer();
    assert!(signer.is_some());
    let platform = Platform::connect(settings).await.unwrap();
    let saga = SagaConfig {
        tick: Duration::from_millis(200),
        ..SagaConfig::default()
    };
    let stack = LocalStack::start(platform, saga).await.unwrap();
    let shutdown = stack.shutdown.clone();

    // A product on the menu.
    let product = stack
        .ordering
        .inventory
        .inventory
        .create_product(
            None,
            NewProduct {
                name: "Gateway gateau".into(),
                description: "layered".into(),
                price: 12_000,
                category: "cake".into(),
                image_url: None,
                initial_stock: 5,
            },
            Metadata::new(),
        )
        .await
        .unwrap();
    let product_id = product.id().map(ToString::to_string).unwrap();
    let catalog = stack.ordering.inventory.catalog.clone();
    assert!(
        testkit::eventually(Duration::from_secs(20), || {
            let (catalog, id) = (catalog.clone(), product_id.clone());
            async move { catalog.get(&id).await.ok().flatten().is_some() }
        })
        .await
    );

    // The dev issuer and the gateway composed over the three subgraphs.
    let issuer_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = auth::DevIssuer::start(issuer_listener, "gw-test")
        .await
        .unwrap();
    let [order_addr, inventory_addr, payment_addr] = stack.subgraph_addrs;
    let mut config = gateway::GatewayConfig::new(gateway::SupergraphSource::Compose(
        bloody_sweet::edge::ordering_subgraphs(order_addr, inventory_addr, payment_addr),
    ));
    config.cognito = Some(issuer.config());
    config.graphiql = None;
    config.identity_signer = signer;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway::serve(config, listener, shutdown.clone()));
    let client = Client {
        http: reqwest::Client::new(),
        url: format!("http://{addr}/graphql"),
    };
    let ready = testkit::eventually(Duration::from_secs(30), || {
        let (http, url) = (client.http.clone(), format!("http://{addr}/readyz"));
        async move {
            http.get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    assert!(ready, "the gateway composed the ordering subgraphs");

    Harness {
        stack,
        issuer,
        client,
        addr,
        product_id,
        _db: db,
    }
}

/// Places an order of two as `alice`, waits for PAYMENT_PENDING and pays it through the
/// gateway, calling `between` after placing; returns the order id.
async fn place_and_pay<F: std::future::Future<Output = ()>>(
    h: &Harness,
    alice: &str,
    between: impl FnOnce(String) -> F,
) -> String {
    let (client, product_id, stack) = (&h.client, &h.product_id, &h.stack);
    let alice = alice.to_owned();
    // Alice places an order.
    let placed = client
        .graphql(
            &alice,
            "mutation ($input: PlaceOrderInput!, $key: String!) { \
             placeOrder(input: $input, idempotencyKey: $key) { id total status } }",
            json!({
                "input": { "lines": [{ "productId": product_id, "quantity": 2 }] },
                "key": uuid::Uuid::new_v4().to_string(),
            }),
        )
        .await;
    let order_id = placed["data"]["placeOrder"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("placed: {placed}"))
        .to_owned();
    assert_eq!(placed["data"]["placeOrder"]["total"], 24_000);

    between(order_id.clone()).await;
    // The saga reserves stock and waits for payment.
    let pending = testkit::eventually(Duration::from_secs(60), || async {
        let order = client
            .graphql(&alice, ORDER, json!({ "id": order_id }))
            .await;
        order["data"]["order"]["status"] == "PAYMENT_PENDING"
    })
    .await;
    assert!(pending, "the order reached PAYMENT_PENDING");
    let key = stack.toss.mint(&order_id, 24_000);
    let paid = client
        .graphql(
            &alice,
            "mutation ($id: ID!, $key: String!) { confirmPayment(orderId: $id, paymentKey: $key, amount: 24000) { status amount } }",
            json!({ "id": order_id, "key": key }),
        )
        .await;
    assert_eq!(paid["data"]["confirmPayment"]["amount"], 24_000, "{paid}");

    order_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn customers_order_through_the_gateway() {
    let h = harness().await;
    let client = &h.client;
    let alice = h
        .issuer
        .mint(&MintRequest::access("alice", &[Group::Customers]))
        .unwrap();
    let bob = h
        .issuer
        .mint(&MintRequest::access("bob", &[Group::Customers]))
        .unwrap();
    let order_id = place_and_pay(&h, &alice, |_| async {}).await;

    // Read across subgraphs: order, its product entity (inventory), its payment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let order = loop {
        let order = client
            .graphql(&alice, ORDER, json!({ "id": order_id }))
            .await;
        if order["data"]["order"]["status"] == "PAID" || tokio::time::Instant::now() > deadline {
            break order;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let settled = order["data"]["order"]["status"] == "PAID";
    assert!(settled, "the order was paid: {order}");
    let read = &order["data"]["order"];
    assert_eq!(
        read["lines"][0]["product"]["name"], "Gateway gateau",
        "{order}"
    );
    assert_eq!(read["lines"][0]["product"]["price"], 12_000);
    assert_eq!(read["payment"]["amount"], 24_000, "{order}");
    assert!(order.get("errors").is_none(), "{order}");

    // Bob may not read Alice's order; the subgraph's refusal comes through.
    let denied = client.graphql(&bob, ORDER, json!({ "id": order_id })).await;
    assert!(
        denied["data"].is_null() || denied["data"]["order"].is_null(),
        "{denied}"
    );
    let code = denied["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default();
    assert!(["FORBIDDEN", "NOT_FOUND"].contains(&code), "{denied}");

    // Around the gateway, claiming to be staff in the identity header gets nowhere: the
    // subgraphs take only identities the gateway signed.
    let [order_addr, _, payment_addr] = h.stack.subgraph_addrs;
    let forged = auth::Identity::staff("mallory").to_header_value();
    for (addr, query) in [
        (order_addr, "{ orders(first: 5) { edges { node { id } } } }"),
        (payment_addr, "{ __typename }"),
    ] {
        let answer = reqwest::Client::new()
            .post(format!("http://{addr}/graphql"))
            .header(auth::IDENTITY_HEADER, &forged)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "{addr}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_updates_arrive_over_the_gateway_websocket() {
    let h = harness().await;
    let addr = h.addr;
    let alice = h
        .issuer
        .mint(&MintRequest::access("alice", &[Group::Customers]))
        .unwrap();
    let alice_ws = alice.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let order_id = place_and_pay(&h, &alice, |order_id| async move {
        let alice = alice_ws;
    // She follows it over the gateway's WebSocket.
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |value: Value| Message::Text(value.to_string().into());
    ws.send(send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {alice}") } })))
        .await
        .unwrap();
    ws.send(send(json!({ "type": "subscribe", "id": "u", "payload": {
        "query": "subscription ($id: ID!) { orderUpdated(orderId: $id) { id status } }",
        "variables": { "id": order_id },
    } })))
    .await
    .unwrap();

        let _ = tx.send(ws);
    })
    .await;
    let mut ws = rx.await.unwrap();
    let _ = order_id;
    // Alice's subscription saw the order move to PAID.
    let mut statuses = Vec::new();
    let followed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == "next" {
                let status = value["payload"]["data"]["orderUpdated"]["status"].clone();
                statuses.push(status.clone());
                if status == "PAID" {
                    return true;
                }
            } else if value["type"] != "connection_ack" {
                panic!("unexpected message {value}");
            }
        }
        false
    })
    .await;
    assert_eq!(followed, Ok(true), "statuses seen: {statuses:?}");
}
