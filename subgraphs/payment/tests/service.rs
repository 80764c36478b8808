//! The payment service with real Postgres (event store and read model) and the Toss test
//! server over HTTP: amount checks, ownership, charging once, failures, refunds for the saga.

mod common;

use std::time::Duration;

use auth::Identity;
use common::{Harness, order_status};
use contracts::{Envelope, PaymentCommand, SagaReply};
use payment::payment::PaymentStatus;
use payment::toss::{FailureMode, TossStatus};

fn refund(order_id: &str, refund_id: &str, amount: Option<i64>) -> Envelope<PaymentCommand> {
    Envelope::new(
        order_id,
        PaymentCommand::RefundPayment {
            refund_id: refund_id.to_owned(),
            amount,
            reason: "order rejected".to_owned(),
        },
    )
}

/// The saga's refund of all that is left of `order`, answered.
async fn refund_all(h: &Harness, order: &str, refund_id: &str) -> SagaReply {
    h.service
        .handle(refund(order, refund_id, None))
        .await
        .unwrap()
}

/// What Toss holds of payment `key`, by its own books.
async fn toss_balance(h: &Harness, key: &str) -> i64 {
    h.toss.client().get(key).await.unwrap().balance_amount
}

/// Staff's partial refund of 5,000 KRW for a spoilt tart, under idempotency key `key`.
async fn refund_spoilt_tart(
    h: &Harness,
    order: &str,
    key: &str,
) -> Result<payment::payment::Payment, payment::PaymentError> {
    h.service
        .refund_partly(
            Some(&Identity::staff("s-1")),
            order,
            5_000,
            "a spoilt tart",
            key,
        )
        .await
}

#[tokio::test]
async fn a_tampered_amount_is_refused_before_toss_is_called() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint(&order, 100).await;
    let err = h
        .service
        .confirm(Some(&me), &order, &key, 100)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AMOUNT_MISMATCH");
    assert_eq!(
        h.toss.server.stats().confirm_requests,
        0,
        "toss never saw a confirm"
    );
    assert!(
        h.payment_events(&order).await.is_empty(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn only_the_customer_of_the_order_pays_for_it() {
    let h = Harness::new().await;
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint(&order, 15_000).await;
    let other = Identity::customer("c-2");
    let err = h
        .service
        .confirm(Some(&other), &order, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN");
    let staff = Identity::staff("s-1");
    let err = h
        .service
        .confirm(Some(&staff), &order, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN");
    let err = h
        .service
        .confirm(None, &order, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAUTHENTICATED");
    assert_eq!(h.toss.server.stats().confirm_requests, 0);

    let unknown = uuid::Uuid::now_v7().to_string();
    let err = h
        .service
        .confirm(Some(&Identity::customer("c-1")), &unknown, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ORDER_NOT_FOUND");
}

#[tokio::test]
async fn a_duplicate_confirm_charges_once_and_returns_the_payment() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint(&order, 15_000).await;
    let first = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap();
    assert_eq!(first.status, PaymentStatus::Confirmed);
    assert_eq!(first.payment_key.as_deref(), Some(key.as_str()));
    assert_eq!((first.amount, first.balance), (15_000, 15_000));
    assert!(first.receipt_url.is_some() && first.approved_at.is_some());

    let again = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap();
    assert_eq!(again, first);
    let stats = h.toss.server.stats();
    assert_eq!(
        (stats.confirm_requests, stats.confirmed),
        (1, 1),
        "charged once"
    );

    let events = h.payment_events(&order).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["PaymentRequestReceived", "PaymentConfirmed"]);
    let contract: contracts::events::PaymentConfirmed =
        serde_json::from_value(events[1].1.clone()).unwrap();
    assert_eq!(
        contract,
        contracts::events::PaymentConfirmed {
            order_id: order.clone(),
            payment_key: key.clone(),
            amount: 15_000,
        }
    );

    // Another payment key for a paid order is refused without calling Toss.
    let other_key = h.mint(&order, 15_000).await;
    let err = h
        .service
        .confirm(Some(&me), &order, &other_key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_PROCESSED_PAYMENT");
    assert_eq!(h.toss.server.stats().confirm_requests, 1);
}

#[tokio::test]
async fn concurrent_confirms_charge_once() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 9_000).await;
    let key = h.mint(&order, 9_000).await;
    let (a, b) = tokio::join!(
        h.service.confirm(Some(&me), &order, &key, 9_000),
        h.service.confirm(Some(&me), &order, &key, 9_000),
    );
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(h.toss.server.stats().confirmed, 1);
    let confirmed = h
        .payment_events(&order)
        .await
        .into_iter()
        .filter(|(t, _)| t == contracts::events::PAYMENT_CONFIRMED)
        .count();
    assert_eq!(confirmed, 1);
}

#[tokio::test]
async fn a_declined_card_records_payment_failed() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint_failing(&order, 15_000, FailureMode::Declined).await;
    let err = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "REJECT_CARD_COMPANY");
    let events = h.payment_events(&order).await;
    let (ty, data) = events.last().unwrap();
    assert_eq!(ty, contracts::events::PAYMENT_FAILED);
    let failed: contracts::events::PaymentFailed = serde_json::from_value(data.clone()).unwrap();
    assert_eq!(failed.order_id, order);
    assert_eq!(failed.code, "REJECT_CARD_COMPANY");
    assert!(!failed.reason.is_empty());

    // The failure is final: no second charge attempt.
    h.toss.server.set_failure(FailureMode::None, None);
    let err = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PAYMENT_FAILED");
    assert_eq!(h.toss.server.stats().confirm_requests, 1);
}

/// Toss's 400 `PROVIDER_ERROR` is its answer for this payment key (stored under the
/// idempotency key): recorded as failed, not retried. Toss failing itself (a 5xx) is retried
/// and, still failing, leaves the outcome open: nothing is recorded.
#[tokio::test]
async fn a_provider_error_is_recorded_as_failed_and_a_server_error_is_not() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let mut requests = 0;
    for (mode, code, asks, recorded) in [
        (FailureMode::ProviderError, "PROVIDER_ERROR", 1, true),
        (
            FailureMode::InternalError,
            "FAILED_INTERNAL_SYSTEM_PROCESSING",
            3,
            false,
        ),
    ] {
        let order = h.payable_order("c-1", 15_000).await;
        let key = h.mint(&order, 15_000).await;
        h.toss.server.set_failure(mode, None);
        let err = h
            .service
            .confirm(Some(&me), &order, &key, 15_000)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
        requests += asks;
        assert_eq!(h.toss.server.stats().confirm_requests, requests, "{code}");
        let failed = h.payment(&order).await.status == PaymentStatus::Failed;
        assert_eq!(failed, recorded, "{code}");
        let last = h.payment_events(&order).await.last().unwrap().0.clone();
        assert_eq!(
            last == contracts::events::PAYMENT_FAILED,
            recorded,
            "{code}"
        );
    }
}

/// Toss's 403 `FORBIDDEN_CONSECUTIVE_REQUEST` ("try again in a while": a request right after
/// another, which may have gone through) is not a decline: the payment is looked up, and
/// recorded confirmed when Toss approved it (the test server's `consecutive` mode applies the
/// confirm, then answers so), never as failed.
#[tokio::test]
async fn a_confirm_answered_too_soon_that_went_through_is_recorded_confirmed() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h
        .mint_failing(&order, 15_000, FailureMode::Consecutive)
        .await;
    let paid = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Confirmed);
    assert_eq!(h.toss.server.stats().confirmed, 1);
    assert!(
        h.payment_events(&order)
            .await
            .iter()
            .all(|(kind, _)| kind != contracts::events::PAYMENT_FAILED),
        "never recorded as failed"
    );
}

/// A refund Toss answers "try again in a while" (`PROVIDER_ERROR`, or
/// `FORBIDDEN_CONSECUTIVE_REQUEST` when nothing went through) is answered as refused for now,
/// which the saga asks again later; a refusal for good (`NOT_CANCELABLE_PAYMENT`) is not.
/// A refund refused as too soon after another request although it went through
/// (`FORBIDDEN_CONSECUTIVE_REQUEST`) is found at Toss and recorded as the saga's refund: all
/// of it was returned, once, and the saga is told so; asked again, it is answered the same.
#[tokio::test]
async fn refunds_refused_for_now_are_told_apart_from_refusals_for_good() {
    let h = Harness::new().await;
    for (mode, code, temporary_expected) in [
        (FailureMode::ProviderError, "PROVIDER_ERROR", true),
        (FailureMode::TooSoon, "FORBIDDEN_CONSECUTIVE_REQUEST", true),
        (FailureMode::CancelRefused, "NOT_CANCELABLE_PAYMENT", false),
    ] {
        let (order, _) = h.paid_order_failing("c-1", 15_000, mode).await;
        let reply = refund_all(&h, &order, "refund-1").await;
        match reply {
            SagaReply::RefundFailed {
                code: got,
                temporary,
                ..
            } => {
                assert_eq!(got, code);
                assert_eq!(temporary, temporary_expected, "{code}");
            }
            other => panic!("{code}: expected RefundFailed, got {other:?}"),
        }
        assert_eq!(
            h.payment(&order).await.balance,
            15_000,
            "{code}: nothing returned"
        );
    }

    let (order, _) = h
        .paid_order_failing("c-1", 15_000, FailureMode::Consecutive)
        .await;
    let cancels = h.toss.server.stats().cancels;
    let done = SagaReply::PaymentRefunded {
        refund_id: "refund-1".into(),
        amount: 15_000,
    };
    assert_eq!(refund_all(&h, &order, "refund-1").await, done);
    let payment = h.payment(&order).await;
    assert_eq!(payment.balance, 0, "recorded from Toss");
    assert_eq!(payment.refunds.len(), 1);
    assert_eq!(
        payment.refunds[0].refund_id, "refund-1",
        "as the saga's refund"
    );
    assert_eq!(
        refund_all(&h, &order, "refund-1").await,
        done,
        "asked again"
    );
    assert_eq!(h.toss.server.stats().cancels, cancels + 1, "returned once");
}

/// A staff partial refund Toss carried out but answered as too soon after another request is
/// found at Toss and recorded under the staff's key: staff see it done, and asking again with
/// the same key answers it without a second cancel (Toss would replay its refusal forever, and
/// a new key would refund the amount twice).
#[tokio::test]
async fn a_partial_refund_answered_too_soon_that_went_through_is_recorded_as_asked() {
    let h = Harness::new().await;
    let (order, key) = h
        .paid_order_failing("c-1", 15_000, FailureMode::Consecutive)
        .await;
    let payment = refund_spoilt_tart(&h, &order, "k-1").await.unwrap();
    assert_eq!(payment.balance, 10_000);
    assert_eq!(payment.refunds.len(), 1);
    assert_eq!(payment.refunds[0].refund_id, format!("staff-{order}-k-1"));
    assert_eq!(payment.refunds[0].amount, 5_000);
    let cancels = h.toss.server.stats().cancels;
    let again = refund_spoilt_tart(&h, &order, "k-1").await.unwrap();
    assert_eq!((again.balance, again.refunds.len()), (10_000, 1));
    assert_eq!(
        h.toss.server.stats().cancels,
        cancels,
        "not cancelled again"
    );
    assert_eq!(toss_balance(&h, &key).await, 10_000);
}

/// A cancel Toss made that is not this refund's (here one made elsewhere, for the same amount
/// but another reason, and not recorded yet) is not taken for it when Toss answers "too soon":
/// it is recorded as made at Toss, and staff's refund stays refused.
#[tokio::test]
async fn a_refund_refused_as_too_soon_does_not_take_another_cancel_for_its_own() {
    let h = Harness::new().await;
    let (order, key) = h.paid_order("c-1", 15_000).await;
    h.toss
        .client()
        .cancel(&key, "customer called", Some(5_000), "console-1")
        .await
        .unwrap();
    h.toss.server.set_failure(FailureMode::TooSoon, Some(&key));
    let err = refund_spoilt_tart(&h, &order, "k-1").await.unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN_CONSECUTIVE_REQUEST");
    let payment = h.payment(&order).await;
    assert_eq!(payment.balance, 10_000);
    assert_eq!(payment.refunds.len(), 1);
    assert!(
        payment.refunds[0].refund_id.starts_with("toss-"),
        "{:?}",
        payment.refunds
    );
}

/// A staff partial refund Toss refused as too soon and did not carry out stays refused, with
/// nothing recorded; once Toss takes requests again, a new key refunds it once.
#[tokio::test]
async fn a_partial_refund_refused_as_too_soon_records_nothing() {
    let h = Harness::new().await;
    let (order, key) = h
        .paid_order_failing("c-1", 15_000, FailureMode::TooSoon)
        .await;
    let err = refund_spoilt_tart(&h, &order, "k-1").await.unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN_CONSECUTIVE_REQUEST");
    let payment = h.payment(&order).await;
    assert_eq!((payment.balance, payment.refunds.len()), (15_000, 0));

    h.toss.server.set_failure(FailureMode::None, Some(&key));
    let payment = refund_spoilt_tart(&h, &order, "k-2").await.unwrap();
    assert_eq!((payment.balance, payment.refunds.len()), (10_000, 1));
    assert_eq!(toss_balance(&h, &key).await, 10_000);
}

#[tokio::test]
async fn a_timeout_records_nothing_and_a_retry_charges_once() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint_failing(&order, 15_000, FailureMode::Timeout).await;
    let err = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TOSS_TIMEOUT");
    assert_eq!(h.payment(&order).await.status, PaymentStatus::Requested);

    h.toss.server.set_failure(FailureMode::None, Some(&key));
    let paid = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Confirmed);
    assert_eq!(h.toss.server.stats().confirmed, 1);
}

/// A confirm whose caller goes away while Toss is still answering (a client or the gateway
/// timing out drops the request) is carried to the end: the payment Toss approved is recorded,
/// and the saga hears of it, without the customer asking again.
#[tokio::test]
async fn a_confirm_whose_caller_went_away_is_still_recorded() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    // Approved at once, answered 200 ms later (the test server's slow delay).
    let key = h.mint_failing(&order, 15_000, FailureMode::Slow).await;
    // The caller leaves once Toss has the request (well before its answer).
    let confirm = h.service.confirm(Some(&me), &order, &key, 15_000);
    let asked = async {
        while h.toss.server.stats().confirm_requests == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        answered = confirm => panic!("answered before the caller left: {answered:?}"),
        () = asked => {}
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.payment(&order).await.status != PaymentStatus::Confirmed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the approved payment was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.toss.server.stats().confirmed, 1);
}

/// A payment Toss approved whose confirm was never recorded (its process stopped in between)
/// is found when the customer confirms again after the order closed: the confirm is refused,
/// and the payment is recorded, so the saga refunds it as a late payment instead of leaving
/// the money at Toss.
#[tokio::test]
async fn a_payment_approved_but_never_recorded_is_found_after_the_order_closed() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(1_500);
    let order = h.payable_order_until("c-1", 15_000, expires).await;
    // The confirm is requested (Toss does not answer in time, nothing is applied)...
    let key = h.mint_failing(&order, 15_000, FailureMode::Timeout).await;
    let err = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TOSS_TIMEOUT");
    // ...then approved at Toss under its idempotency key, as by a retry whose process stopped
    // before recording it.
    h.toss.server.set_failure(FailureMode::None, Some(&key));
    h.toss
        .client()
        .confirm(
            &key,
            &order,
            15_000,
            &payment::service::confirm_idempotency_key(&order, &key),
        )
        .await
        .unwrap();
    assert_eq!(h.payment(&order).await.status, PaymentStatus::Requested);
    let wait = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;

    let err = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ORDER_NOT_PAYABLE");
    let payment = h.payment(&order).await;
    assert_eq!(
        payment.status,
        PaymentStatus::Confirmed,
        "recorded for the saga"
    );
    assert_eq!(payment.payment_key.as_deref(), Some(key.as_str()));
    assert_eq!(h.toss.server.stats().confirmed, 1, "charged once");
}

/// Toss's test server in `duplicate` mode takes the money and answers as to a duplicate
/// (`ALREADY_PROCESSED_PAYMENT`): the payment is looked up and recorded confirmed, once.
#[tokio::test]
async fn a_duplicate_answer_after_the_charge_is_recorded_as_confirmed() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint_failing(&order, 15_000, FailureMode::Duplicate).await;
    let paid = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Confirmed);
    assert_eq!(paid.amount, 15_000);
    let stats = h.toss.server.stats();
    assert_eq!((stats.confirm_requests, stats.confirmed), (1, 1));
    let events = h.payment_events(&order).await;
    assert_eq!(
        events.last().unwrap().0,
        contracts::events::PAYMENT_CONFIRMED
    );
}

#[tokio::test]
async fn a_confirm_that_reached_toss_but_was_not_recorded_is_recovered() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint(&order, 15_000).await;
    // Toss confirmed under another idempotency key (as if our process died before recording).
    h.toss
        .client()
        .confirm(&key, &order, 15_000, "lost-attempt")
        .await
        .unwrap();
    let paid = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Confirmed);
    assert_eq!(h.toss.server.stats().confirmed, 1, "not charged twice");
}

#[tokio::test]
async fn closed_and_expired_orders_cannot_be_paid() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    h.order_event(&order, order_status("OrderCancelled", &order, "CANCELLED"))
        .await;
    let key = h.mint(&order, 15_000).await;
    let err = h
        .service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ORDER_NOT_PAYABLE");

    let expired = h
        .payable_order_until(
            "c-1",
            15_000,
            chrono::Utc::now() - chrono::Duration::seconds(1),
        )
        .await;
    let key = h.mint(&expired, 15_000).await;
    let err = h
        .service
        .confirm(Some(&me), &expired, &key, 15_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ORDER_NOT_PAYABLE");
    assert_eq!(h.toss.server.stats().confirm_requests, 0);
}

#[tokio::test]
async fn refunds_for_the_saga_partly_then_fully_idempotently() {
    let h = Harness::new().await;
    let (order, key) = h.paid_order("c-1", 15_000).await;

    let command = refund(&order, "refund-1", Some(5_000));
    let reply = h.service.handle(command.clone()).await.unwrap();
    assert_eq!(
        reply,
        SagaReply::PaymentRefunded {
            refund_id: "refund-1".into(),
            amount: 5_000
        }
    );
    // A redelivered command is answered the same, without a second cancel.
    assert_eq!(h.service.handle(command).await.unwrap(), reply);
    assert_eq!(h.toss.server.stats().cancels, 1);

    let reply = refund_all(&h, &order, "refund-2").await;
    assert_eq!(
        reply,
        SagaReply::PaymentRefunded {
            refund_id: "refund-2".into(),
            amount: 10_000
        }
    );
    let at_toss = h.toss.client().get(&key).await.unwrap();
    assert_eq!(at_toss.balance_amount, 0);
    assert_eq!(at_toss.status, TossStatus::Canceled);
    let state = h.payment(&order).await;
    assert_eq!((state.status, state.balance), (PaymentStatus::Refunded, 0));
    assert_eq!(state.refunds.len(), 2);

    let reply = refund_all(&h, &order, "refund-3").await;
    match reply {
        SagaReply::RefundFailed {
            refund_id, code, ..
        } => {
            assert_eq!(refund_id, "refund-3");
            assert_eq!(code, "ALREADY_CANCELED_PAYMENT");
        }
        other => panic!("expected RefundFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refund_for_a_long_or_blank_reason_still_refunds() {
    let h = Harness::new().await;
    let (order, _) = h.paid_order("c-1", 15_000).await;
    // Staff may write up to 500 characters when they reject; Toss takes 200.
    for (refund_id, reason, amount) in [
        (
            "refund-1",
            "너무 늦게 도착할 것 같아요. ".repeat(30),
            Some(5_000),
        ),
        ("refund-2", "   ".to_owned(), None),
    ] {
        let command = Envelope::new(
            &order,
            PaymentCommand::RefundPayment {
                refund_id: refund_id.to_owned(),
                amount,
                reason,
            },
        );
        let reply = h.service.handle(command).await.unwrap();
        assert!(
            matches!(&reply, SagaReply::PaymentRefunded { refund_id: id, .. } if id == refund_id),
            "{reply:?}"
        );
    }
    let state = h.payment(&order).await;
    assert_eq!((state.status, state.balance), (PaymentStatus::Refunded, 0));
    let reasons: Vec<&str> = state.refunds.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2);
    // Cut to what Toss takes, and marked as cut.
    let kept = reasons[0].chars().count();
    assert!((190..=200).contains(&kept), "{kept}: {}", reasons[0]);
    assert!(reasons[0].starts_with("너무 늦게") && reasons[0].ends_with('…'));
    assert_eq!(reasons[1], "refund");
}

#[tokio::test]
async fn refunding_an_unpaid_order_fails_for_good() {
    let h = Harness::new().await;
    let order = h.payable_order("c-1", 15_000).await;
    let reply = refund_all(&h, &order, "refund-1").await;
    assert!(
        matches!(&reply, SagaReply::RefundFailed { code, .. } if code == "PAYMENT_NOT_FOUND"),
        "{reply:?}"
    );
    assert_eq!(h.toss.server.stats().cancel_requests, 0);
}

#[tokio::test]
async fn a_refund_while_toss_is_down_is_not_answered_so_it_is_retried() {
    let h = Harness::new().await;
    let (order, _) = h.paid_order("c-1", 15_000).await;
    h.toss.server.set_failure(FailureMode::InternalError, None);
    let command = refund(&order, "refund-1", None);
    let err = h.service.handle(command.clone()).await.unwrap_err();
    assert_eq!(err.code(), "FAILED_INTERNAL_SYSTEM_PROCESSING");
    assert!(err.is_transient());
    h.toss.server.set_failure(FailureMode::None, None);
    let reply = h.service.handle(command).await.unwrap();
    assert_eq!(
        reply,
        SagaReply::PaymentRefunded {
            refund_id: "refund-1".into(),
            amount: 15_000
        }
    );
}

#[tokio::test]
async fn the_payment_is_shown_to_its_customer_and_staff_only() {
    let h = Harness::new().await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    assert_eq!(h.service.payment(Some(&me), &order).await.unwrap(), None);
    let key = h.mint(&order, 15_000).await;
    h.service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap();
    assert!(
        h.service
            .payment(Some(&me), &order)
            .await
            .unwrap()
            .is_some()
    );
    let staff = Identity::staff("s-1");
    assert!(
        h.service
            .payment(Some(&staff), &order)
            .await
            .unwrap()
            .is_some()
    );
    let err = h
        .service
        .payment(Some(&Identity::customer("c-2")), &order)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN");
}

/// With the saga notice set up, a confirmed payment is announced on the saga's replies topic
/// right after it is recorded, keyed by order and saying what the relayed `PaymentConfirmed`
/// says; a declined one is not announced (its `PaymentFailed` travels by the relay only).
#[tokio::test]
async fn a_confirmed_payment_is_announced_to_the_saga() {
    use bus::MessageBus;

    let h = Harness::new().await;
    let bus = std::sync::Arc::new(bus::MemoryBus::new());
    let replies = format!("t.{}", contracts::SAGA_REPLIES);
    bus.ensure_topics(&[replies.as_str()], 1).await.unwrap();
    let mut probe = bus.subscribe("probe", &[replies.as_str()]).await.unwrap();
    let service = h.service.clone().with_saga_notice(bus.clone(), "t.");
    let me = Identity::customer("c-1");

    let (declined, declined_key) = h.declined_order("c-1", 9_000).await;
    let err = service
        .confirm(Some(&me), &declined, &declined_key, 9_000)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "REJECT_CARD_COMPANY");

    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint(&order, 15_000).await;
    service
        .confirm(Some(&me), &order, &key, 15_000)
        .await
        .unwrap();
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), probe.recv())
        .await
        .expect("the saga is told of the confirmed payment")
        .unwrap();
    assert_eq!(msg.key.as_deref(), Some(order.as_bytes()));
    let notice: Envelope<SagaReply> = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(
        notice.order_id, order,
        "the declined payment sent nothing first"
    );
    assert_eq!(
        notice.body,
        SagaReply::PaymentConfirmed {
            payment_key: key,
            amount: 15_000,
        }
    );
}

/// A cancel Toss made before the saga's (a partial refund not recorded yet) is recorded first,
/// with the balance it left, and the saga's last, under its id: the relayed events tell the
/// saga its own refund emptied the payment, not the other cancel.
#[tokio::test]
async fn cancels_made_meanwhile_are_recorded_in_tosss_order() {
    let h = Harness::new().await;
    let (order, key) = h.paid_order("c-1", 15_000).await;
    h.toss
        .client()
        .cancel(&key, "one cake spoilt", Some(2_000), "elsewhere-1")
        .await
        .unwrap();
    let reply = refund_all(&h, &order, "o:refund").await;
    assert_eq!(
        reply,
        SagaReply::PaymentRefunded {
            refund_id: "o:refund".into(),
            amount: 13_000
        }
    );
    let refunds: Vec<(String, i64, i64)> = h
        .payment_events(&order)
        .await
        .into_iter()
        .filter(|(kind, _)| kind == contracts::events::PAYMENT_REFUNDED)
        .map(|(_, data)| {
            (
                data["refund_id"].as_str().unwrap().to_owned(),
                data["amount"].as_i64().unwrap(),
                data["balance"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(refunds.len(), 2, "{refunds:?}");
    assert!(refunds[0].0.starts_with("toss-"), "{refunds:?}");
    assert_eq!((refunds[0].1, refunds[0].2), (2_000, 13_000));
    assert_eq!(refunds[1], ("o:refund".to_owned(), 13_000, 0));
}

/// Two partial refunds at once, each leaving something but together everything: taken one
/// at a time, so the second sees what the first left and is refused.
#[tokio::test]
async fn concurrent_partial_refunds_always_leave_something() {
    let h = Harness::new().await;
    let (order, key) = h.paid_order("c-1", 10_000).await;
    let staff = Identity::staff("lee");
    let (a, b) = tokio::join!(
        h.service
            .refund_partly(Some(&staff), &order, 6_000, "two cakes spoilt", "a"),
        h.service
            .refund_partly(Some(&staff), &order, 4_000, "one tart spoilt", "b"),
    );
    let refused: Vec<_> = [&a, &b]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert_eq!(refused.len(), 1, "exactly one refunded: {a:?} {b:?}");
    assert_eq!(refused[0].code(), "BAD_USER_INPUT");
    let left = h.toss.server.payment(&key).unwrap().balance_amount;
    assert!(left == 4_000 || left == 6_000, "something left: {left}");
    assert_eq!(h.toss.server.stats().cancels, 1);
}
