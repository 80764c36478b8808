//! Test harness: a fresh Postgres database (or the embedded SQLite stores) for the event store
//! and read models, a Toss test server on port 0, and the payment service wired to both.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventstore::{EventData, EventStore, ExpectedVersion, StreamId};
use payment::payable::Payable;
use payment::payment::{Payment, PaymentEvent};
use payment::toss::{RetryPolicy, Timeouts, TossClient, TossTestServer};
use payment::{PaymentService, payable::PayableOrders};
use projections::ReadModels;
use secrecy::SecretString;

/// The secret key tests use.
pub const SECRET: &str = "test_sk_bloody_sweet_tests";

/// A Toss test server serving on 127.0.0.1:0 until dropped.
pub struct Toss {
    pub base: String,
    pub server: TossTestServer,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Toss {
    pub async fn start(server: TossTestServer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            server,
            _stop: stop,
        }
    }

    /// A client with short timeouts and quick retries.
    pub fn client(&self) -> TossClient {
        TossClient::new(&self.base, SecretString::from(SECRET.to_owned()))
            .unwrap()
            .with_timeouts(Timeouts {
                connect: Duration::from_secs(1),
                request: Duration::from_millis(500),
            })
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
            })
    }
}

pub struct Harness {
    pub store: Arc<dyn EventStore>,
    pub models: ReadModels,
    pub service: PaymentService,
    pub toss: Toss,
    _stores: testkit::stores::Guard,
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_toss(
            TossTestServer::builder()
                .timeout_delay(Duration::from_secs(3))
                .build(),
        )
        .await
    }

    /// On a fresh Postgres database.
    pub async fn with_toss(server: TossTestServer) -> Self {
        Self::on(testkit::stores::postgres().await, server).await
    }

    /// On the embedded stores (SQLite files).
    pub async fn with_toss_on_sqlite(server: TossTestServer) -> Self {
        Self::on(testkit::stores::sqlite().await, server).await
    }

    async fn on(
        (store, models, stores): (Arc<dyn EventStore>, ReadModels, testkit::stores::Guard),
        server: TossTestServer,
    ) -> Self {
        let toss = Toss::start(server).await;
        let service = PaymentService::new(store.clone(), models.clone(), toss.client())
            .await
            .unwrap();
        Self {
            store,
            models,
            service,
            toss,
            _stores: stores,
        }
    }

    /// Appends an order event and feeds the `payable` read model with the order's stream.
    pub async fn order_event(&self, order_id: &str, event: EventData) {
        let stream = StreamId::of("order", order_id).unwrap();
        self.store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
        let recorded = self
            .store
            .read_stream(&stream, eventstore::Direction::Forward, None, 1_000)
            .await
            .unwrap();
        self.models
            .apply_batch(&Payable, &recorded, None)
            .await
            .unwrap();
    }

    /// An order of `customer` awaiting a payment of `amount` for the next hour.
    pub async fn payable_order(&self, customer: &str, amount: i64) -> String {
        self.payable_order_until(customer, amount, Utc::now() + chrono::Duration::hours(1))
            .await
    }

    pub async fn payable_order_until(
        &self,
        customer: &str,
        amount: i64,
        expires_at: DateTime<Utc>,
    ) -> String {
        let order_id = uuid::Uuid::now_v7().to_string();
        self.order_event(
            &order_id,
            payment_requested(&order_id, customer, amount, expires_at),
        )
        .await;
        order_id
    }

    /// An order of `customer` paid in full (`amount`, confirmed at Toss), and its payment key.
    pub async fn paid_order(&self, customer: &str, amount: i64) -> (String, String) {
        let order_id = self.payable_order(customer, amount).await;
        let key = self.mint(&order_id, amount).await;
        self.service
            .confirm(
                Some(&auth::Identity::customer(customer)),
                &order_id,
                &key,
                amount,
            )
            .await
            .unwrap();
        (order_id, key)
    }

    /// A paid order of `customer` and its payment key, whose later requests to the Toss test
    /// server fail as `mode` says.
    pub async fn paid_order_failing(
        &self,
        customer: &str,
        amount: i64,
        mode: payment::toss::FailureMode,
    ) -> (String, String) {
        let (order_id, key) = self.paid_order(customer, amount).await;
        self.toss.server.set_failure(mode, Some(&key));
        (order_id, key)
    }

    /// An order of `customer` awaiting `amount`, and a payment key for it that Toss declines.
    pub async fn declined_order(&self, customer: &str, amount: i64) -> (String, String) {
        let order_id = self.payable_order(customer, amount).await;
        let key = self
            .mint_failing(&order_id, amount, payment::toss::FailureMode::Declined)
            .await;
        (order_id, key)
    }

    /// Mints a payment key for the order, as the widget would.
    pub async fn mint(&self, order_id: &str, amount: i64) -> String {
        payment::toss::server::mint_payment_key(&self.toss.base, order_id, amount)
            .await
            .unwrap()
    }

    /// A payment key for `order_id` whose requests to the Toss test server fail as `mode` says.
    pub async fn mint_failing(
        &self,
        order_id: &str,
        amount: i64,
        mode: payment::toss::FailureMode,
    ) -> String {
        let key = self.mint(order_id, amount).await;
        self.toss.server.set_failure(mode, Some(&key));
        key
    }

    /// The payment stream's events: (type, data).
    pub async fn payment_events(&self, order_id: &str) -> Vec<(String, serde_json::Value)> {
        let stream = StreamId::of("payment", order_id).unwrap();
        self.store
            .read_stream(&stream, eventstore::Direction::Forward, None, 1_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.event_type, e.data))
            .collect()
    }

    /// The payment's state as the aggregate folds it.
    pub async fn payment(&self, order_id: &str) -> Payment {
        let stream = StreamId::of("payment", order_id).unwrap();
        let mut state = Payment::default();
        for recorded in self
            .store
            .read_stream(&stream, eventstore::Direction::Forward, None, 1_000)
            .await
            .unwrap()
        {
            let event: PaymentEvent = recorded.decode().unwrap();
            eventstore::Aggregate::apply(&mut state, &event);
        }
        state
    }

    pub async fn payable(&self) -> PayableOrders {
        PayableOrders::new(self.models.clone()).await.unwrap()
    }
}

pub fn payment_requested(
    order_id: &str,
    customer: &str,
    amount: i64,
    expires_at: DateTime<Utc>,
) -> EventData {
    EventData::json(
        contracts::events::PAYMENT_REQUESTED,
        &contracts::events::PaymentRequested {
            order_id: order_id.to_owned(),
            customer_id: customer.to_owned(),
            amount,
            expires_at,
        },
    )
    .unwrap()
}

/// An order status event shaped like the order subgraph's.
pub fn order_status(event_type: &str, order_id: &str, status: &str) -> EventData {
    EventData::new(
        event_type,
        serde_json::json!({
            "order_id": order_id,
            "status": status,
            "reason": "test",
            "at": Utc::now(),
        }),
    )
}

/// The payment subgraph serving on 127.0.0.1:0 until dropped.
pub struct Subgraph {
    pub url: String,
    pub http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Subgraph {
    pub async fn start(service: PaymentService) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(payment::run(listener, service, async move {
            let _ = stopped.await;
        }));
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            url,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    /// Posts a GraphQL request as `who` (anonymous when `None`); returns the JSON response.
    pub async fn graphql(
        &self,
        who: Option<&auth::Identity>,
        query: &str,
        variables: serde_json::Value,
    ) -> serde_json::Value {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&serde_json::json!({ "query": query, "variables": variables }));
        if let Some(who) = who {
            request = request.header(auth::IDENTITY_HEADER, who.to_header_value());
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    /// Posts a raw body to the Toss webhook; returns status and JSON body.
    pub async fn webhook(&self, body: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}/webhooks/toss", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }
}

/// The first error's `extensions.code` of a GraphQL response.
pub fn error_code(response: &serde_json::Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {response}"))
}
