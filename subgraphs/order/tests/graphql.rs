//! The order subgraph over real HTTP and a real WebSocket (bound to port 0, served by
//! `order::server::run`), on Postgres, without the saga: placing with catalog prices and
//! idempotency keys, typed error codes, order lists page by page, federation, and the
//! `orderUpdated` subscription over graphql-transport-ws.

use std::sync::Arc;
use std::time::Duration;

use auth::{IDENTITY_HEADER, Identity};
use eventstore::{EventStore, Metadata, PgEventStore, StreamId};
use futures::{SinkExt, StreamExt};
use inventory::{InventoryState, NewProduct, ProductCatalog};
use order::orders_view::OrdersView;
use order::pricing::PriceBook;
use order::schema::OrderState;
use order::service::{OpenOrderLimit, OrderService};
use order::updates::OrderUpdates;
use projections::{Projection, ReadModels};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

const PLACE: &str = "mutation($input: PlaceOrderInput!, $key: String!) {
    placeOrder(input: $input, idempotencyKey: $key) {
        id customerId total status
        lines { product { id } productName quantity unitPrice subtotal }
        timeline { status reason }
    }
}";

/// How long any single wait (a projection, a WebSocket message) may take.
const WAIT: Duration = Duration::from_secs(20);

type Projecting = tokio::task::JoinHandle<Result<(), projections::ProjectionError>>;

/// The order subgraph on a random port, with the product catalog and orders projections
/// following its own Postgres database.
struct TestServer {
    url: String,
    ws_url: String,
    client: reqwest::Client,
    store: Arc<dyn EventStore>,
    inventory: InventoryState,
    /// The orders as the saga writes them.
    orders: eventstore::Repository<order::Order>,
    stop: watch::Sender<bool>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    projecting: Vec<Projecting>,
    follower: tokio::task::JoinHandle<()>,
    _db: testkit::TestDb,
}

/// Resolves once `stop` is sent (or its sender dropped).
fn stopped(stop: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = stop.subscribe();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

impl TestServer {
    async fn start() -> Self {
        Self::start_with_open_limit(None).await
    }

    /// The server refusing a customer's order past `open_limit` open ones, when given.
    async fn start_with_open_limit(open_limit: Option<u32>) -> Self {
        testkit::init_logs();
        // reqwest builds its TLS config up front, even for plain http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = testkit::TestDb::new().await;
        let store: Arc<dyn EventStore> =
            Arc::new(PgEventStore::connect(db.url(), 8).await.unwrap());
        let models = ReadModels::connect(db.url()).await.unwrap();
        let inventory = InventoryState::new(store.clone(), models.clone())
            .await
            .unwrap();
        let (stop, _) = watch::channel(false);
        let projections: [Arc<dyn Projection>; 2] =
            [Arc::new(ProductCatalog), Arc::new(OrdersView)];
        let projecting = projections
            .into_iter()
            .map(|projection| {
                tokio::spawn(projections::run_from_store(
                    models.clone(),
                    projection,
                    store.clone(),
                    stopped(&stop),
                ))
            })
            .collect();
        let (updates, follower) = OrderUpdates::follow(store.clone()).await.unwrap();
        let mut service = OrderService::new(store.clone(), PriceBook::new(models.pool().clone()));
        if let Some(max) = open_limit {
            service = service.with_open_order_limit(OpenOrderLimit {
                read_models: models.pool().clone(),
                max,
                window: chrono::Duration::minutes(11),
            });
        }
        let state = OrderState {
            service,
            read_models: models.pool().clone(),
            updates,
        };
        let orders = state.service.repository();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let served = tokio::spawn(order::server::run(
            listener,
            order::schema::schema(state),
            stopped(&stop),
        ));
        Self {
            url: format!("http://{address}/graphql"),
            ws_url: format!("ws://{address}/graphql"),
            client: reqwest::Client::new(),
            store,
            inventory,
            orders,
            stop,
            served,
            projecting,
            follower,
            _db: db,
        }
    }

    /// Stops everything and checks that the server and both projections ended cleanly.
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.served.await.unwrap().unwrap();
        for projecting in self.projecting {
            projecting
                .await
                .unwrap()
                .expect("projection ran without failing");
        }
        self.follower.abort();
    }

    /// Creates a product on sale and waits until the catalog read model shows it.
    async fn product(&self, name: &str, price: i64) -> String {
        let details = NewProduct {
            name: name.into(),
            description: format!("{name}, baked today"),
            price,
            category: "cake".into(),
            image_url: None,
            initial_stock: 10,
        };
        let product = self
            .inventory
            .inventory
            .create_product(None, details, Metadata::new())
            .await
            .unwrap();
        let id = product.id().map(ToString::to_string).unwrap();
        let catalog = &self.inventory.catalog;
        let visible = testkit::eventually(WAIT, || async {
            catalog.get(&id).await.ok().flatten().is_some()
        })
        .await;
        assert!(visible, "product {id} never reached the catalog");
        id
    }

    /// Posts a GraphQL request as `identity`; returns the HTTP status and the JSON body.
    async fn post_raw(
        &self,
        identity: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(identity) = identity {
            request = request.header(IDENTITY_HEADER, identity);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Posts a GraphQL request as `identity`, expecting HTTP 200.
    async fn post(&self, identity: Option<&Identity>, query: &str, variables: Value) -> Value {
        let header = identity.map(Identity::to_header_value);
        let (status, body) = self.post_raw(header.as_deref(), query, variables).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Places an order of `quantity` units of each product; returns the order.
    async fn place(&self, who: &Identity, key: &str, lines: &[(&str, i32)]) -> Value {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(id, quantity)| json!({ "productId": id, "quantity": quantity }))
            .collect();
        let body = self
            .post(
                Some(who),
                PLACE,
                json!({ "input": { "lines": lines }, "key": key }),
            )
            .await;
        assert_eq!(body["errors"], Value::Null, "{body}");
        body["data"]["placeOrder"].clone()
    }

    /// Waits until the orders read model holds `n` orders of `status`.
    async fn wait_for_orders(&self, status: &str, n: usize) {
        let query = "query($status: OrderStatus) { orders(status: $status, first: 100) { edges { cursor } } }";
        let ok = testkit::eventually(WAIT, || async {
            let body = self
                .post(Some(&staff()), query, json!({ "status": status }))
                .await;
            body["data"]["orders"]["edges"]
                .as_array()
                .is_some_and(|edges| edges.len() == n)
        })
        .await;
        assert!(ok, "the orders view never showed {n} {status} orders");
    }

    /// Subscribes as `identity` to `orderUpdated { status }` of order `id` (subscription "1");
    /// [`status`] is what each change then looks like.
    async fn follow_status(&self, identity: &Identity, id: &str) -> Ws {
        let mut ws = self.connect(identity).await;
        send(
            &mut ws,
            json!({
                "id": "1",
                "type": "subscribe",
                "payload": {
                    "query": "subscription($id: ID!) { orderUpdated(orderId: $id) { status } }",
                    "variables": { "id": id },
                },
            }),
        )
        .await;
        ws
    }

    /// Opens a graphql-transport-ws connection as `identity` and completes the handshake.
    async fn connect(&self, identity: &Identity) -> Ws {
        let (mut ws, response) = tokio_tungstenite::connect_async(self.ws_request(identity))
            .await
            .unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        send(&mut ws, json!({ "type": "connection_init", "payload": {} })).await;
        assert_eq!(receive(&mut ws).await, json!({ "type": "connection_ack" }));
        ws
    }

    fn ws_request(&self, identity: &Identity) -> tungstenite::handshake::client::Request {
        let mut request = self.ws_url.as_str().into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        headers.insert(
            IDENTITY_HEADER,
            HeaderValue::from_str(&identity.to_header_value()).unwrap(),
        );
        request
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next text message as JSON (pings and pongs skipped).
async fn receive(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

fn staff() -> Identity {
    Identity::staff("lee")
}

/// A change of status `status` on the subscription of [`TestServer::follow_status`].
fn status(status: &str) -> Value {
    json!({ "id": "1", "type": "next", "payload": { "data": { "orderUpdated": { "status": status } } } })
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

fn ids(connection: &Value) -> Vec<&str> {
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_an_order_at_catalog_prices_once_per_idempotency_key() {
    let server = TestServer::start().await;
    let cake = server.product("Strawberry Cake", 6_500).await;
    let tart = server.product("Lemon Tart", 4_200).await;
    let kim = Identity::customer("kim");

    let placed = server
        .place(&kim, "k1", &[(cake.as_str(), 2), (tart.as_str(), 1)])
        .await;
    let id = placed["id"].as_str().unwrap().to_owned();
    assert_eq!(
        placed,
        json!({
            "id": id, "customerId": "kim", "total": 17_200, "status": "PLACED",
            "lines": [
                { "product": { "id": cake }, "productName": "Strawberry Cake", "quantity": 2,
                  "unitPrice": 6_500, "subtotal": 13_000 },
                { "product": { "id": tart }, "productName": "Lemon Tart", "quantity": 1,
                  "unitPrice": 4_200, "subtotal": 4_200 },
            ],
            "timeline": [{ "status": "PLACED", "reason": null }],
        })
    );

    // The same key is the same order, written once; the lines may come in another order.
    let again = server
        .place(&kim, "k1", &[(tart.as_str(), 1), (cake.as_str(), 2)])
        .await;
    assert_eq!(again, placed);
    // Reused for other lines, the key is refused: the first order stands.
    let reused = server
        .post(
            Some(&kim),
            PLACE,
            json!({ "input": { "lines": [{ "productId": cake, "quantity": 2 }] }, "key": "k1" }),
        )
        .await;
    assert_eq!(
        reused["errors"][0]["extensions"]["code"], "IDEMPOTENCY_KEY_REUSED",
        "{reused}"
    );
    let stream = StreamId::parse(format!("order-{id}")).unwrap();
    assert_eq!(server.store.stream_version(&stream).await.unwrap(), 1);
    // Moved on elsewhere (another replica's saga or service, which this one's cache has not
    // seen), the retried key answers the order as stored.
    eventstore::Repository::<order::Order>::new(server.store.clone())
        .execute(
            &id,
            order::OrderCommand::Cancel {
                reason: "changed my mind".into(),
            },
            Metadata::new(),
        )
        .await
        .unwrap();
    let again = server
        .place(&kim, "k1", &[(cake.as_str(), 2), (tart.as_str(), 1)])
        .await;
    assert_eq!(again["status"], "CANCELLED", "{again}");
    // Keys belong to a customer: another customer's "k1" is another order.
    let other = server
        .place(&Identity::customer("park"), "k1", &[(cake.as_str(), 1)])
        .await;
    assert_ne!(other["id"], placed["id"]);
    assert_eq!(other["total"], 6_500);

    // The input has no price field: a client-sent unit price is refused by validation,
    // whether written in the query or sent in variables.
    let with_price = json!([{ "productId": cake, "quantity": 1, "unitPrice": 1 }]);
    for (query, variables) in [
        (
            "mutation($p: ID!) { placeOrder(input: { lines: [{ productId: $p, quantity: 1, unitPrice: 1 }] }, idempotencyKey: \"k2\") { id } }",
            json!({ "p": cake }),
        ),
        (
            PLACE,
            json!({ "input": { "lines": with_price }, "key": "k2" }),
        ),
    ] {
        let body = server.post(Some(&kim), query, variables).await;
        assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(r#"unknown field "unitPrice""#), "{body}");
        assert_eq!(body["data"], Value::Null, "{body}");
    }
    let k2 = OrderService::order_id_for("kim", "k2");
    let stream = StreamId::parse(format!("order-{k2}")).unwrap();
    assert_eq!(server.store.stream_version(&stream).await.unwrap(), 0);

    // Keys are measured in characters: 128 Hangul syllables (384 bytes) are a key, 129
    // characters are not.
    let hangul = "주".repeat(128);
    let placed = server.place(&kim, &hangul, &[(cake.as_str(), 1)]).await;
    assert_eq!(placed["total"], 6_500);
    let body = server
        .post(
            Some(&kim),
            PLACE,
            json!({ "input": { "lines": [{ "productId": cake, "quantity": 1 }] }, "key": "주".repeat(129) }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    server.stop().await;
}

/// A follower of order changes that cannot read the store's head does not start (from the
/// first event ever stored, it would replay them all before any live change).
#[tokio::test]
async fn order_updates_need_the_stores_head_to_start() {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 2).await.unwrap();
    store.pool().close().await;
    assert!(OrderUpdates::follow(Arc::new(store)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_a_code() {
    let server = TestServer::start().await;
    let cake = server.product("Strawberry Cake", 6_500).await;
    let kim = Identity::customer("kim");
    let place = |lines: Value| json!({ "input": { "lines": lines }, "key": "k1" });
    let one_cake = json!([{ "productId": cake, "quantity": 2 }]);

    let body = server.post(None, PLACE, place(one_cake.clone())).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(body["data"], Value::Null);

    // A malformed identity header is refused before GraphQL runs.
    let (status, body) = server
        .post_raw(Some("not-an-identity"), PLACE, place(one_cake.clone()))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");

    for lines in [
        json!([]),
        json!([{ "productId": cake, "quantity": 100 }]),
        json!([{ "productId": cake, "quantity": 0 }]),
        json!([{ "productId": cake, "quantity": -1 }]),
        json!([{ "productId": cake, "quantity": 1 }, { "productId": cake, "quantity": 1 }]),
    ] {
        let body = server.post(Some(&kim), PLACE, place(lines.clone())).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{lines}: {body}");
        assert_eq!(body["data"], Value::Null);
    }
    let body = server
        .post(
            Some(&kim),
            PLACE,
            place(json!([{ "productId": "no-such-cake", "quantity": 1 }])),
        )
        .await;
    assert_eq!(code(&body), "PRODUCT_NOT_AVAILABLE", "{body}");
    // Nothing was written by any refusal.
    let k1 = OrderService::order_id_for("kim", "k1");
    let stream = StreamId::parse(format!("order-{k1}")).unwrap();
    assert_eq!(server.store.stream_version(&stream).await.unwrap(), 0);

    let placed = server.place(&kim, "k1", &[(cake.as_str(), 2)]).await;
    let id = placed["id"].as_str().unwrap();
    let order = "query($id: ID!) { order(id: $id) { id status } }";
    let body = server
        .post(
            Some(&Identity::customer("park")),
            order,
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert_eq!(body["data"], Value::Null);
    for missing in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let body = server
            .post(Some(&kim), order, json!({ "id": missing }))
            .await;
        assert_eq!(code(&body), "NOT_FOUND", "{missing}: {body}");
    }
    for who in [&kim, &staff()] {
        let body = server.post(Some(who), order, json!({ "id": id })).await;
        assert_eq!(
            body,
            json!({ "data": { "order": { "id": id, "status": "PLACED" } } })
        );
    }

    let accept = "mutation($id: ID!) { acceptOrder(id: $id) { status } }";
    let body = server.post(Some(&kim), accept, json!({ "id": id })).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = server
        .post(Some(&staff()), accept, json!({ "id": id }))
        .await;
    assert_eq!(code(&body), "INVALID_ORDER_STATUS", "{body}");
    assert_eq!(body["data"], Value::Null);
    // Staff reject; only the customer cancels.
    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status } }";
    let body = server
        .post(Some(&staff()), cancel, json!({ "id": id }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    // A blank reason is no reason: the timeline says who cancelled.
    let body = server
        .post(
            Some(&kim),
            "mutation($id: ID!) { cancelOrder(id: $id, reason: \"  \") { status timeline { status reason } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        body["data"]["cancelOrder"],
        json!({ "status": "CANCELLED", "timeline": [
            { "status": "PLACED", "reason": null },
            { "status": "CANCELLED", "reason": "cancelled by the customer" },
        ] }),
        "{body}"
    );
    let body = server
        .post(Some(&staff()), accept, json!({ "id": id }))
        .await;
    assert_eq!(code(&body), "INVALID_ORDER_STATUS", "{body}");
    // Only a refund Toss refused can be retried, and only by staff.
    let retry = "mutation($id: ID!) { retryRefund(id: $id) { status } }";
    let body = server.post(Some(&kim), retry, json!({ "id": id })).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = server
        .post(Some(&staff()), retry, json!({ "id": id }))
        .await;
    assert_eq!(code(&body), "INVALID_ORDER_STATUS", "{body}");
    server.stop().await;
}

/// A customer with as many orders awaiting stock or payment as allowed is refused another
/// (so nobody holds back the stock with orders never paid for), while a retried key still
/// answers its order, other customers still order, and a cancel makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_with_too_many_open_orders_is_refused_another() {
    let server = TestServer::start_with_open_limit(Some(2)).await;
    let cake = server.product("Strawberry Cake", 6_500).await;
    let kim = Identity::customer("kim");
    let lines = [(cake.as_str(), 1)];
    let first = server.place(&kim, "k1", &lines).await;
    server.place(&kim, "k2", &lines).await;
    server.wait_for_orders("PLACED", 2).await;

    let third =
        json!({ "input": { "lines": [{ "productId": cake, "quantity": 1 }] }, "key": "k3" });
    let body = server.post(Some(&kim), PLACE, third.clone()).await;
    assert_eq!(code(&body), "TOO_MANY_OPEN_ORDERS", "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    let k3 = OrderService::order_id_for("kim", "k3");
    let stream = StreamId::parse(format!("order-{k3}")).unwrap();
    assert_eq!(server.store.stream_version(&stream).await.unwrap(), 0);

    assert_eq!(
        server.place(&kim, "k1", &lines).await,
        first,
        "a retried key"
    );
    // Also on a replica that has not cached it (another process, a restart).
    let models = ReadModels::connect(server._db.url()).await.unwrap();
    let cold = OrderService::new(server.store.clone(), PriceBook::new(models.pool().clone()))
        .with_open_order_limit(OpenOrderLimit {
            read_models: models.pool().clone(),
            max: 2,
            window: chrono::Duration::minutes(11),
        });
    let again = cold
        .place(Some(&kim), vec![(cake.clone(), 1)], "k2")
        .await
        .unwrap();
    assert_eq!(again.status, order::OrderStatus::Placed);
    let refused = cold
        .place(Some(&kim), vec![(cake.clone(), 1)], "k3")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "TOO_MANY_OPEN_ORDERS");
    server
        .place(&Identity::customer("park"), "k1", &lines)
        .await;

    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status } }";
    let body = server
        .post(Some(&kim), cancel, json!({ "id": first["id"] }))
        .await;
    assert_eq!(body["data"]["cancelOrder"]["status"], "CANCELLED", "{body}");
    server.wait_for_orders("CANCELLED", 1).await;
    let body = server.post(Some(&kim), PLACE, third).await;
    assert_eq!(body["errors"], Value::Null, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_orders_newest_first_page_by_page() {
    let server = TestServer::start().await;
    let cake = server.product("Strawberry Cake", 6_500).await;
    let kim = Identity::customer("kim");
    let park = Identity::customer("park");
    let mut kims = Vec::new();
    for key in ["k1", "k2", "k3"] {
        let placed = server.place(&kim, key, &[(cake.as_str(), 1)]).await;
        kims.push(placed["id"].as_str().unwrap().to_owned());
    }
    let parks = server.place(&park, "k1", &[(cake.as_str(), 3)]).await;
    let parks = parks["id"].as_str().unwrap().to_owned();
    server.wait_for_orders("PLACED", 4).await;

    let mine = "query($after: String) {
        myOrders(first: 2, after: $after) {
            edges { cursor node { id customerId total status } }
            pageInfo { hasNextPage endCursor }
        }
    }";
    let first = server.post(Some(&kim), mine, json!({})).await;
    let page = &first["data"]["myOrders"];
    assert_eq!(ids(page), [kims[2].as_str(), kims[1].as_str()], "{first}");
    assert_eq!(
        page["edges"][0]["node"],
        json!({ "id": kims[2], "customerId": "kim", "total": 6_500, "status": "PLACED" })
    );
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let after = page["pageInfo"]["endCursor"].clone();
    assert_eq!(page["edges"][1]["cursor"], after);
    let second = server
        .post(Some(&kim), mine, json!({ "after": after }))
        .await;
    let page = &second["data"]["myOrders"];
    assert_eq!(ids(page), [kims[0].as_str()], "{second}");
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    let body = server.post(Some(&park), mine, json!({})).await;
    assert_eq!(ids(&body["data"]["myOrders"]), [parks.as_str()], "{body}");

    // Staff see everyone's, by status.
    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status } }";
    let body = server
        .post(Some(&kim), cancel, json!({ "id": kims[1] }))
        .await;
    assert_eq!(body["errors"], Value::Null, "{body}");
    server.wait_for_orders("CANCELLED", 1).await;
    let all = "query($status: OrderStatus) { orders(status: $status) { edges { node { id customerId } } pageInfo { hasNextPage } } }";
    let body = server
        .post(Some(&staff()), all, json!({ "status": "PLACED" }))
        .await;
    let page = &body["data"]["orders"];
    assert_eq!(
        ids(page),
        [parks.as_str(), kims[2].as_str(), kims[0].as_str()],
        "{body}"
    );
    assert_eq!(page["edges"][0]["node"]["customerId"], "park");
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    let body = server
        .post(Some(&staff()), all, json!({ "status": "CANCELLED" }))
        .await;
    assert_eq!(ids(&body["data"]["orders"]), [kims[1].as_str()], "{body}");
    let body = server.post(Some(&staff()), all, json!({})).await;
    assert_eq!(ids(&body["data"]["orders"]).len(), 4, "{body}");

    // Lists have their own refusals.
    let body = server.post(Some(&kim), all, json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = server.post(None, mine, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = server
        .post(
            Some(&kim),
            "{ myOrders(first: 0) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    // A cursor this API did not hand out is refused, not read as "from the start".
    for forged in ["2026-01-01T00:00:00Z|x", "", "e30"] {
        let body = server
            .post(Some(&kim), mine, json!({ "after": forged }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{forged}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "after", "{body}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_exposes_the_order_entity() {
    let server = TestServer::start().await;
    let body = server.post(None, "{ _service { sdl } }", json!({})).await;
    let sdl = body["data"]["_service"]["sdl"].as_str().unwrap();
    assert!(sdl.contains(r#"type Order @key(fields: "id")"#), "{sdl}");
    assert!(
        sdl.contains(r#"type Product @key(fields: "id", resolvable: false)"#),
        "{sdl}"
    );
    assert_eq!(sdl.trim_end(), order::schema::sdl().trim_end());

    let cake = server.product("Strawberry Cake", 6_500).await;
    let kim = Identity::customer("kim");
    let placed = server.place(&kim, "k1", &[(cake.as_str(), 2)]).await;
    let id = placed["id"].as_str().unwrap();
    let entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Order { id total status } } }";
    let representations = json!({ "r": [{ "__typename": "Order", "id": id }] });
    let body = server
        .post(Some(&kim), entities, representations.clone())
        .await;
    assert_eq!(
        body,
        json!({ "data": { "_entities": [{ "id": id, "total": 13_000, "status": "PLACED" }] } })
    );
    let body = server
        .post(Some(&Identity::customer("park")), entities, representations)
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_updated_streams_until_the_order_is_final() {
    let server = TestServer::start().await;
    let cake = server.product("Strawberry Cake", 6_500).await;
    let kim = Identity::customer("kim");
    let placed = server.place(&kim, "k1", &[(cake.as_str(), 2)]).await;
    let id = placed["id"].as_str().unwrap();
    let subscribe = json!({
        "id": "1",
        "type": "subscribe",
        "payload": {
            "query": "subscription($id: ID!) { orderUpdated(orderId: $id) { id status } }",
            "variables": { "id": id },
        },
    });

    let mut ws = server.connect(&kim).await;
    send(&mut ws, subscribe.clone()).await;
    assert_eq!(
        receive(&mut ws).await,
        json!({ "id": "1", "type": "next", "payload": { "data": { "orderUpdated": { "id": id, "status": "PLACED" } } } })
    );
    let body = server
        .post(
            Some(&kim),
            "mutation($id: ID!) { cancelOrder(id: $id, reason: \"changed my mind\") { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["cancelOrder"]["status"], "CANCELLED", "{body}");
    assert_eq!(
        receive(&mut ws).await,
        json!({ "id": "1", "type": "next", "payload": { "data": { "orderUpdated": { "id": id, "status": "CANCELLED" } } } })
    );
    // CANCELLED is final: the server completes the subscription.
    assert_eq!(
        receive(&mut ws).await,
        json!({ "id": "1", "type": "complete" })
    );
    ws.close(None).await.unwrap();

    // Another customer learns nothing about the order.
    let mut ws = server.connect(&Identity::customer("park")).await;
    send(&mut ws, subscribe).await;
    let message = receive(&mut ws).await;
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["payload"]["data"], Value::Null, "{message}");
    assert_eq!(code(&message["payload"]), "NOT_FOUND", "{message}");
    assert_eq!(
        receive(&mut ws).await,
        json!({ "id": "1", "type": "complete" })
    );
    ws.close(None).await.unwrap();

    // A malformed identity is refused at the upgrade.
    let mut request = server.ws_request(&kim);
    request
        .headers_mut()
        .insert(IDENTITY_HEADER, HeaderValue::from_static("not-an-identity"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
        }
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    server.stop().await;
}

/// An order that expires while awaiting payment may still have a payment under way at Toss,
/// which the saga then refunds: its stream goes on past EXPIRED to show the refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_updated_shows_the_refund_of_a_payment_that_came_after_expiry() {
    use order::OrderCommand;
    let server = TestServer::start().await;
    let cake = server.product("Strawberry Cake", 6_500).await;
    let kim = Identity::customer("kim");
    let placed = server.place(&kim, "k1", &[(cake.as_str(), 1)]).await;
    let id = placed["id"].as_str().unwrap();
    let expires_at = chrono::Utc::now() + chrono::Duration::minutes(10);
    let run = |command: OrderCommand| {
        let orders = server.orders.clone();
        async move { orders.execute(id, command, Metadata::new()).await.unwrap() }
    };
    run(OrderCommand::AwaitPayment { expires_at }).await;
    let mut ws = server.follow_status(&kim, id).await;
    assert_eq!(receive(&mut ws).await, status("PAYMENT_PENDING"));
    run(OrderCommand::Expire).await;
    assert_eq!(receive(&mut ws).await, status("EXPIRED"));
    // The payment under way was recorded after all, and the saga refunded it.
    run(OrderCommand::MarkRefunded { amount: 6_500 }).await;
    assert_eq!(receive(&mut ws).await, status("REFUNDED"));
    assert_eq!(
        receive(&mut ws).await,
        json!({ "id": "1", "type": "complete" })
    );
    ws.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_updated_goes_on_to_the_refund_of_a_cancelled_paid_order_even_after_a_failed_one() {
    use order::OrderCommand;
    let server = TestServer::start().await;
    let cake = server.product("Strawberry Cake", 6_500).await;
    let kim = Identity::customer("kim");
    let placed = server.place(&kim, "k1", &[(cake.as_str(), 1)]).await;
    let id = placed["id"].as_str().unwrap();
    // What the saga does once the stock is held and the payment confirmed.
    let expires_at = chrono::Utc::now() + chrono::Duration::minutes(10);
    for command in [
        OrderCommand::AwaitPayment { expires_at },
        OrderCommand::MarkPaid {
            payment_key: "tbs_k1".into(),
        },
    ] {
        server
            .orders
            .execute(id, command, Metadata::new())
            .await
            .unwrap();
    }
    let mut ws = server.follow_status(&kim, id).await;
    assert_eq!(receive(&mut ws).await, status("PAID"));
    let body = server
        .post(
            Some(&kim),
            "mutation($id: ID!) { cancelOrder(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["cancelOrder"]["status"], "CANCELLED", "{body}");
    assert_eq!(receive(&mut ws).await, status("CANCELLED"));
    // Paid and cancelled: the refund is still to come. Toss refuses it at first: staff find
    // the order by that status, and the app hears of it.
    server
        .orders
        .execute(
            id,
            OrderCommand::MarkRefundFailed {
                reason: "NOT_CANCELABLE_PAYMENT: try again later".into(),
            },
            Metadata::new(),
        )
        .await
        .unwrap();
    assert_eq!(receive(&mut ws).await, status("REFUND_FAILED"));
    server.wait_for_orders("REFUND_FAILED", 1).await;
    // Toss's code and message are for staff; the customer is told the shop will see to it.
    let refusal = |body: &Value| {
        body["data"]["order"]["timeline"]
            .as_array()
            .and_then(|t| t.last())
            .map(|c| (c["status"].clone(), c["reason"].clone()))
    };
    let timeline = "query($id: ID!) { order(id: $id) { timeline { status reason } } }";
    let seen = server.post(Some(&kim), timeline, json!({ "id": id })).await;
    assert_eq!(
        refusal(&seen),
        Some((
            json!("REFUND_FAILED"),
            json!(order::schema::REFUND_FAILED_FOR_CUSTOMERS)
        )),
        "{seen}"
    );
    let staff = Identity::staff("lee");
    let seen = server
        .post(Some(&staff), timeline, json!({ "id": id }))
        .await;
    assert_eq!(
        refusal(&seen),
        Some((
            json!("REFUND_FAILED"),
            json!("refund failed: NOT_CANCELABLE_PAYMENT: try again later")
        )),
        "{seen}"
    );
    // Refunded in the end (an operator, or a cancel in the Toss console).
    server
        .orders
        .execute(
            id,
            OrderCommand::MarkRefunded { amount: 6_500 },
            Metadata::new(),
        )
        .await
        .unwrap();
    assert_eq!(receive(&mut ws).await, status("REFUNDED"));
    assert_eq!(
        receive(&mut ws).await,
        json!({ "id": "1", "type": "complete" })
    );
    ws.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_subscriptions_get_a_code_too() {
    let server = TestServer::start().await;
    let kim = Identity::customer("kim");
    let mut ws = server.connect(&kim).await;
    send(
        &mut ws,
        json!({
            "id": "1",
            "type": "subscribe",
            "payload": { "query": "subscription { orderUpdated(orderId: \"x\") { noSuchField } }" },
        }),
    )
    .await;
    let message = receive(&mut ws).await;
    let errors = match message["type"].as_str() {
        // graphql-transport-ws reports validation failures as `error` or as a `next` with errors.
        Some("error") => message["payload"].clone(),
        _ => message["payload"]["errors"].clone(),
    };
    let first = &errors[0];
    assert_eq!(
        first["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{message}"
    );
}
