//! The order, inventory and payment subgraphs each run as their own process
//! (`bloody-sweet order|inventory|payment`), as they are deployed: with the relay and the
//! projections beside them, real Postgres and the real broker, an order goes from placement to
//! PAID across the three; each serves `/healthz`, `/readyz` and `/metrics` and stops cleanly on
//! SIGTERM. And on the embedded defaults a subgraph runs alone, keeping its own read models.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use auth::{IDENTITY_HEADER, Identity};
use serde_json::{Value, json};

/// Longest wait for a process to come up or an order to move.
const WAIT: Duration = Duration::from_secs(90);

/// A `bloody-sweet` process, killed if the test ends before stopping it.
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    fn start(name: &'static str, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bloody-sweet"));
        command
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("KAFKA_BROKERS")
            .env_remove("TOSS_SECRET_KEY")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self { name, child }
    }

    /// Sends SIGTERM and checks that the process exits cleanly, as Kubernetes stops a pod.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "signal {}", self.name);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads with `read` until `done` holds for what it gives; panics with the last value after
/// [`WAIT`].
async fn until<F, Fut>(what: &str, mut read: F, done: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}; last seen: {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free loopback address (bound, then released for the process to take).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Client {
    http: reqwest::Client,
}

impl Client {
    fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// Posts a GraphQL request to a subgraph as `who` (the gateway's identity header).
    async fn graphql(&self, addr: SocketAddr, who: &Identity, query: &str, vars: Value) -> Value {
        let response = self
            .http
            .post(format!("http://{addr}/graphql"))
            .header(IDENTITY_HEADER, who.to_header_value())
            .json(&json!({ "query": query, "variables": vars }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// The status and body of `GET http://{addr}{path}`, or `None` while nothing answers.
    async fn get(&self, addr: SocketAddr, path: &str) -> Option<(u16, String)> {
        let response = self
            .http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Waits until the process at `addr` says it is ready.
    async fn wait_ready(&self, addr: SocketAddr, name: &str) {
        let ready = testkit::eventually(WAIT, || async {
            self.get(addr, "/readyz").await.map(|r| r.0) == Some(200)
        })
        .await;
        assert!(ready, "{name} never became ready at {addr}");
    }

    /// Creates a product as staff; returns its id.
    async fn create_product(&self, inventory: SocketAddr, stock: i64) -> String {
        let body = self
            .graphql(
                inventory,
                &Identity::staff("s-1"),
                "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }",
                json!({ "input": {
                    "name": "Matcha Roll", "price": 7_000, "category": "cake",
                    "initialStock": stock,
                } }),
            )
            .await;
        assert_eq!(body["errors"], Value::Null, "{body}");
        body["data"]["createProduct"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The order's status as its customer reads it.
    async fn order_status(&self, order: SocketAddr, who: &Identity, id: &str) -> Value {
        let body = self
            .graphql(
                order,
                who,
                "query($id: ID!) { order(id: $id) { status } }",
                json!({ "id": id }),
            )
            .await;
        body["data"]["order"]["status"].clone()
    }

    async fn wait_for_status(&self, order: SocketAddr, who: &Identity, id: &str, want: &str) {
        until(
            &format!("order {id} never reached {want}"),
            || self.order_status(order, who, id),
            |status| status == want,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_reaches_paid_across_three_subgraph_processes() {
    let db = testkit::TestDb::new().await;
    let prefix = testkit::unique_name("sp") + ".";
    let (order, inventory, payment, toss) = (free_addr(), free_addr(), free_addr(), free_addr());
    let env = vec![
        ("DATABASE_URL", db.url().to_owned()),
        ("KAFKA_BROKERS", testkit::kafka_brokers()),
        ("KAFKA_TOPIC_PREFIX", prefix),
        ("KAFKA_PARTITIONS", "1".to_owned()),
        ("KAFKA_SESSION_TIMEOUT_MS", "6000".to_owned()),
        // No Toss secret key: the payment process serves the embedded Toss test server.
        ("TOSS_TEST_LISTEN", toss.to_string()),
    ];
    let processes = [
        Process::start("relay", &["relay"], &env),
        Process::start("projections", &["projections", "run"], &env),
        Process::start(
            "inventory",
            &["inventory", "--listen", &inventory.to_string()],
            &env,
        ),
        Process::start("order", &["order", "--listen", &order.to_string()], &env),
        Process::start(
            "payment",
            &["payment", "--listen", &payment.to_string()],
            &env,
        ),
    ];
    let client = Client::new();
    for (addr, name) in [
        (inventory, "inventory"),
        (order, "order"),
        (payment, "payment"),
    ] {
        client.wait_ready(addr, name).await;
        assert_eq!(
            client.get(addr, "/healthz").await.map(|r| r.0),
            Some(200),
            "{name}"
        );
    }

    let product = client.create_product(inventory, 5).await;
    let kim = Identity::customer("kim");
    // The order subgraph prices from the catalog, which the projections process fills.
    let placed = until(
        "placeOrder never succeeded",
        || {
            client.graphql(
                order,
                &kim,
                "mutation($input: PlaceOrderInput!) { placeOrder(input: $input, idempotencyKey: \"k-1\") { id total status } }",
                json!({ "input": { "lines": [{ "productId": product, "quantity": 2 }] } }),
            )
        },
        |placed| placed["errors"].is_null(),
    )
    .await;
    let id = placed["data"]["placeOrder"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(placed["data"]["placeOrder"]["total"], 14_000, "{placed}");
    // The reservation crosses to the inventory process and back over Kafka.
    client
        .wait_for_status(order, &kim, &id, "PAYMENT_PENDING")
        .await;

    let key = payment::toss::server::mint_payment_key(&format!("http://{toss}"), &id, 14_000)
        .await
        .unwrap();
    let body = client
        .graphql(
            payment,
            &kim,
            "mutation($o: ID!, $k: String!) { confirmPayment(orderId: $o, paymentKey: $k, amount: 14000) { status } }",
            json!({ "o": id, "k": key }),
        )
        .await;
    assert_eq!(body["errors"], Value::Null, "{body}");
    assert_eq!(
        body["data"]["confirmPayment"]["status"], "CONFIRMED",
        "{body}"
    );
    client.wait_for_status(order, &kim, &id, "PAID").await;

    // The stock was committed by the inventory process.
    until(
        "stock never showed the sale",
        || {
            client.graphql(
                inventory,
                &kim,
                "query($id: ID!) { product(id: $id) { stockOnHand reserved available } }",
                json!({ "id": product }),
            )
        },
        |body| {
            body["data"]["product"] == json!({ "stockOnHand": 3, "reserved": 0, "available": 3 })
        },
    )
    .await;

    // Each process counts its own work.
    let (status, metrics) = client.get(order, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("saga_steps_total"), "{metrics}");

    for process in processes {
        process.terminate();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgraph_runs_alone_on_the_embedded_defaults() {
    let data = tempfile::tempdir().unwrap();
    let inventory = free_addr();
    let process = Process::start(
        "inventory",
        &["inventory", "--listen", &inventory.to_string()],
        &[(
            "BLOODY_SWEET_DATA_DIR",
            data.path().to_string_lossy().into_owned(),
        )],
    );
    let client = Client::new();
    client.wait_ready(inventory, "inventory").await;
    let product = client.create_product(inventory, 4).await;
    // The catalog is a read model: this process keeps it, from its own SQLite event store.
    let kim = Identity::customer("kim");
    until(
        "the catalog never listed the product",
        || {
            client.graphql(
                inventory,
                &kim,
                "{ products(category: \"cake\") { edges { node { id available } } } }",
                json!({}),
            )
        },
        |body| {
            body["data"]["products"]["edges"]
                == json!([{ "node": { "id": product, "available": 4 } }])
        },
    )
    .await;
    assert!(data.path().join("events.db").exists());
    process.terminate();
}
