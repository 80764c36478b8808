//! Given/when/then tests of the payment aggregate: no I/O.

use chrono::{DateTime, TimeZone, Utc};
use eventstore::DomainEvent;
use eventstore::testing::AggregateTest;

use super::*;

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, hour, 0, 0).unwrap()
}

fn requested() -> PaymentEvent {
    PaymentEvent::Requested {
        order_id: "o-1".into(),
        customer_id: "c-1".into(),
        amount: 15_000,
        expires_at: at(12),
    }
}

fn confirm(key: &str, amount: i64) -> PaymentCommand {
    PaymentCommand::Confirm {
        payment_key: key.into(),
        amount,
        method: Some("카드".into()),
        approved_at: Some(at(11)),
        receipt_url: Some("https://r.test/1".into()),
    }
}

fn confirmed(key: &str) -> PaymentEvent {
    PaymentEvent::Confirmed {
        order_id: "o-1".into(),
        payment_key: key.into(),
        amount: 15_000,
        method: Some("카드".into()),
        approved_at: Some(at(11)),
        receipt_url: Some("https://r.test/1".into()),
    }
}

fn refund(id: &str, tx: Option<&str>, amount: i64) -> Refund {
    Refund {
        refund_id: id.into(),
        transaction_key: tx.map(Into::into),
        amount,
        reason: "sold out".into(),
        canceled_at: at(13),
    }
}

fn refunded(id: &str, tx: Option<&str>, amount: i64, balance: i64) -> PaymentEvent {
    PaymentEvent::Refunded {
        order_id: "o-1".into(),
        refund_id: id.into(),
        transaction_key: tx.map(Into::into),
        amount,
        reason: "sold out".into(),
        canceled_at: at(13),
        balance,
    }
}

#[test]
fn a_request_is_recorded_once() {
    let command = PaymentCommand::Request {
        order_id: "o-1".into(),
        customer_id: "c-1".into(),
        amount: 15_000,
        expires_at: at(12),
    };
    let state = AggregateTest::<Payment>::given_no_previous_events()
        .when(command.clone())
        .then_expect_events(vec![requested()]);
    assert_eq!(state.status, PaymentStatus::Requested);
    AggregateTest::<Payment>::given(vec![requested()])
        .when(command)
        .then_expect_events(vec![]);
}

#[test]
fn confirms_the_exact_amount_only() {
    let state = AggregateTest::<Payment>::given(vec![requested()])
        .when(confirm("pk-1", 15_000))
        .then_expect_events(vec![confirmed("pk-1")]);
    assert_eq!(state.status, PaymentStatus::Confirmed);
    assert_eq!(state.balance, 15_000);
    AggregateTest::<Payment>::given(vec![requested()])
        .when(confirm("pk-1", 14_999))
        .then_expect_error(|e| {
            *e == PaymentRuleError::AmountMismatch {
                expected: 15_000,
                given: 14_999,
            } && e.code() == "AMOUNT_MISMATCH"
        });
    AggregateTest::<Payment>::given_no_previous_events()
        .when(confirm("pk-1", 15_000))
        .then_expect_error(|e| *e == PaymentRuleError::NotRequested);
}

#[test]
fn confirming_twice_with_the_same_key_is_a_no_op_and_another_key_is_refused() {
    AggregateTest::<Payment>::given(vec![requested(), confirmed("pk-1")])
        .when(confirm("pk-1", 15_000))
        .then_expect_events(vec![]);
    AggregateTest::<Payment>::given(vec![requested(), confirmed("pk-1")])
        .when(confirm("pk-2", 15_000))
        .then_expect_error(|e| e.code() == "ALREADY_PROCESSED_PAYMENT");
}

#[test]
fn a_failure_is_final() {
    let fail = PaymentCommand::Fail {
        payment_key: Some("pk-1".into()),
        code: "REJECT_CARD_COMPANY".into(),
        reason: "declined".into(),
    };
    let failed = PaymentEvent::Failed {
        order_id: "o-1".into(),
        payment_key: Some("pk-1".into()),
        code: "REJECT_CARD_COMPANY".into(),
        reason: "declined".into(),
    };
    let state = AggregateTest::<Payment>::given(vec![requested()])
        .when(fail.clone())
        .then_expect_events(vec![failed.clone()]);
    assert_eq!(state.status, PaymentStatus::Failed);
    AggregateTest::<Payment>::given(vec![requested(), failed.clone()])
        .when(fail.clone())
        .then_expect_events(vec![]);
    AggregateTest::<Payment>::given(vec![requested(), failed])
        .when(confirm("pk-1", 15_000))
        .then_expect_error(|e| e.code() == "PAYMENT_FAILED");
    AggregateTest::<Payment>::given(vec![requested(), confirmed("pk-1")])
        .when(fail)
        .then_expect_error(|e| *e == PaymentRuleError::AlreadyConfirmed);
}

#[test]
fn refunds_partly_then_fully_tracking_the_balance() {
    let given = vec![requested(), confirmed("pk-1")];
    let state = AggregateTest::<Payment>::given(given.clone())
        .when(PaymentCommand::Refund {
            refunds: vec![refund("r-1", Some("tx-1"), 5_000)],
        })
        .then_expect_events(vec![refunded("r-1", Some("tx-1"), 5_000, 10_000)]);
    assert_eq!(state.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(state.balance, 10_000);

    let mut after_partial = given.clone();
    after_partial.push(refunded("r-1", Some("tx-1"), 5_000, 10_000));
    let state = AggregateTest::<Payment>::given(after_partial.clone())
        .when(PaymentCommand::Refund {
            refunds: vec![refund("r-2", Some("tx-2"), 10_000)],
        })
        .then_expect_events(vec![refunded("r-2", Some("tx-2"), 10_000, 0)]);
    assert_eq!(state.status, PaymentStatus::Refunded);
    assert_eq!(state.refunds.len(), 2);

    AggregateTest::<Payment>::given(after_partial)
        .when(PaymentCommand::Refund {
            refunds: vec![refund("r-2", None, 10_001)],
        })
        .then_expect_error(|e| e.code() == "NOT_CANCELABLE_AMOUNT");
}

#[test]
fn a_refund_is_idempotent_by_refund_id_and_by_transaction_key() {
    let given = vec![
        requested(),
        confirmed("pk-1"),
        refunded("r-1", Some("tx-1"), 5_000, 10_000),
    ];
    AggregateTest::<Payment>::given(given.clone())
        .when(PaymentCommand::Refund {
            refunds: vec![refund("r-1", Some("tx-1"), 5_000)],
        })
        .then_expect_events(vec![]);
    // The same Toss cancel seen again by the webhook under another id.
    AggregateTest::<Payment>::given(given.clone())
        .when(PaymentCommand::Refund {
            refunds: vec![
                refund("toss-tx-1", Some("tx-1"), 5_000),
                refund("toss-tx-9", Some("tx-9"), 1_000),
            ],
        })
        .then_expect_events(vec![refunded("toss-tx-9", Some("tx-9"), 1_000, 9_000)]);
}

#[test]
fn nothing_is_refunded_before_a_confirmation() {
    AggregateTest::<Payment>::given(vec![requested()])
        .when(PaymentCommand::Refund {
            refunds: vec![refund("r-1", None, 1)],
        })
        .then_expect_error(|e| *e == PaymentRuleError::NotConfirmed);
}

#[test]
fn contract_events_decode_as_the_contract_types() {
    let event = confirmed("pk-1");
    assert_eq!(event.event_type(), contracts::events::PAYMENT_CONFIRMED);
    let json = serde_json::to_value(&event).unwrap();
    let contract: contracts::events::PaymentConfirmed =
        serde_json::from_value(json.clone()).unwrap();
    assert_eq!(
        contract,
        contracts::events::PaymentConfirmed {
            order_id: "o-1".into(),
            payment_key: "pk-1".into(),
            amount: 15_000,
        }
    );
    assert_eq!(serde_json::from_value::<PaymentEvent>(json).unwrap(), event);

    let failed = PaymentEvent::Failed {
        order_id: "o-1".into(),
        payment_key: None,
        code: "PROVIDER_ERROR".into(),
        reason: "down".into(),
    };
    assert_eq!(failed.event_type(), contracts::events::PAYMENT_FAILED);
    let contract: contracts::events::PaymentFailed =
        serde_json::from_value(serde_json::to_value(&failed).unwrap()).unwrap();
    assert_eq!(contract.code, "PROVIDER_ERROR");
    assert_eq!(contract.reason, "down");

    let refunded = PaymentEvent::Refunded {
        order_id: "o-1".into(),
        refund_id: "toss-tx-1".into(),
        transaction_key: Some("tx-1".into()),
        amount: 5_000,
        reason: "customer called".into(),
        canceled_at: Utc::now(),
        balance: 10_000,
    };
    assert_eq!(refunded.event_type(), contracts::events::PAYMENT_REFUNDED);
    let contract: contracts::events::PaymentRefunded =
        serde_json::from_value(serde_json::to_value(&refunded).unwrap()).unwrap();
    assert_eq!(
        contract,
        contracts::events::PaymentRefunded {
            order_id: "o-1".into(),
            refund_id: "toss-tx-1".into(),
            amount: 5_000,
            reason: "customer called".into(),
            balance: 10_000,
        }
    );
}
