//! The ordering flow end to end, against real Postgres, the real Kafka-protocol broker and the
//! Toss test server over HTTP: order → stock reservation → payment → paid, and every way it
//! can go wrong.

use std::sync::Arc;
use std::time::Duration;

use auth::Identity;
use bloody_sweet::ordering::Ordering;
use bloody_sweet::platform::Platform;
use bloody_sweet::settings::Settings;
use bloody_sweet::stack::LocalStack;
use eventstore::Metadata;
use inventory::{NewProduct, ProductId};
use order::{OrderStatus, SagaConfig};
use payment::toss::ledger::FailureMode;
use payment::toss::server::TossTestServer;
use tokio_util::sync::CancellationToken;

struct Harness {
    ordering: Ordering,
    saga: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    toss: TossTestServer,
    toss_url: String,
    payment_addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    platform: Platform,
    _db: Option<testkit::TestDb>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn harness(payment_timeout: chrono::Duration) -> Harness {
    testkit::init_logs();
    let db = testkit::TestDb::new().await;
    let prefix = testkit::unique_name("o") + ".";
    let url = db.url().to_owned();
    let settings = Settings::load_from(None, |name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "KAFKA_BROKERS" => Some(testkit::kafka_brokers()),
        "KAFKA_TOPIC_PREFIX" => Some(prefix.clone()),
        "KAFKA_PARTITIONS" => Some("3".into()),
        "KAFKA_SESSION_TIMEOUT_MS" => Some("6000".into()),
        _ => None,
    })
    .unwrap();
    start(settings, payment_timeout, Some(db), None).await
}

/// The same stack on the embedded defaults: SQLite files and the in-process bus, no servers.
async fn embedded_harness(payment_timeout: chrono::Duration) -> Harness {
    testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let settings = Settings::load_from(None, |name| match name {
        "BLOODY_SWEET_DATA_DIR" => Some(data_dir.clone()),
        _ => None,
    })
    .unwrap();
    assert!(settings.database_url().is_none() && settings.kafka_brokers.is_none());
    start(settings, payment_timeout, None, Some(dir)).await
}

async fn start(
    settings: Settings,
    payment_timeout: chrono::Duration,
    db: Option<testkit::TestDb>,
    dir: Option<tempfile::TempDir>,
) -> Harness {
    let platform = Platform::connect(settings).await.unwrap();
    let saga = SagaConfig {
        payment_timeout,
        tick: Duration::from_millis(200),
        resend_after: chrono::Duration::seconds(2),
        refund_retry_after: chrono::Duration::seconds(1),
        ..SagaConfig::default()
    };
    let stack = LocalStack::start(platform, saga).await.unwrap();
    Harness {
        ordering: stack.ordering,
        saga: Some(stack.saga),
        toss: stack.toss,
        toss_url: stack.toss_url,
        payment_addr: stack.subgraph_addrs[2],
        shutdown: stack.shutdown,
        platform: stack.platform,
        _db: db,
        _dir: dir,
    }
}

impl Harness {
    async fn product(&self, name: &str, price: i64, stock: i64) -> String {
        let details = NewProduct {
            name: name.into(),
            description: format!("{name}, baked today"),
            price,
            category: "cake".into(),
            image_url: None,
            initial_stock: stock,
        };
        let product = self
            .ordering
            .inventory
            .inventory
            .create_product(None, details, Metadata::new())
            .await
            .unwrap();
        let id = product.id().map(ToString::to_string).unwrap();
        let catalog = self.ordering.inventory.catalog.clone();
        let visible = testkit::eventually(Duration::from_secs(20), || {
            let (catalog, id) = (catalog.clone(), id.clone());
            async move { catalog.get(&id).await.ok().flatten().is_some() }
        })
        .await;
        assert!(visible, "product reached the catalog read model");
        id
    }

    /// Waits (up to a minute) until `id` has `want` (on hand, reserved); `what` says why.
    async fn wait_stock(&self, id: &str, want: (u32, u32), what: &str) {
        let reached = testkit::eventually(Duration::from_secs(60), || async {
            self.stock(id).await == want
        })
        .await;
        assert!(reached, "{what}: {:?}", self.stock(id).await);
    }

    async fn stock(&self, id: &str) -> (u32, u32) {
        let product = self
            .ordering
            .inventory
            .inventory
            .product(&ProductId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        (product.on_hand(), product.reserved())
    }

    async fn place(&self, who: &Identity, lines: Vec<(String, u32)>) -> order::Order {
        let key = uuid::Uuid::new_v4().to_string();
        self.ordering
            .orders
            .place(Some(who), lines, &key)
            .await
            .unwrap()
    }

    async fn wait_status(&self, who: &Identity, order_id: &str, want: OrderStatus) -> order::Order {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let order = self.ordering.orders.get(Some(who), order_id).await.unwrap();
            if order.status == want {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} is {:?}, waited for {want:?}",
                order.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Confirms as the app would once the Toss widget returned a payment key.
    async fn pay(
        &self,
        who: &Identity,
        order: &order::Order,
        amount: i64,
    ) -> Result<payment::payment::Payment, payment::PaymentError> {
        let key = self.toss.mint(&order.id, order.total);
        self.confirm(who, &order.id, &key, amount).await
    }

    async fn confirm(
        &self,
        who: &Identity,
        order_id: &str,
        key: &str,
        amount: i64,
    ) -> Result<payment::payment::Payment, payment::PaymentError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self
                .ordering
                .payments
                .confirm(Some(who), order_id, key, amount)
                .await
            {
                // The payable read model may lag the order by a moment.
                Err(err)
                    if err.code() == "ORDER_NOT_FOUND"
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }
}

impl Harness {
    /// Places an order of one `product` at `price` KRW as `who`, pays it and waits until it is
    /// PAID; returns it and its payment key.
    async fn paid_order(
        &self,
        who: &Identity,
        product: &str,
        price: i64,
    ) -> (order::Order, String) {
        let order = self.place(who, vec![(product.to_owned(), 1)]).await;
        let order = self
            .wait_status(who, &order.id, OrderStatus::PaymentPending)
            .await;
        let paid = self.pay(who, &order, price).await.unwrap();
        let order = self.wait_status(who, &order.id, OrderStatus::Paid).await;
        (order, paid.payment_key.unwrap())
    }

    /// The payment of `order_id` as its customer `who` sees it (the order must have one).
    async fn payment_of(&self, who: &Identity, order_id: &str) -> payment::payment::Payment {
        self.ordering
            .payments
            .payment(Some(who), order_id)
            .await
            .unwrap()
            .expect("a payment")
    }

    /// Staff accepts, prepares, readies and hands over the paid order `order_id`.
    async fn run_to_completion(&self, staff: &Identity, order_id: &str) {
        self.make_ready(staff, order_id).await;
        self.ordering
            .orders
            .staff_step(Some(staff), order_id, order::service::StaffStep::Complete)
            .await
            .unwrap();
    }

    /// Staff accept, prepare and ready a paid order.
    async fn make_ready(&self, staff: &Identity, order_id: &str) {
        for step in [
            order::service::StaffStep::Accept,
            order::service::StaffStep::StartPreparing,
            order::service::StaffStep::MarkReady,
        ] {
            self.ordering
                .orders
                .staff_step(Some(staff), order_id, step)
                .await
                .unwrap();
        }
    }

    /// Cancels all of `payment_key` in the Toss console (straight at the Toss test server), and
    /// Toss sends its status webhook to the payment subgraph.
    async fn cancel_at_toss(&self, payment_key: &str, order_id: &str) {
        let console = payment::toss::client::TossClient::new(
            &self.toss_url,
            "test_sk_console".to_owned().into(),
        )
        .unwrap();
        console
            .cancel(payment_key, "customer called", None, "console-cancel")
            .await
            .unwrap();
        let webhook = serde_json::json!({
            "eventType": "PAYMENT_STATUS_CHANGED",
            "createdAt": "2026-11-29T12:00:00.000000",
            "data": { "paymentKey": payment_key, "orderId": order_id, "status": "CANCELED" },
        });
        let answer = reqwest::Client::new()
            .post(format!("http://{}/webhooks/toss", self.payment_addr))
            .json(&webhook)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["status"], "recorded", "{body}");
    }
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_reaches_paid_and_sells_the_stock() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Strawberry Cake", 6_500, 10).await;
    let kim = Identity::customer("kim");
    let order = h.place(&kim, vec![(cake.clone(), 2)]).await;
    assert_eq!(order.total, 13_000);
    let order = h
        .wait_status(&kim, &order.id, OrderStatus::PaymentPending)
        .await;
    assert_eq!(h.stock(&cake).await, (10, 2));
    let paid = h.pay(&kim, &order, 13_000).await.unwrap();
    assert_eq!(paid.amount, 13_000);
    h.wait_status(&kim, &order.id, OrderStatus::Paid).await;
    h.wait_stock(&cake, (8, 0), "stock committed").await;
    // Staff runs it to completion.
    let staff = Identity::staff("lee");
    h.run_to_completion(&staff, &order.id).await;
    h.wait_status(&kim, &order.id, OrderStatus::Completed).await;
    assert_eq!(h.toss.stats().confirmed, 1);
    // Whoever created a topic first (relay, projections, saga or a command worker), it has
    // the partitions KAFKA_PARTITIONS asks for. The relay creates `saga.events` when it first
    // publishes there, which may still be under way on a loaded machine.
    let prefix = &h.platform.settings.kafka_topic_prefix;
    let mut topics: Vec<String> = ["order", "payment", "inventory", "saga"]
        .iter()
        .map(|category| relay::topic_for(prefix, category))
        .collect();
    for topic in [
        contracts::SAGA_REPLIES,
        contracts::INVENTORY_COMMANDS,
        contracts::PAYMENT_COMMANDS,
    ] {
        topics.push(format!("{prefix}{topic}"));
    }
    topics.push(format!("{prefix}{}.dlq", contracts::INVENTORY_COMMANDS));
    for topic in &topics {
        let three = testkit::eventually(Duration::from_secs(30), || async {
            h.platform.bus.partitions(topic).await.unwrap() == Some(3)
        })
        .await;
        let partitions = h.platform.bus.partitions(topic).await.unwrap();
        assert!(three, "partitions of {topic}: {partitions:?}");
    }
}

/// `bloody-sweet up` with no servers runs the same saga: SQLite event store and read models,
/// the in-process bus, the Toss test server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_stack_takes_an_order_to_paid_and_a_cancel_to_refunded() {
    paid_then_cancelled_refunds_and_returns_stock(embedded_harness(minutes(10)).await).await;
}

/// Six in stock, two ordered and paid (sold), then cancelled by the customer: refunded in
/// full, all six back.
async fn paid_then_cancelled_refunds_and_returns_stock(h: Harness) {
    let cake = h.product("Lemon Tart", 4_500, 6).await;
    let kim = Identity::customer("kim");
    let order = h.place(&kim, vec![(cake.clone(), 2)]).await;
    assert_eq!(order.total, 9_000);
    let order = h
        .wait_status(&kim, &order.id, OrderStatus::PaymentPending)
        .await;
    assert_eq!(h.stock(&cake).await, (6, 2));
    let paid = h.pay(&kim, &order, 9_000).await.unwrap();
    let key = paid.payment_key.unwrap();
    h.wait_status(&kim, &order.id, OrderStatus::Paid).await;
    h.wait_stock(&cake, (4, 0), "stock committed").await;
    h.ordering
        .orders
        .cancel(Some(&kim), &order.id, Some("plans changed".into()))
        .await
        .unwrap();
    h.wait_status(&kim, &order.id, OrderStatus::Refunded).await;
    h.wait_stock(&cake, (6, 0), "stock back").await;
    let payment = h.payment_of(&kim, &order.id).await;
    assert_eq!(payment.balance, 0, "fully refunded");
    // Toss's own books agree: one cancel, nothing left.
    assert_eq!(h.toss.stats().cancels, 1);
    assert_eq!(h.toss.payment(&key).unwrap().balance_amount, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_is_rejected_with_a_reason() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Chestnut Mont Blanc", 7_000, 1).await;
    let kim = Identity::customer("kim");
    let order = h.place(&kim, vec![(cake.clone(), 2)]).await;
    let order = h.wait_status(&kim, &order.id, OrderStatus::Rejected).await;
    let reason = order
        .timeline
        .last()
        .and_then(|c| c.reason.clone())
        .unwrap();
    assert!(
        reason.contains("only 1 of 'Chestnut Mont Blanc' left, 2 requested"),
        "{reason}"
    );
    assert_eq!(h.stock(&cake).await, (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_card_cancels_and_releases_stock() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Earl Grey Roll", 5_000, 5).await;
    let kim = Identity::customer("kim");
    let order = h.place(&kim, vec![(cake.clone(), 3)]).await;
    let order = h
        .wait_status(&kim, &order.id, OrderStatus::PaymentPending)
        .await;
    assert_eq!(h.stock(&cake).await, (5, 3), "held while awaiting payment");
    h.toss.set_failure(FailureMode::Declined, None);
    let err = h.pay(&kim, &order, 15_000).await.unwrap_err();
    assert_eq!(err.code(), "REJECT_CARD_COMPANY");
    h.wait_status(&kim, &order.id, OrderStatus::Cancelled).await;
    h.wait_stock(&cake, (5, 0), "stock released").await;
    let payment = h.payment_of(&kim, &order.id).await;
    assert_eq!(payment.status, payment::payment::PaymentStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_order_expires_and_releases_stock() {
    let h = harness(chrono::Duration::seconds(2)).await;
    let cake = h.product("Matcha Tiramisu", 8_000, 4).await;
    let kim = Identity::customer("kim");
    let order = h.place(&kim, vec![(cake.clone(), 4)]).await;
    h.wait_status(&kim, &order.id, OrderStatus::PaymentPending)
        .await;
    h.wait_status(&kim, &order.id, OrderStatus::Expired).await;
    h.wait_stock(&cake, (4, 0), "stock released").await;
    // Paying an expired order is refused, before Toss is asked.
    let err = h.pay(&kim, &order, 32_000).await.unwrap_err();
    assert_eq!(err.code(), "ORDER_NOT_PAYABLE");
    assert_eq!(h.toss.stats().confirm_requests, 0);
}

/// A saga that cannot be loaded (here: a corrupt event, due long ago) is logged and skipped by
/// the clock; it must not keep other orders from expiring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_saga_does_not_stop_other_orders_expiring() {
    let h = embedded_harness(chrono::Duration::seconds(2)).await;
    let broken = uuid::Uuid::new_v4().to_string();
    let stream = eventstore::StreamId::of("saga", format!("order:{broken}")).unwrap();
    h.platform
        .store
        .append(
            &stream,
            eventstore::ExpectedVersion::NoStream,
            vec![eventstore::EventData::new(
                "SagaAdvanced",
                serde_json::json!({"junk": true}),
            )],
        )
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO saga_index (order_id, phase, deadline, pending, updated_at) \
         VALUES ($1, 'awaiting_payment', '2000-01-01T00:00:00.000000Z', 1, '2000-01-01T00:00:00.000000Z')",
    )
    .bind(&broken)
    .execute(h.platform.read_models.pool())
    .await
    .unwrap();

    let cake = h.product("Yuzu Madeleine", 3_000, 2).await;
    let kim = Identity::customer("kim");
    let order = h.place(&kim, vec![(cake.clone(), 2)]).await;
    h.wait_status(&kim, &order.id, OrderStatus::Expired).await;
    h.wait_stock(&cake, (2, 0), "stock released").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_amount_charges_nothing_and_duplicate_confirm_charges_once() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Basque Cheesecake", 6_000, 5).await;
    let kim = Identity::customer("kim");
    let order = h.place(&kim, vec![(cake, 1)]).await;
    let order = h
        .wait_status(&kim, &order.id, OrderStatus::PaymentPending)
        .await;
    let key = h.toss.mint(&order.id, order.total);
    let err = h.confirm(&kim, &order.id, &key, 100).await.unwrap_err();
    assert_eq!(err.code(), "AMOUNT_MISMATCH");
    assert_eq!(h.toss.stats().confirm_requests, 0, "Toss was never asked");
    let first = h.confirm(&kim, &order.id, &key, 6_000).await.unwrap();
    let again = h.confirm(&kim, &order.id, &key, 6_000).await.unwrap();
    assert_eq!(first.payment_key, again.payment_key);
    assert_eq!(h.toss.stats().confirmed, 1, "charged once");
    h.wait_status(&kim, &order.id, OrderStatus::Paid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_cancel_after_payment_refunds_and_returns_stock() {
    paid_then_cancelled_refunds_and_returns_stock(harness(minutes(10)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_reject_after_payment_refunds() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Hojicha Cake", 6_800, 3).await;
    let kim = Identity::customer("kim");
    let staff = Identity::staff("lee");
    let (order, key) = h.paid_order(&kim, &cake, 6_800).await;
    h.ordering
        .orders
        .staff_step(Some(&staff), &order.id, order::service::StaffStep::Accept)
        .await
        .unwrap();
    // A customer can no longer cancel once accepted; staff can reject.
    let err = h
        .ordering
        .orders
        .cancel(Some(&kim), &order.id, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ORDER_STATUS");
    h.ordering
        .orders
        .reject(Some(&staff), &order.id, "oven broke".into())
        .await
        .unwrap();
    h.wait_status(&kim, &order.id, OrderStatus::Refunded).await;
    h.wait_stock(&cake, (3, 0), "stock back").await;
    assert_eq!(h.toss.stats().cancels, 1);
    assert_eq!(h.toss.payment(&key).unwrap().balance_amount, 0);

    // Made, then rejected at pick-up (the wrong cake): refunded, and the cake stays sold.
    let (order, _) = h.paid_order(&kim, &cake, 6_800).await;
    h.make_ready(&staff, &order.id).await;
    h.wait_stock(&cake, (2, 0), "one cake sold").await;
    let rejected = h
        .ordering
        .orders
        .reject(Some(&staff), &order.id, "wrong cake at pick-up".into())
        .await
        .unwrap();
    assert_eq!(rejected.status, OrderStatus::Rejected);
    let refunded = h.wait_status(&kim, &order.id, OrderStatus::Refunded).await;
    assert_eq!(
        refunded.timeline.last().unwrap().reason.as_deref(),
        Some("payment refunded")
    );
    let payment = h.payment_of(&kim, &order.id).await;
    assert_eq!(payment.balance, 0, "all of it returned");
    // Nothing is left waiting (a release sent with the refund would have been answered by
    // now, putting the cake back).
    let saga = h.ordering.orchestrator.saga(&order.id).await.unwrap();
    assert!(saga.pending.is_empty(), "{:?}", saga.pending);
    assert_eq!(h.stock(&cake).await, (2, 0), "the cake stays sold");
    // Handed over is final: staff can no longer reject it.
    let (order, _) = h.paid_order(&kim, &cake, 6_800).await;
    h.run_to_completion(&staff, &order.id).await;
    let err = h
        .ordering
        .orders
        .reject(Some(&staff), &order.id, "too late".into())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ORDER_STATUS");
}

/// A refund Toss refuses for good leaves the order REFUND_FAILED; staff (not the customer)
/// have it tried again, each time as a new request to Toss, until Toss takes it: REFUNDED,
/// the money returned once, the stock back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_retry_a_refund_toss_refused() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Mont Blanc", 8_500, 2).await;
    let kim = Identity::customer("kim");
    let staff = Identity::staff("lee");
    let (order, key) = h.paid_order(&kim, &cake, 8_500).await;
    let refusals = |o: &order::Order| {
        o.timeline
            .iter()
            .filter(|c| c.status == OrderStatus::RefundFailed)
            .count()
    };

    h.toss.set_failure(FailureMode::CancelRefused, Some(&key));
    let orders = &h.ordering.orders;
    // Nothing was refused yet: nothing to retry.
    let err = orders
        .retry_refund(Some(&staff), &order.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ORDER_STATUS");
    orders
        .reject(Some(&staff), &order.id, "out of chestnuts".into())
        .await
        .unwrap();
    let failed = h
        .wait_status(&kim, &order.id, OrderStatus::RefundFailed)
        .await;
    let reason = failed.timeline.last().unwrap().reason.clone().unwrap();
    assert!(reason.contains("NOT_CANCELABLE_PAYMENT"), "{reason}");

    let err = orders
        .retry_refund(Some(&kim), &order.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "a customer cannot retry");
    // Toss still refuses: back to REJECTED while it is tried, then REFUND_FAILED again.
    let retrying = orders.retry_refund(Some(&staff), &order.id).await.unwrap();
    assert_eq!(retrying.status, OrderStatus::Rejected);
    assert_eq!(
        retrying.timeline.last().unwrap().reason.as_deref(),
        Some(order::order::REFUND_RETRIED)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = orders.get(Some(&kim), &order.id).await.unwrap();
        if now.status == OrderStatus::RefundFailed && refusals(&now) == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "refused again: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.toss.stats().cancels, 0);

    // Toss takes the next one.
    h.toss.set_failure(FailureMode::None, Some(&key));
    orders.retry_refund(Some(&staff), &order.id).await.unwrap();
    let refunded = h.wait_status(&kim, &order.id, OrderStatus::Refunded).await;
    assert_eq!(refusals(&refunded), 2);
    assert!(!refunded.paid);
    assert_eq!(h.toss.stats().cancels, 1, "the money went back once");
    assert_eq!(h.toss.payment(&key).unwrap().balance_amount, 0);
    let err = orders
        .retry_refund(Some(&staff), &order.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ORDER_STATUS", "nothing left to retry");
    h.wait_stock(&cake, (2, 0), "stock back").await;
}

/// Toss refusing a refund "for now" (400 `PROVIDER_ERROR`, "try again in a few minutes"):
/// the saga tries again by itself, each time as a new request; once Toss takes it the order
/// is REFUNDED without staff ever seeing a failure. Refused three times, it is left to staff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_toss_refuses_for_now_is_tried_again_by_itself() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Basque Cheesecake", 7_700, 2).await;
    let kim = Identity::customer("kim");
    let staff = Identity::staff("lee");
    let orders = &h.ordering.orders;

    // Refused every time: three tries, then REFUND_FAILED.
    let (order, key) = h.paid_order(&kim, &cake, 7_700).await;
    h.toss.set_failure(FailureMode::ProviderError, Some(&key));
    orders
        .reject(Some(&staff), &order.id, "no more cheese".into())
        .await
        .unwrap();
    let failed = h
        .wait_status(&kim, &order.id, OrderStatus::RefundFailed)
        .await;
    let reason = failed.timeline.last().unwrap().reason.clone().unwrap();
    assert!(reason.contains("PROVIDER_ERROR"), "{reason}");
    // Three asks (a re-sent command, replayed from Toss's idempotency store, is no new ask).
    let stats = h.toss.stats();
    assert_eq!(stats.cancel_requests - stats.replays, 3, "{stats:?}");
    assert_eq!(stats.cancels, 0);

    // Refused once, then Toss recovers: refunded on the next try, never shown as failed.
    let (order, key) = h.paid_order(&kim, &cake, 7_700).await;
    h.toss.set_failure(FailureMode::ProviderError, Some(&key));
    orders.cancel(Some(&kim), &order.id, None).await.unwrap();
    let refused = testkit::eventually(Duration::from_secs(30), || async {
        let stats = h.toss.stats();
        stats.cancel_requests - stats.replays >= 4
    })
    .await;
    assert!(refused, "the refund reached Toss: {:?}", h.toss.stats());
    h.toss.set_failure(FailureMode::None, Some(&key));
    let refunded = h.wait_status(&kim, &order.id, OrderStatus::Refunded).await;
    assert!(
        refunded
            .timeline
            .iter()
            .all(|c| c.status != OrderStatus::RefundFailed),
        "{:?}",
        refunded.timeline
    );
    assert_eq!(h.toss.stats().cancels, 1);
    assert_eq!(h.toss.payment(&key).unwrap().balance_amount, 0);
}

/// Staff refund part of a paid order (a spoilt item): refunded at Toss once per key, and the
/// order stands; rejecting it later refunds what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_refund_part_of_a_payment_then_the_rest() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Opera Cake", 9_000, 3).await;
    let kim = Identity::customer("kim");
    let staff = Identity::staff("lee");
    let (order, key) = h.paid_order(&kim, &cake, 9_000).await;
    let payments = &h.ordering.payments;

    let err = payments
        .refund_partly(Some(&kim), &order.id, 2_000, "spoilt", "r-1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "staff only");
    let err = payments
        .refund_partly(Some(&staff), &order.id, 9_000, "all of it", "r-1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "BAD_USER_INPUT", "all of it is a cancel: {err}");
    let refunded = payments
        .refund_partly(Some(&staff), &order.id, 2_000, "cream spoilt", "r-1")
        .await
        .unwrap();
    assert_eq!(refunded.balance, 7_000);
    assert_eq!(refunded.refunds.len(), 1);
    // Asked again (a retried request): refunded once.
    let again = payments
        .refund_partly(Some(&staff), &order.id, 2_000, "cream spoilt", "r-1")
        .await
        .unwrap();
    assert_eq!(again.balance, 7_000);
    assert_eq!(h.toss.stats().cancels, 1);
    let err = payments
        .refund_partly(Some(&staff), &order.id, 1_000, "again", "r-1")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "BAD_USER_INPUT",
        "a key reused for another amount"
    );
    assert_eq!(h.toss.payment(&key).unwrap().balance_amount, 7_000);

    // The order stands; the shop rejects it after all: the saga refunds what is left.
    let still = h.ordering.orders.get(Some(&kim), &order.id).await.unwrap();
    assert_eq!(still.status, OrderStatus::Paid);
    h.ordering
        .orders
        .reject(Some(&staff), &order.id, "oven broke".into())
        .await
        .unwrap();
    h.wait_status(&kim, &order.id, OrderStatus::Refunded).await;
    assert_eq!(h.toss.payment(&key).unwrap().balance_amount, 0);
    assert_eq!(h.toss.stats().cancels, 2);
    let payment = payments
        .payment(Some(&kim), &order.id)
        .await
        .unwrap()
        .unwrap();
    let amounts: Vec<i64> = payment.refunds.iter().map(|r| r.amount).collect();
    assert_eq!(amounts, [2_000, 7_000]);
}

/// A payment cancelled in the Toss console (Toss's webhook tells the payment subgraph) refunds
/// the order: a paid order's stock goes back; a completed order's units stay sold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_in_the_toss_console_refunds_the_order() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Yuzu Tart", 7_200, 3).await;
    let kim = Identity::customer("kim");
    let staff = Identity::staff("lee");

    let (order, key) = h.paid_order(&kim, &cake, 7_200).await;
    h.cancel_at_toss(&key, &order.id).await;
    let refunded = h.wait_status(&kim, &order.id, OrderStatus::Refunded).await;
    let last = refunded.timeline.last().unwrap();
    assert_eq!(
        last.reason.as_deref(),
        Some("payment cancelled at Toss: customer called")
    );
    h.wait_stock(&cake, (3, 0), "stock back").await;

    // Made and handed over, then refunded at Toss: the tart stays sold.
    let (order, key) = h.paid_order(&kim, &cake, 7_200).await;
    h.run_to_completion(&staff, &order.id).await;
    h.wait_stock(&cake, (2, 0), "one tart sold").await;
    h.cancel_at_toss(&key, &order.id).await;
    h.wait_status(&kim, &order.id, OrderStatus::Refunded).await;
    let payment = h.payment_of(&kim, &order.id).await;
    assert_eq!(payment.balance, 0);
    // The saga's step and the order's REFUNDED are one append: a release would have left the
    // saga compensating.
    assert_eq!(
        h.ordering.orchestrator.phase(&order.id).await.unwrap(),
        order::Phase::Confirmed,
        "no release sent"
    );
    assert_eq!(h.stock(&cake).await, (2, 0), "the tart stays sold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_cannot_read_each_others_orders() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Pistachio Cake", 7_500, 3).await;
    let kim = Identity::customer("kim");
    let park = Identity::customer("park");
    let order = h.place(&kim, vec![(cake, 1)]).await;
    let err = h
        .ordering
        .orders
        .get(Some(&park), &order.id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
    let err = h.ordering.orders.get(None, &order.id).await.unwrap_err();
    assert_eq!(err.code(), "UNAUTHENTICATED");
    assert!(
        h.ordering
            .orders
            .get(Some(&Identity::staff("lee")), &order.id)
            .await
            .is_ok()
    );
    let err = h
        .ordering
        .orders
        .cancel(Some(&park), &order.id, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_idempotency_key_returns_the_same_order_and_prices_come_from_the_catalog() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Carrot Cake", 5_500, 10).await;
    let kim = Identity::customer("kim");
    let a = h
        .ordering
        .orders
        .place(Some(&kim), vec![(cake.clone(), 1)], "key-1")
        .await
        .unwrap();
    let b = h
        .ordering
        .orders
        .place(Some(&kim), vec![(cake.clone(), 1)], "key-1")
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    // The key reused for other lines (as the IETF Idempotency-Key draft asks): refused, and
    // the first order stands.
    let err = h
        .ordering
        .orders
        .place(Some(&kim), vec![(cake.clone(), 5)], "key-1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "IDEMPOTENCY_KEY_REUSED");
    let a = h.ordering.orders.get(Some(&kim), &a.id).await.unwrap();
    assert_eq!(a.total, 5_500, "the first order stands");
    let err = h
        .ordering
        .orders
        .place(Some(&kim), vec![("no-such-product".into(), 1)], "key-2")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PRODUCT_NOT_AVAILABLE");
    let err = h
        .ordering
        .orders
        .place(Some(&kim), vec![(cake, 100)], "key-3")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_reordered_messages_change_nothing() {
    let h = harness(minutes(10)).await;
    let cake = h.product("Opera Cake", 9_000, 5).await;
    let kim = Identity::customer("kim");
    let order = h.place(&kim, vec![(cake.clone(), 1)]).await;
    let order = h
        .wait_status(&kim, &order.id, OrderStatus::PaymentPending)
        .await;
    // Replay every message the saga received so far, in reverse order, plus a stray reply.
    let replies = format!(
        "{}{}",
        h.platform.settings.kafka_topic_prefix,
        contracts::SAGA_REPLIES
    );
    let stray = contracts::Envelope::new(
        order.id.clone(),
        contracts::SagaReply::StockCommitted {
            reservation_id: order.id.clone(),
        },
    );
    let dup = contracts::Envelope::new(
        order.id.clone(),
        contracts::SagaReply::StockReserved {
            reservation_id: order.id.clone(),
        },
    );
    let records = [stray, dup]
        .iter()
        .map(|e| {
            bus::OutgoingRecord::new(
                replies.clone(),
                order.id.clone(),
                serde_json::to_vec(e).unwrap(),
            )
        })
        .collect();
    h.platform.bus.publish(records).await.unwrap();
    let events = h
        .platform
        .store
        .read_stream(
            &eventstore::StreamId::parse(format!("order-{}", order.id)).unwrap(),
            eventstore::Direction::Forward,
            None,
            100,
        )
        .await
        .unwrap();
    // Redeliver them as a relay restart would, after the originals (newest first, to also
    // scramble their order among themselves).
    let last = events.last().unwrap().position;
    let relayed = testkit::eventually(Duration::from_secs(30), || async {
        h.platform.store.load_checkpoint("relay").await.unwrap() >= Some(last)
    })
    .await;
    assert!(relayed, "the originals were relayed first");
    for event in events.iter().rev() {
        let record = relay::to_record(&h.platform.settings.kafka_topic_prefix, event).unwrap();
        h.platform.bus.publish(vec![record]).await.unwrap();
    }
    // The saga has read every copy (both of its groups caught up with their topics).
    let group = &h.ordering.orchestrator.config().group;
    let order_events = relay::topic_for(&h.platform.settings.kafka_topic_prefix, "order");
    assert!(wait_until_caught_up(&format!("{group}-replies"), &replies).await);
    assert!(wait_until_caught_up(group, &order_events).await);
    let saga = h.ordering.orchestrator.saga(&order.id).await.unwrap();
    assert_eq!(saga.phase, order::Phase::AwaitingPayment, "{saga:?}");
    assert!(
        saga.pending.is_empty(),
        "nothing sent again: {:?}",
        saga.pending
    );
    let now = h.ordering.orders.get(Some(&kim), &order.id).await.unwrap();
    assert_eq!(now.status, OrderStatus::PaymentPending);
    assert_eq!(now.timeline.len(), 3, "no status twice: {:?}", now.timeline);
    assert_eq!(h.stock(&cake).await, (5, 1), "reserved once");
    h.pay(&kim, &order, 9_000).await.unwrap();
    h.wait_status(&kim, &order.id, OrderStatus::Paid).await;
    h.wait_stock(&cake, (4, 0), "sold once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_orders_never_oversell() {
    let h = Arc::new(harness(minutes(10)).await);
    let cake = h.product("Limited Whole Cake", 30_000, 10).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (h, cake) = (h.clone(), cake.clone());
            tokio::spawn(async move {
                let who = Identity::customer(format!("c{i}"));
                let order = h.place(&who, vec![(cake, 1)]).await;
                (who, order.id)
            })
        })
        .collect();
    let mut orders = Vec::new();
    for t in tasks {
        orders.push(t.await.unwrap());
    }
    let mut pending = 0;
    let mut rejected = 0;
    for (who, id) in &orders {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let order = h.ordering.orders.get(Some(who), id).await.unwrap();
            match order.status {
                OrderStatus::PaymentPending => {
                    pending += 1;
                    break;
                }
                OrderStatus::Rejected => {
                    let reason = order
                        .timeline
                        .last()
                        .and_then(|c| c.reason.clone())
                        .unwrap_or_default();
                    assert!(
                        reason.contains("'Limited Whole Cake' is sold out, 1 requested"),
                        "{reason}"
                    );
                    rejected += 1;
                    break;
                }
                _ => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "order {id} stuck at {:?}",
                        order.status
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    assert_eq!((pending, rejected), (10, 190));
    assert_eq!(h.stock(&cake).await, (10, 10));
}

/// Waits until Kafka consumer group `group` has committed, on every partition of `topic`, the
/// end that partition has at that moment, with at least one record on the topic: a member
/// of the group was assigned and at work. (A member killed while its group is still forming
/// leaves tansu 0.6.0 waiting for a departed leader, and the group never assigns again.)
async fn wait_until_caught_up(group: &str, topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", testkit::kafka_brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (consumer, topic) = (Arc::new(consumer), topic.to_owned());
    testkit::eventually(Duration::from_secs(60), || {
        let (consumer, topic) = (consumer.clone(), topic.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let wait = Duration::from_secs(5);
                let Ok(metadata) = consumer.fetch_metadata(Some(&topic), wait) else {
                    return false;
                };
                let partitions: Vec<i32> = metadata
                    .topics()
                    .iter()
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                let mut wanted = TopicPartitionList::new();
                let mut ends = Vec::new();
                for &p in &partitions {
                    let Ok((_, high)) = consumer.fetch_watermarks(&topic, p, wait) else {
                        return false;
                    };
                    ends.push(high);
                    wanted.add_partition(&topic, p);
                }
                let Ok(committed) = consumer.committed_offsets(wanted, wait) else {
                    return false;
                };
                ends.iter().any(|&high| high > 0)
                    && partitions.iter().zip(&ends).all(|(&p, &high)| {
                        high == 0
                            || matches!(
                                committed.find_partition(&topic, p).map(|e| e.offset()),
                                Some(Offset::Offset(at)) if at >= high
                            )
                    })
            })
            .await
            .unwrap()
        }
    })
    .await
}

/// The saga's process (`bloody-sweet order`) killed with SIGKILL between steps — after its
/// first step, with a reserve command unanswered, after a payment moved it on, while
/// compensating — and started again: every order reaches its right final state, and the stock,
/// the recorded payments and Toss's books agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_resumes_after_its_process_is_killed_between_steps() {
    let mut h = harness(minutes(10)).await;
    let cake = h.product("Fig Tart", 6_200, 8).await;
    let kim = Identity::customer("kim");
    // From here on the only saga runner is the one this test kills and restarts.
    let original = h.saga.take().unwrap();
    original.abort();
    let _ = original.await;
    // Each runner is a `bloody-sweet order` process (the order subgraph and its saga runner),
    // killed with SIGKILL: no shutdown path runs, and the next one starts remembering nothing.
    // It shares only the database and the broker with the one the order service places
    // through.
    let config = h.ordering.orchestrator.config().clone();
    let url = h._db.as_ref().unwrap().url().to_owned();
    let prefix = h.platform.settings.kafka_topic_prefix.clone();
    let run_saga = |_: &Harness| OrderProcess::start(&url, &prefix);
    let mut runner = run_saga(&h);
    let saga = h.ordering.orchestrator.clone();
    let relayed_group = config.group.clone();
    let order_events = relay::topic_for(&config.topic_prefix, "order");
    // Waits until the running saga has taken a step for `id` (so its runner joined the
    // replies group and is mid-flow) and its group on the relayed events has caught up (so
    // that group is not still forming), then kills it and starts a new one.
    let kill_after = |id: String, past: order::Phase| {
        let (saga, relayed_group, order_events) =
            (saga.clone(), relayed_group.clone(), order_events.clone());
        async move {
            let reached = testkit::eventually(Duration::from_secs(60), || {
                let (saga, id) = (saga.clone(), id.clone());
                async move {
                    let phase = saga.phase(&id).await.unwrap();
                    phase != order::Phase::New && phase != past
                }
            })
            .await;
            assert!(reached, "saga of {id} moved past {past:?}");
            assert!(
                wait_until_caught_up(&relayed_group, &order_events).await,
                "the saga's group {relayed_group} took the relayed order events"
            );
        }
    };
    // Placing an order starts its saga (Reserving) without the runner; the runner's first step
    // for it is the inventory's reply. A runner is killed only after it took a step, so it has
    // joined its consumer group (see the README on tansu).
    let first = h.place(&kim, vec![(cake.clone(), 1)]).await.id;
    kill_after(first.clone(), order::Phase::Reserving).await;
    // Killed while the second order's reserve command is unanswered: the new runner takes
    // the reply.
    let second = h.place(&kim, vec![(cake.clone(), 1)]).await.id;
    runner.kill();
    runner = run_saga(&h);
    h.wait_status(&kim, &second, OrderStatus::PaymentPending)
        .await;
    let third = h.place(&kim, vec![(cake.clone(), 1)]).await.id;
    let order_ids = vec![first, second, third];
    for (i, id) in order_ids.iter().enumerate() {
        let order = h.wait_status(&kim, id, OrderStatus::PaymentPending).await;
        h.pay(&kim, &order, 6_200).await.unwrap();
        if i == 0 {
            // Killed again once the payment moved the saga on.
            kill_after(id.clone(), order::Phase::AwaitingPayment).await;
            runner.kill();
            runner = run_saga(&h);
        }
    }
    for id in &order_ids {
        h.wait_status(&kim, id, OrderStatus::Paid).await;
    }
    h.wait_stock(&cake, (5, 0), "stock and money agree").await;
    assert_eq!(h.toss.stats().confirmed, 3);

    // Killed while compensating: the first order, paid, is cancelled by its customer; once the
    // saga has sent the release and the refund, its runner dies, and the next one finishes.
    // Toss fails cancels meanwhile, so the refund cannot be done before the kill.
    h.toss.set_failure(FailureMode::InternalError, None);
    let cancelled = order_ids[0].clone();
    h.ordering
        .orders
        .cancel(Some(&kim), &cancelled, None)
        .await
        .unwrap();
    let compensating = testkit::eventually(Duration::from_secs(60), || async {
        saga.phase(&cancelled).await.unwrap() == order::Phase::Compensating
    })
    .await;
    assert!(compensating, "the saga of {cancelled} began compensating");
    runner.kill();
    assert_eq!(
        h.toss.stats().cancels,
        0,
        "killed before the refund was done"
    );
    assert_eq!(
        h.ordering
            .orders
            .get(Some(&kim), &cancelled)
            .await
            .unwrap()
            .status,
        OrderStatus::Cancelled
    );
    h.toss.set_failure(FailureMode::None, None);
    runner = run_saga(&h);
    h.wait_status(&kim, &cancelled, OrderStatus::Refunded).await;
    h.wait_stock(&cake, (6, 0), "the unit went back").await;
    // Refunded once, whoever carried it out, and the money agrees with Toss's books.
    assert_eq!(h.toss.stats().cancels, 1);
    for (id, balance) in order_ids.iter().zip([0, 6_200, 6_200]) {
        let payment = h.payment_of(&kim, id).await;
        assert_eq!(payment.balance, balance, "{id}");
        let key = payment.payment_key.unwrap();
        assert_eq!(
            h.toss.payment(&key).unwrap().balance_amount,
            balance,
            "{id}"
        );
    }
    runner.kill();
}

/// `bloody-sweet order` as a real process on the harness's database and topics (its subgraph
/// on a free port), killed with SIGKILL when asked or dropped.
struct OrderProcess(std::process::Child);

impl OrderProcess {
    fn start(database_url: &str, prefix: &str) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_bloody-sweet"))
            .args(["order", "--listen", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .env("KAFKA_BROKERS", testkit::kafka_brokers())
            .env("KAFKA_TOPIC_PREFIX", prefix)
            .env("KAFKA_PARTITIONS", "3")
            .env("KAFKA_SESSION_TIMEOUT_MS", "6000")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start bloody-sweet order");
        Self(child)
    }

    /// SIGKILL: no shutdown path runs.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OrderProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
