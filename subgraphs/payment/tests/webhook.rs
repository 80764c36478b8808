//! Toss webhooks over HTTP: the body is never trusted; the payment is re-fetched from Toss and
//! its state recorded once.

mod common;

use std::time::Duration;

use auth::Identity;
use common::{Harness, Subgraph};
use payment::payment::PaymentStatus;
use payment::toss::{FailureMode, TossTestServer};
use serde_json::json;

fn status_changed(data: serde_json::Value) -> String {
    json!({ "eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-11-26T12:00:00.000000", "data": data })
        .to_string()
}

/// The saga's command to refund all of `order` (refund id `saga-refund`).
fn saga_refund(order: &str) -> contracts::Envelope<contracts::PaymentCommand> {
    contracts::Envelope::new(
        order,
        contracts::PaymentCommand::RefundPayment {
            refund_id: "saga-refund".into(),
            amount: None,
            reason: "rejected".into(),
        },
    )
}

#[tokio::test]
async fn a_console_cancel_becomes_one_refund_whatever_the_body_claims() {
    let h = Harness::new().await;
    let subgraph = Subgraph::start(h.service.clone()).await;
    let (order, key) = h.paid_order("c-1", 15_000).await;
    // Someone cancels 5,000 KRW in the Toss console.
    h.toss
        .client()
        .cancel(&key, "customer called", Some(5_000), "console-1")
        .await
        .unwrap();

    // The body lies: fully cancelled, other amounts. Toss's own state wins.
    let lying = status_changed(json!({
        "paymentKey": key, "orderId": order, "status": "CANCELED",
        "totalAmount": 1, "balanceAmount": 0,
        "cancels": [{ "cancelAmount": 15000, "cancelReason": "x", "canceledAt": "2026-11-26T12:00:00+09:00" }]
    }));
    let (status, body) = subgraph.webhook(&lying).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "status": "recorded", "events": 1 }));
    let state = h.payment(&order).await;
    assert_eq!(state.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(state.balance, 10_000);
    assert_eq!(state.refunds.len(), 1);
    assert_eq!(state.refunds[0].amount, 5_000);
    assert_eq!(state.refunds[0].reason, "customer called");

    // Delivered again: recorded once.
    let (status, body) = subgraph.webhook(&lying).await;
    assert_eq!((status, body), (200, json!({ "status": "unchanged" })));
    assert_eq!(h.payment(&order).await.refunds.len(), 1);

    // A later refund through the saga does not count the console cancel twice.
    let reply = h.service.handle(saga_refund(&order)).await.unwrap();
    assert_eq!(
        reply,
        contracts::SagaReply::PaymentRefunded {
            refund_id: "saga-refund".into(),
            amount: 10_000
        }
    );
    let state = h.payment(&order).await;
    assert_eq!(
        (state.status, state.balance, state.refunds.len()),
        (PaymentStatus::Refunded, 0, 2)
    );
}

#[tokio::test]
async fn a_payment_confirmed_at_toss_but_not_recorded_is_recorded_from_the_webhook() {
    let h = Harness::new().await;
    let subgraph = Subgraph::start(h.service.clone()).await;
    let order = h.payable_order("c-1", 12_000).await;
    let key = h.mint(&order, 12_000).await;
    h.toss
        .client()
        .confirm(&key, &order, 12_000, "elsewhere")
        .await
        .unwrap();
    let body = status_changed(json!({ "paymentKey": key, "orderId": order, "status": "DONE" }));
    let (status, answer) = subgraph.webhook(&body).await;
    assert_eq!(
        (status, answer),
        (200, json!({ "status": "recorded", "events": 2 }))
    );
    let events = h.payment_events(&order).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["PaymentRequestReceived", "PaymentConfirmed"]);
}

#[tokio::test]
async fn a_declined_payment_reported_by_webhook_is_recorded_as_failed_once() {
    let h = Harness::new().await;
    let subgraph = Subgraph::start(h.service.clone()).await;
    let order = h.payable_order("c-1", 12_000).await;
    let key = h.mint(&order, 12_000).await;
    h.toss
        .server
        .set_failure(payment::toss::FailureMode::Declined, Some(&key));
    let _ = h.toss.client().confirm(&key, &order, 12_000, "x").await;
    // The body claims DONE; Toss says ABORTED.
    let body = status_changed(json!({ "paymentKey": key, "orderId": order, "status": "DONE" }));
    let (status, _) = subgraph.webhook(&body).await;
    assert_eq!(status, 200);
    let state = h.payment(&order).await;
    assert_eq!(state.status, PaymentStatus::Failed);
    let (_, again) = subgraph.webhook(&body).await;
    assert_eq!(again, json!({ "status": "unchanged" }));
}

#[tokio::test]
async fn foreign_unknown_and_malformed_webhooks() {
    let h = Harness::new().await;
    let subgraph = Subgraph::start(h.service.clone()).await;

    let (status, body) = subgraph
        .webhook(&json!({ "eventType": "DEPOSIT_CALLBACK", "data": {} }).to_string())
        .await;
    assert_eq!((status, body), (200, json!({ "status": "ignored" })));

    for malformed in [
        "not json".to_owned(),
        json!({ "data": {} }).to_string(),
        status_changed(json!({ "orderId": "o" })),
        status_changed(json!({ "paymentKey": "../../v1/test/stats" })),
    ] {
        let (status, _) = subgraph.webhook(&malformed).await;
        assert_eq!(status, 400, "{malformed}");
    }

    let (status, body) = subgraph
        .webhook(&status_changed(
            json!({ "paymentKey": "tbs_unknown", "orderId": "o-1" }),
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ignored");

    // The body names another order than Toss does: ignored.
    let order = h.payable_order("c-1", 1_000).await;
    let key = h.mint(&order, 1_000).await;
    h.toss
        .client()
        .confirm(&key, &order, 1_000, "k")
        .await
        .unwrap();
    let other = h.payable_order("c-1", 1_000).await;
    let (status, body) = subgraph
        .webhook(&status_changed(
            json!({ "paymentKey": key, "orderId": other }),
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ignored");
    assert!(h.payment_events(&other).await.is_empty());
    assert!(h.payment_events(&order).await.is_empty());
}

#[tokio::test]
async fn money_taken_for_a_failed_payment_is_given_back() {
    let h = Harness::new().await;
    let subgraph = Subgraph::start(h.service.clone()).await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 12_000).await;
    let key = h.mint(&order, 12_000).await;
    h.toss
        .server
        .set_failure(payment::toss::FailureMode::Declined, Some(&key));
    let err = h
        .service
        .confirm(Some(&me), &order, &key, 12_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "REJECT_CARD_COMPANY");
    // The same key gets approved later, outside this service.
    h.toss
        .server
        .set_failure(payment::toss::FailureMode::None, None);
    h.toss
        .client()
        .confirm(&key, &order, 12_000, "late-approval")
        .await
        .unwrap();
    let body = status_changed(json!({ "paymentKey": key, "orderId": order }));
    let (status, answer) = subgraph.webhook(&body).await;
    assert_eq!((status, answer), (200, json!({ "status": "voided" })));
    let at_toss = h.toss.client().get(&key).await.unwrap();
    assert_eq!(at_toss.balance_amount, 0);
    assert_eq!(h.payment(&order).await.status, PaymentStatus::Failed);
    // The cancel's own webhook changes nothing.
    let (_, again) = subgraph.webhook(&body).await;
    assert_eq!(again, json!({ "status": "unchanged" }));
}

/// A full cancel in the Toss console leaves the saga's refund nothing to return: it is answered
/// as done with 0 KRW, whether the console cancel's webhook was recorded first or not (then
/// Toss's refusal makes the service record Toss's state first).
#[tokio::test]
async fn a_saga_refund_after_a_console_cancel_returns_nothing_more() {
    let h = Harness::new().await;
    let subgraph = Subgraph::start(h.service.clone()).await;
    let me = Identity::customer("c-1");
    let saga_refund = |order: &str, id: &str| {
        contracts::Envelope::new(
            order,
            contracts::PaymentCommand::RefundPayment {
                refund_id: id.into(),
                amount: None,
                reason: "customer cancelled".into(),
            },
        )
    };
    for webhook_first in [true, false] {
        let order = h.payable_order("c-1", 9_000).await;
        let key = h.mint(&order, 9_000).await;
        h.service
            .confirm(Some(&me), &order, &key, 9_000)
            .await
            .unwrap();
        h.toss
            .client()
            .cancel(&key, "customer called", None, "console-all")
            .await
            .unwrap();
        if webhook_first {
            let body = status_changed(json!({ "paymentKey": key, "orderId": order }));
            let (status, body) = subgraph.webhook(&body).await;
            assert_eq!(status, 200, "{body}");
        }
        let asked = h.toss.server.stats().cancel_requests;
        let reply = h
            .service
            .handle(saga_refund(&order, &format!("{order}:refund")))
            .await
            .unwrap();
        // Recorded first: Toss is not asked again; else it is asked once and refuses.
        assert_eq!(
            h.toss.server.stats().cancel_requests - asked,
            u64::from(!webhook_first)
        );
        assert_eq!(
            reply,
            contracts::SagaReply::PaymentRefunded {
                refund_id: format!("{order}:refund"),
                amount: 0
            },
            "webhook first: {webhook_first}"
        );
        let state = h.payment(&order).await;
        assert_eq!(
            (state.status, state.balance, state.refunds.len()),
            (PaymentStatus::Refunded, 0, 1),
            "only the console cancel is recorded (webhook first: {webhook_first})"
        );
    }
}

/// A Toss test server that, in `slow` mode, answers 400 ms after carrying a request out.
fn slow_toss() -> TossTestServer {
    TossTestServer::builder()
        .timeout_delay(Duration::from_secs(3))
        .slow_delay(Duration::from_millis(400))
        .build()
}

/// Waits until Toss holds `balance` KRW of the payment `key` (a cancel was carried out).
async fn toss_balance_reaches(h: &Harness, key: &str, balance: i64) {
    let client = h.toss.client();
    let reached = testkit::eventually(Duration::from_secs(5), || async {
        client.get(key).await.unwrap().balance_amount == balance
    })
    .await;
    assert!(reached, "toss never held {balance} KRW of {key}");
}

/// Toss's webhook for a staff refund comes while the refund is still being answered: it waits
/// for the refund to be recorded under its own id, and staff's retry under the same key (its
/// answer lost, say) is answered as the first time, not refused as leaving nothing.
async fn a_webhook_during_a_staff_refund_leaves_it_under_its_own_id(h: Harness) {
    let subgraph = Subgraph::start(h.service.clone()).await;
    let staff = Identity::staff("s-1");
    let (order, key) = h.paid_order_failing("c-1", 15_000, FailureMode::Slow).await;
    let refunding = {
        let (service, order, staff) = (h.service.clone(), order.clone(), staff.clone());
        tokio::spawn(async move {
            service
                .refund_partly(Some(&staff), &order, 10_000, "two spoilt tarts", "k-1")
                .await
        })
    };
    toss_balance_reaches(&h, &key, 5_000).await;
    let webhook = status_changed(json!({ "paymentKey": key, "orderId": order }));
    let (status, body) = subgraph.webhook(&webhook).await;
    assert_eq!((status, body), (200, json!({ "status": "unchanged" })));
    let refunded = refunding.await.unwrap().unwrap();
    assert_eq!(refunded.balance, 5_000);
    let ids: Vec<&str> = refunded
        .refunds
        .iter()
        .map(|r| r.refund_id.as_str())
        .collect();
    assert_eq!(ids, [format!("staff-{order}-k-1")]);

    h.toss.server.set_failure(FailureMode::None, Some(&key));
    let again = h
        .service
        .refund_partly(Some(&staff), &order, 10_000, "two spoilt tarts", "k-1")
        .await
        .unwrap();
    assert_eq!((again.balance, again.refunds.len()), (5_000, 1));
    assert_eq!(h.toss.server.stats().cancels, 1, "refunded once");
}

#[tokio::test]
async fn postgres_a_webhook_during_a_staff_refund_leaves_it_under_its_own_id() {
    a_webhook_during_a_staff_refund_leaves_it_under_its_own_id(
        Harness::with_toss(slow_toss()).await,
    )
    .await;
}

#[tokio::test]
async fn sqlite_a_webhook_during_a_staff_refund_leaves_it_under_its_own_id() {
    a_webhook_during_a_staff_refund_leaves_it_under_its_own_id(
        Harness::with_toss_on_sqlite(slow_toss()).await,
    )
    .await;
}

/// The same for the saga's refund: its `PaymentRefunded` carries the saga's refund id (the
/// saga takes it as its own refund, not as a cancel made at Toss).
#[tokio::test]
async fn a_webhook_during_a_saga_refund_leaves_it_under_the_sagas_id() {
    let h = Harness::with_toss(slow_toss()).await;
    let subgraph = Subgraph::start(h.service.clone()).await;
    let (order, key) = h.paid_order_failing("c-1", 15_000, FailureMode::Slow).await;
    let refunding = {
        let (service, order) = (h.service.clone(), order.clone());
        tokio::spawn(async move { service.handle(saga_refund(&order)).await })
    };
    toss_balance_reaches(&h, &key, 0).await;
    let webhook = status_changed(json!({ "paymentKey": key, "orderId": order }));
    let (status, body) = subgraph.webhook(&webhook).await;
    assert_eq!((status, body), (200, json!({ "status": "unchanged" })));
    assert_eq!(
        refunding.await.unwrap().unwrap(),
        contracts::SagaReply::PaymentRefunded {
            refund_id: "saga-refund".into(),
            amount: 15_000
        }
    );
    let refunds: Vec<serde_json::Value> = h
        .payment_events(&order)
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "PaymentRefunded")
        .map(|(_, data)| data["refund_id"].clone())
        .collect();
    assert_eq!(refunds, [json!("saga-refund")]);
}
