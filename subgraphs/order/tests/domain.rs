//! Given/when/then tests of the order and saga aggregates (no I/O).

use chrono::{Duration, Utc};
use contracts::events::PricedLine;
use contracts::{InventoryCommand, PaymentCommand, SagaReply, StockLine};
use eventstore::Aggregate;
use eventstore::testing::AggregateTest;
use order::order::{Order, OrderCommand, OrderEvent, OrderStatus};
use order::saga::{OrderAction, OrderSaga, Outgoing, Phase, SagaAdvanced, SagaCommand, SagaInput};
use uuid::Uuid;

fn line(product: &str, quantity: u32, unit_price: i64) -> PricedLine {
    PricedLine {
        line: StockLine {
            product_id: product.into(),
            quantity,
        },
        product_name: format!("cake {product}"),
        unit_price,
    }
}

fn placed() -> Vec<OrderEvent> {
    let order = Order::default();
    order
        .handle(OrderCommand::Place {
            order_id: "o1".into(),
            customer_id: "c1".into(),
            lines: vec![line("p1", 2, 6_500), line("p2", 1, 4_000)],
        })
        .unwrap()
}

/// Runs `commands` on the order, applying what each decides (each must be accepted).
fn run(o: &mut Order, commands: impl IntoIterator<Item = OrderCommand>) {
    for cmd in commands {
        for e in o.handle(cmd).unwrap() {
            o.apply(&e);
        }
    }
}

/// The paid order is accepted, prepared and ready.
fn make_ready(o: &mut Order) {
    run(
        o,
        [
            OrderCommand::Accept,
            OrderCommand::StartPreparing,
            OrderCommand::MarkReady,
        ],
    );
}

/// The reserved order awaits payment and is paid.
fn pay(o: &mut Order) {
    run(
        o,
        [
            OrderCommand::AwaitPayment {
                expires_at: Utc::now(),
            },
            OrderCommand::MarkPaid {
                payment_key: "pk".into(),
            },
        ],
    );
}

/// Toss refused the order's refund for good.
fn toss_refused_the_refund() -> OrderCommand {
    OrderCommand::MarkRefundFailed {
        reason: "NOT_CANCELABLE_PAYMENT: cannot be cancelled".into(),
    }
}

fn fold(events: &[OrderEvent]) -> Order {
    let mut o = Order::default();
    for e in events {
        o.apply(e);
    }
    o
}

#[test]
fn placing_computes_the_total_on_the_server() {
    let events = placed();
    let OrderEvent::Placed(p) = &events[0] else {
        panic!("placed")
    };
    assert_eq!(p.total, 2 * 6_500 + 4_000);
    // Placing again (same idempotency key → same order id) changes nothing.
    AggregateTest::<Order>::given(events)
        .when(OrderCommand::Place {
            order_id: "o1".into(),
            customer_id: "c1".into(),
            lines: vec![line("p1", 1, 1)],
        })
        .then_expect_events(vec![]);
}

#[test]
fn placing_refuses_bad_lines() {
    let bad: Vec<Vec<PricedLine>> = vec![
        vec![],
        vec![line("p1", 0, 100)],
        vec![line("p1", 100, 100)],
        vec![line("p1", 1, 100), line("p1", 2, 100)],
        (0..51).map(|i| line(&format!("p{i}"), 1, 100)).collect(),
        vec![line("p1", 1, 0)],
    ];
    for lines in bad {
        AggregateTest::<Order>::given_no_previous_events()
            .when(OrderCommand::Place {
                order_id: "o".into(),
                customer_id: "c".into(),
                lines,
            })
            .then_expect_error(|e| e.code() == "BAD_USER_INPUT");
    }
}

#[test]
fn runs_the_status_timeline_and_refuses_skips() {
    let mut events = placed();
    let mut o = fold(&events);
    for cmd in [
        OrderCommand::AwaitPayment {
            expires_at: Utc::now() + Duration::minutes(10),
        },
        OrderCommand::MarkPaid {
            payment_key: "pk".into(),
        },
        OrderCommand::Accept,
        OrderCommand::StartPreparing,
        OrderCommand::MarkReady,
        OrderCommand::Complete,
    ] {
        let new = o.handle(cmd).unwrap();
        assert!(!new.is_empty());
        for e in &new {
            o.apply(e);
        }
        events.extend(new);
    }
    assert_eq!(o.status, OrderStatus::Completed);
    let statuses: Vec<&str> = o.timeline.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "PLACED",
            "STOCK_RESERVED",
            "PAYMENT_PENDING",
            "PAID",
            "ACCEPTED",
            "PREPARING",
            "READY",
            "COMPLETED"
        ]
    );
    AggregateTest::<Order>::given(placed())
        .when(OrderCommand::Accept)
        .then_expect_error(|e| e.code() == "INVALID_ORDER_STATUS");
}

#[test]
fn customers_cannot_cancel_once_accepted() {
    let mut o = fold(&placed());
    pay(&mut o);
    run(&mut o, [OrderCommand::Accept]);
    let err = o
        .handle(OrderCommand::Cancel {
            reason: "changed my mind".into(),
        })
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ORDER_STATUS");
    // Staff may still reject (and the saga refunds).
    assert!(
        !o.handle(OrderCommand::Reject {
            reason: "oven broke".into()
        })
        .unwrap()
        .is_empty()
    );
}

#[test]
fn staff_may_reject_a_ready_order_but_not_a_completed_one() {
    let mut o = fold(&placed());
    pay(&mut o);
    make_ready(&mut o);
    assert!(o.goods_made());
    let reject = || OrderCommand::Reject {
        reason: "wrong cake at pick-up".into(),
    };
    let mut rejected = o.clone();
    run(&mut rejected, [reject()]);
    assert_eq!(rejected.status, OrderStatus::Rejected);
    assert!(
        rejected.paid && !rejected.settled(),
        "the refund is to come"
    );
    assert!(rejected.goods_made(), "made, whatever came after");
    run(&mut o, [OrderCommand::Complete]);
    assert_eq!(
        o.handle(reject()).unwrap_err().code(),
        "INVALID_ORDER_STATUS"
    );
    assert!(!fold(&placed()).goods_made());
}

// ---- saga ----

fn cmd(input: SagaInput) -> SagaCommand {
    SagaCommand {
        message_id: Uuid::now_v7(),
        order_id: "o1".into(),
        input,
        payment_timeout: Duration::minutes(10),
        refund_retry_after: Duration::minutes(2),
    }
}

fn step(saga: &mut OrderSaga, input: SagaInput) -> SagaAdvanced {
    let mut events = saga.handle(cmd(input)).unwrap();
    assert_eq!(events.len(), 1);
    let e = events.remove(0);
    saga.apply(&e);
    e
}

fn started() -> OrderSaga {
    let mut saga = OrderSaga::default();
    let e = step(
        &mut saga,
        SagaInput::OrderPlaced {
            lines: vec![StockLine {
                product_id: "p1".into(),
                quantity: 2,
            }],
            total: 13_000,
        },
    );
    assert!(
        matches!(&e.sent[0], Outgoing::Inventory(env) if matches!(env.body, InventoryCommand::ReserveStock { .. }))
    );
    saga
}

fn reserved() -> (OrderSaga, SagaAdvanced) {
    let mut saga = started();
    let e = step(
        &mut saga,
        SagaInput::Replied(SagaReply::StockReserved {
            reservation_id: "o1".into(),
        }),
    );
    (saga, e)
}

#[test]
fn happy_path_reserves_waits_commits_and_marks_paid() {
    let (mut saga, e) = reserved();
    assert_eq!(saga.phase, Phase::AwaitingPayment);
    assert!(matches!(
        e.order_actions[0],
        OrderAction::AwaitPayment { .. }
    ));
    assert!(saga.deadline.is_some());
    let e = step(
        &mut saga,
        SagaInput::PaymentConfirmed {
            payment_key: "pk".into(),
            amount: 13_000,
        },
    );
    assert_eq!(
        e.order_actions,
        vec![OrderAction::MarkPaid {
            payment_key: "pk".into()
        }]
    );
    assert!(
        matches!(&e.sent[0], Outgoing::Inventory(env) if matches!(env.body, InventoryCommand::CommitStock { .. }))
    );
    step(
        &mut saga,
        SagaInput::Replied(SagaReply::StockCommitted {
            reservation_id: "o1".into(),
        }),
    );
    assert_eq!(saga.phase, Phase::Confirmed);
    assert!(saga.pending.is_empty());
}

#[test]
fn a_redelivered_message_changes_nothing() {
    let mut saga = started();
    let reply = cmd(SagaInput::Replied(SagaReply::StockReserved {
        reservation_id: "o1".into(),
    }));
    for e in saga.handle(reply.clone()).unwrap() {
        saga.apply(&e);
    }
    assert!(saga.handle(reply).unwrap().is_empty(), "same message id");
    // The same reply under a new message id is no longer awaited.
    assert!(
        saga.handle(cmd(SagaInput::Replied(SagaReply::StockReserved {
            reservation_id: "o1".into()
        })))
        .unwrap()
        .is_empty()
    );
}

#[test]
fn out_of_stock_rejects_the_order() {
    let mut saga = started();
    let e = step(
        &mut saga,
        SagaInput::Replied(SagaReply::StockRejected {
            reservation_id: "o1".into(),
            reason: "only 1 left".into(),
        }),
    );
    assert_eq!(saga.phase, Phase::Ended);
    assert!(
        matches!(&e.order_actions[0], OrderAction::Reject { reason } if reason.contains("only 1 left"))
    );
}

fn rejected(reason: &str) -> SagaInput {
    SagaInput::Replied(SagaReply::StockRejected {
        reservation_id: "o1".into(),
        reason: reason.into(),
    })
}

/// The customer cancelled or the shop rejected the order (made already: `units_used`).
fn withdrawn(reason: &str, units_used: bool) -> SagaInput {
    SagaInput::OrderWithdrawn {
        reason: reason.into(),
        units_used,
    }
}

fn confirmed() -> SagaInput {
    SagaInput::PaymentConfirmed {
        payment_key: "pk".into(),
        amount: 13_000,
    }
}

#[test]
fn a_payment_that_beat_the_reservation_is_refunded_when_stock_runs_out() {
    let mut saga = started();
    step(&mut saga, confirmed());
    let e = step(&mut saga, rejected("only 1 left"));
    assert!(
        matches!(&e.order_actions[..], [OrderAction::Reject { reason }] if reason.contains("only 1 left"))
    );
    assert!(
        matches!(&e.sent[..], [Outgoing::Payment(env)] if matches!(env.body, PaymentCommand::RefundPayment { amount: None, .. })),
        "{:?}",
        e.sent
    );
    // The commit sent with the payment is moot; only the refund is awaited.
    let pending: Vec<&String> = saga.pending.keys().collect();
    assert_eq!(pending, ["refund:o1:refund"]);
    assert_eq!(saga.phase, Phase::Compensating);
}

#[test]
fn a_refused_commit_of_a_paid_order_rejects_and_refunds_it() {
    let (mut saga, _) = reserved();
    step(&mut saga, confirmed());
    assert!(saga.pending.contains_key("commit:o1"));
    // Inventory refuses a commit with the reply it gives a refused reserve.
    let e = step(&mut saga, rejected("reservation released"));
    assert!(e.answered.contains(&"commit:o1".to_owned()));
    assert!(
        matches!(&e.order_actions[..], [OrderAction::Reject { reason }] if reason.contains("no longer held"))
    );
    let pending: Vec<&String> = saga.pending.keys().collect();
    assert_eq!(
        pending,
        ["refund:o1:refund"],
        "refunded, commit not re-sent"
    );
    assert_eq!(saga.phase, Phase::Compensating);
    // Any other stray reply still changes nothing.
    assert!(saga.handle(cmd(rejected("again"))).unwrap().is_empty());
}

#[test]
fn a_commit_refused_after_the_saga_released_is_just_answered() {
    let (mut saga, _) = reserved();
    step(&mut saga, confirmed());
    // Cancelled before the commit was answered: the saga releases and refunds.
    step(&mut saga, withdrawn("changed my mind", false));
    assert!(saga.pending.contains_key("commit:o1"));
    let e = step(&mut saga, rejected("reservation released"));
    assert_eq!(e.answered, ["commit:o1"]);
    assert!(e.order_actions.is_empty() && e.sent.is_empty());
    assert!(!saga.pending.contains_key("commit:o1"));
    assert!(saga.pending.contains_key("refund:o1:refund"));
}

#[test]
fn declined_payment_releases_stock() {
    let (mut saga, _) = reserved();
    let e = step(
        &mut saga,
        SagaInput::PaymentFailed {
            reason: "REJECT_CARD_COMPANY".into(),
        },
    );
    assert!(
        matches!(&e.sent[0], Outgoing::Inventory(env) if matches!(env.body, InventoryCommand::ReleaseStock { .. }))
    );
    assert!(matches!(
        e.order_actions[0],
        OrderAction::FailPayment { .. }
    ));
}

#[test]
fn deadline_expires_the_order_and_late_payment_is_refunded() {
    let (mut saga, _) = reserved();
    assert!(
        saga.handle(cmd(SagaInput::Tick { now: Utc::now() }))
            .unwrap()
            .is_empty(),
        "not yet due"
    );
    let e = step(
        &mut saga,
        SagaInput::Tick {
            now: Utc::now() + Duration::minutes(11),
        },
    );
    assert_eq!(e.order_actions, vec![OrderAction::Expire]);
    assert!(
        matches!(&e.sent[0], Outgoing::Inventory(env) if matches!(env.body, InventoryCommand::ReleaseStock { .. }))
    );
    let e = step(
        &mut saga,
        SagaInput::PaymentConfirmed {
            payment_key: "pk".into(),
            amount: 13_000,
        },
    );
    assert!(
        matches!(&e.sent[0], Outgoing::Payment(env) if matches!(env.body, PaymentCommand::RefundPayment { .. }))
    );
}

#[test]
fn withdrawal_after_payment_releases_stock_and_refunds() {
    let (mut saga, _) = reserved();
    step(
        &mut saga,
        SagaInput::PaymentConfirmed {
            payment_key: "pk".into(),
            amount: 13_000,
        },
    );
    let e = step(&mut saga, withdrawn("customer cancelled", false));
    assert_eq!(e.sent.len(), 2);
    assert_eq!(saga.phase, Phase::Compensating);
    let e = step(&mut saga, refund_returned("o1:refund", 13_000));
    assert_eq!(
        e.order_actions,
        vec![OrderAction::MarkRefunded { amount: 13_000 }]
    );
    assert!(!saga.paid);
}

#[test]
fn withdrawal_while_reserving_releases_once_reserved() {
    let mut saga = started();
    let e = step(&mut saga, withdrawn("customer cancelled", false));
    assert!(e.sent.is_empty(), "nothing reserved yet");
    let e = step(
        &mut saga,
        SagaInput::Replied(SagaReply::StockReserved {
            reservation_id: "o1".into(),
        }),
    );
    assert!(
        matches!(&e.sent[0], Outgoing::Inventory(env) if matches!(env.body, InventoryCommand::ReleaseStock { .. }))
    );
    assert!(e.order_actions.is_empty());
}

fn paid() -> OrderSaga {
    let (mut saga, _) = reserved();
    step(
        &mut saga,
        SagaInput::PaymentConfirmed {
            payment_key: "pk".into(),
            amount: 13_000,
        },
    );
    step(
        &mut saga,
        SagaInput::Replied(SagaReply::StockCommitted {
            reservation_id: "o1".into(),
        }),
    );
    assert_eq!(saga.phase, Phase::Confirmed);
    saga
}

fn at_toss(balance: i64, units_used: bool) -> SagaInput {
    SagaInput::RefundedAtToss {
        amount: 13_000 - balance,
        balance,
        reason: "customer called".into(),
        units_used,
    }
}

/// The order change a full cancel at Toss (see [`at_toss`]) asks for.
fn refunded_at_toss() -> Vec<OrderAction> {
    vec![OrderAction::MarkRefundedAtToss {
        reason: "customer called".into(),
    }]
}

fn releases(e: &SagaAdvanced) -> bool {
    e.sent.iter().any(|out| {
        matches!(out, Outgoing::Inventory(env) if matches!(env.body, InventoryCommand::ReleaseStock { .. }))
    })
}

#[test]
fn a_full_cancel_at_toss_refunds_the_order_and_returns_unused_units() {
    let mut saga = paid();
    // A partial cancel is the payment's business: nothing changes.
    assert!(saga.handle(cmd(at_toss(5_000, false))).unwrap().is_empty());

    let e = step(&mut saga, at_toss(0, false));
    assert!(releases(&e), "units go back: {:?}", e.sent);
    assert_eq!(e.sent.len(), 1, "no refund of ours: the money is back");
    assert_eq!(e.order_actions, refunded_at_toss());
    assert_eq!(saga.phase, Phase::Compensating);
    assert!(!saga.paid);
    // Told again (another message about the same money): nothing more.
    assert!(saga.handle(cmd(at_toss(0, false))).unwrap().is_empty());
}

#[test]
fn a_full_cancel_at_toss_of_a_ready_order_keeps_its_units_sold() {
    let mut saga = paid();
    let e = step(&mut saga, at_toss(0, true));
    assert!(e.sent.is_empty(), "nothing to send: {:?}", e.sent);
    assert_eq!(e.order_actions, refunded_at_toss());
    assert_eq!(saga.phase, Phase::Confirmed);
    assert!(!saga.paid);
}

#[test]
fn a_made_order_rejected_is_refunded_and_its_units_stay_sold() {
    let mut saga = paid();
    let e = step(&mut saga, withdrawn("wrong cake at pick-up", true));
    assert!(
        matches!(&e.sent[..], [Outgoing::Payment(env)] if matches!(env.body, PaymentCommand::RefundPayment { .. })),
        "only the refund, no release: {:?}",
        e.sent
    );
    assert_eq!(saga.phase, Phase::Compensating);
    let e = step(&mut saga, refund_returned("o1:refund", 13_000));
    assert_eq!(
        e.order_actions,
        vec![OrderAction::MarkRefunded { amount: 13_000 }]
    );
    assert!(
        e.sent.is_empty() && saga.pending.is_empty(),
        "{:?}",
        saga.pending
    );
}

/// A paid saga whose order the shop then rejected: its release and refund are on their way.
fn refunding() -> OrderSaga {
    let mut saga = paid();
    let e = step(&mut saga, withdrawn("oven broke", false));
    assert_eq!(e.sent.len(), 2, "release and refund: {:?}", e.sent);
    assert!(saga.pending.contains_key("refund:o1:refund"));
    saga
}

#[test]
fn a_cancel_at_toss_while_the_saga_refunds_answers_its_refund() {
    let mut saga = refunding();

    let e = step(&mut saga, at_toss(0, false));
    assert!(e.sent.is_empty(), "already released: {:?}", e.sent);
    assert_eq!(e.answered, vec!["refund:o1:refund".to_owned()]);
    // The refund the saga asked for, as far as anyone can tell.
    assert_eq!(
        e.order_actions,
        vec![OrderAction::MarkRefunded { amount: 13_000 }]
    );
    assert!(!saga.pending.contains_key("refund:o1:refund"));
    assert!(
        saga.pending.contains_key("release:o1"),
        "the release still waits"
    );
    assert!(!saga.paid);
    // Our refund, failing at Toss now, is a stray reply.
    let late = saga
        .handle(cmd(SagaInput::Replied(SagaReply::RefundFailed {
            refund_id: "o1:refund".into(),
            code: "ALREADY_CANCELED_PAYMENT".into(),
            reason: "cancelled".into(),
            temporary: false,
        })))
        .unwrap();
    assert!(late.is_empty());
}

#[test]
fn a_cancel_at_toss_of_an_unpaid_order_changes_nothing() {
    let (saga, _) = reserved();
    assert!(saga.handle(cmd(at_toss(0, false))).unwrap().is_empty());
}

#[test]
fn an_order_refunded_at_toss_records_the_whole_total() {
    let mut o = fold(&placed());
    let at_toss = || OrderCommand::MarkRefundedAtToss {
        reason: "customer called".into(),
    };
    // Nothing paid: nothing to record.
    assert!(o.handle(at_toss()).unwrap().is_empty());
    pay(&mut o);
    make_ready(&mut o);
    run(&mut o, [OrderCommand::Complete]);
    let events = o.handle(at_toss()).unwrap();
    let [OrderEvent::Changed(change)] = events.as_slice() else {
        panic!("one status change: {events:?}");
    };
    assert_eq!(change.status, OrderStatus::Refunded);
    assert_eq!(change.refunded, Some(o.total));
    assert_eq!(
        change.reason.as_deref(),
        Some("payment cancelled at Toss: customer called")
    );
    o.apply(&events[0]);
    assert!(!o.paid);
    assert!(o.handle(at_toss()).unwrap().is_empty(), "recorded once");
}

#[test]
fn a_refund_refused_for_good_shows_on_the_order() {
    let mut saga = refunding();
    let e = step(
        &mut saga,
        SagaInput::Replied(SagaReply::RefundFailed {
            refund_id: "o1:refund".into(),
            code: "NOT_CANCELABLE_PAYMENT".into(),
            reason: "cannot be cancelled".into(),
            temporary: false,
        }),
    );
    assert_eq!(
        e.order_actions,
        vec![OrderAction::MarkRefundFailed {
            reason: "NOT_CANCELABLE_PAYMENT: cannot be cancelled".into()
        }]
    );
    assert!(saga.paid, "the money is still taken");

    // The order: paid, rejected, then its refund failed; a refund later still settles it.
    let mut o = fold(&placed());
    pay(&mut o);
    run(
        &mut o,
        [
            OrderCommand::Reject {
                reason: "oven broke".into(),
            },
            toss_refused_the_refund(),
        ],
    );
    assert_eq!(o.status, OrderStatus::RefundFailed);
    assert_eq!(
        o.timeline.last().unwrap().reason.as_deref(),
        Some("refund failed: NOT_CANCELABLE_PAYMENT: cannot be cancelled")
    );
    assert!(o.paid && !o.settled(), "still to be refunded");
    assert!(
        o.handle(toss_refused_the_refund()).unwrap().is_empty(),
        "recorded once"
    );
    for e in o
        .handle(OrderCommand::MarkRefunded { amount: o.total })
        .unwrap()
    {
        o.apply(&e);
    }
    assert_eq!(o.status, OrderStatus::Refunded);
    assert!(o.settled());
    // A payment that came after the order was cancelled was never marked on it; when its
    // refund fails, the order shows the money held all the same.
    let mut late = fold(&placed());
    for cmd in [
        OrderCommand::Cancel {
            reason: "changed my mind".into(),
        },
        toss_refused_the_refund(),
    ] {
        for e in late.handle(cmd).unwrap() {
            late.apply(&e);
        }
    }
    assert_eq!(late.status, OrderStatus::RefundFailed);
    assert!(late.paid);
    // Nothing else ends there: a placed order cannot.
    assert!(fold(&placed()).handle(toss_refused_the_refund()).is_err());
}

fn refund_asked(e: &SagaAdvanced) -> Option<String> {
    e.sent.iter().find_map(|out| match out {
        Outgoing::Payment(env) => match &env.body {
            PaymentCommand::RefundPayment { refund_id, .. } => Some(refund_id.clone()),
        },
        Outgoing::Inventory(_) => None,
    })
}

fn refund_returned(refund_id: &str, amount: i64) -> SagaInput {
    SagaInput::Replied(SagaReply::PaymentRefunded {
        refund_id: refund_id.into(),
        amount,
    })
}

fn refund_refused(refund_id: &str) -> SagaInput {
    SagaInput::Replied(SagaReply::RefundFailed {
        refund_id: refund_id.into(),
        code: "NOT_CANCELABLE_PAYMENT".into(),
        reason: "cannot be cancelled".into(),
        temporary: false,
    })
}

#[test]
fn staff_retry_a_refused_refund_under_a_new_refund_id() {
    // Nothing to retry while the first refund is under way.
    let mut saga = refunding();
    assert!(saga.handle(cmd(SagaInput::RetryRefund)).unwrap().is_empty());
    step(&mut saga, refund_refused("o1:refund"));

    // A retry asks Toss again, as a new request (its own id, so its own idempotency key).
    let retry = cmd(SagaInput::RetryRefund);
    let mut events = saga.handle(retry.clone()).unwrap();
    assert_eq!(events.len(), 1);
    let e = events.remove(0);
    saga.apply(&e);
    assert_eq!(refund_asked(&e).as_deref(), Some("o1:refund:2"));
    assert_eq!(e.order_actions, vec![OrderAction::RetryRefund]);
    let Some(Outgoing::Payment(env)) = e.sent.first() else {
        panic!("a refund: {:?}", e.sent);
    };
    assert!(
        matches!(&env.body, PaymentCommand::RefundPayment { reason, .. } if reason == "oven broke"),
        "Toss is told the first ask's reason: {:?}",
        env.body
    );
    assert!(saga.pending.contains_key("refund:o1:refund:2"));
    assert!(
        saga.handle(retry).unwrap().is_empty(),
        "one request, one retry"
    );
    assert!(
        saga.handle(cmd(SagaInput::RetryRefund)).unwrap().is_empty(),
        "nothing to retry while the retry is under way"
    );

    // Refused again, retried again: a third id; this time Toss refunds.
    let e = step(&mut saga, refund_refused("o1:refund:2"));
    assert_eq!(
        e.order_actions,
        vec![OrderAction::MarkRefundFailed {
            reason: "NOT_CANCELABLE_PAYMENT: cannot be cancelled".into()
        }]
    );
    let e = step(&mut saga, SagaInput::RetryRefund);
    assert_eq!(refund_asked(&e).as_deref(), Some("o1:refund:3"));
    let e = step(&mut saga, refund_returned("o1:refund:3", 13_000));
    assert_eq!(
        e.order_actions,
        vec![OrderAction::MarkRefunded { amount: 13_000 }]
    );
    assert!(!saga.paid);
    assert!(
        saga.pending.keys().all(|k| k.starts_with("release:")),
        "only the release is still unanswered: {:?}",
        saga.pending.keys()
    );
    assert!(
        saga.handle(cmd(SagaInput::RetryRefund)).unwrap().is_empty(),
        "nothing held, nothing to retry"
    );
    // An unpaid saga has nothing to retry either.
    assert!(
        started()
            .handle(cmd(SagaInput::RetryRefund))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_saga_knows_its_own_refunds_by_id() {
    use order::saga::{is_saga_refund, refund_attempt_id};
    assert_eq!(refund_attempt_id("o1", 1), "o1:refund");
    assert_eq!(refund_attempt_id("o1", 2), "o1:refund:2");
    for id in ["o1:refund", "o1:refund:2", "o1:refund:17"] {
        assert!(is_saga_refund("o1", id), "{id}");
    }
    for id in [
        "toss-tx_1",
        "o1:refund:",
        "o1:refund:x",
        "o1:refunds",
        "o2:refund",
        "o1",
    ] {
        assert!(!is_saga_refund("o1", id), "{id}");
    }
}

#[test]
fn a_retried_refund_takes_the_order_back_to_refunding() {
    let mut o = fold(&placed());
    // Only a refused refund can be retried.
    assert!(o.handle(OrderCommand::RetryRefund).is_err());
    pay(&mut o);
    run(
        &mut o,
        [OrderCommand::Reject {
            reason: "oven broke".into(),
        }],
    );
    assert!(o.handle(OrderCommand::RetryRefund).is_err());
    run(
        &mut o,
        [toss_refused_the_refund(), OrderCommand::RetryRefund],
    );
    // Back to REJECTED (the status its refund is for), paid, not settled: the subscription
    // goes on to the retry's outcome.
    assert_eq!(o.status, OrderStatus::Rejected);
    assert_eq!(
        o.timeline.last().unwrap().reason.as_deref(),
        Some(order::order::REFUND_RETRIED)
    );
    assert!(o.paid && !o.settled());
    // Refused again, then refunded.
    let total = o.total;
    run(
        &mut o,
        [
            toss_refused_the_refund(),
            OrderCommand::MarkRefunded { amount: total },
        ],
    );
    assert_eq!(o.status, OrderStatus::Refunded);
    let refusals = o
        .timeline
        .iter()
        .filter(|c| c.status == OrderStatus::RefundFailed)
        .count();
    assert_eq!(refusals, 2);
}

#[test]
fn a_saga_refund_that_found_nothing_left_waits_for_the_cancel_at_toss() {
    let mut saga = refunding();
    // The payment service answers: nothing was left (a console cancel emptied it).
    let e = step(&mut saga, refund_returned("o1:refund", 0));
    assert_eq!(e.answered, vec!["refund:o1:refund".to_owned()]);
    assert!(e.order_actions.is_empty(), "not refunded by the saga");
    assert!(
        saga.paid,
        "the money is still held as far as the saga knows"
    );
    // The console cancel's relayed event settles the order.
    let e = step(&mut saga, at_toss(0, false));
    assert!(e.sent.is_empty(), "already released: {:?}", e.sent);
    assert_eq!(e.order_actions, refunded_at_toss());
    assert!(!saga.paid);
}

#[test]
fn a_late_payments_refund_shows_on_the_order() {
    // The payment came after the order expired: never marked on it, but refunded.
    let mut o = fold(&placed());
    for e in o.handle(OrderCommand::Expire).unwrap() {
        o.apply(&e);
    }
    assert!(!o.paid);
    for e in o
        .handle(OrderCommand::MarkRefunded { amount: 13_000 })
        .unwrap()
    {
        o.apply(&e);
    }
    assert_eq!(o.status, OrderStatus::Refunded);
    assert_eq!(
        o.timeline.last().unwrap().reason.as_deref(),
        Some("late payment refunded")
    );
    assert!(
        o.handle(OrderCommand::MarkRefunded { amount: 13_000 })
            .unwrap()
            .is_empty(),
        "recorded once"
    );
    // Or refunded at Toss (the console) before the saga's refund: shown all the same.
    let mut at_toss = fold(&placed());
    for cmd in [
        OrderCommand::Expire,
        OrderCommand::MarkRefundedAtToss {
            reason: "customer called".into(),
        },
    ] {
        for e in at_toss.handle(cmd).unwrap() {
            at_toss.apply(&e);
        }
    }
    assert_eq!(at_toss.status, OrderStatus::Refunded);
    // An order still under way was not refunded by the saga.
    let pending = fold(&placed());
    assert!(
        pending
            .handle(OrderCommand::MarkRefunded { amount: 13_000 })
            .is_err()
    );
}

fn refused_for_now(refund_id: &str) -> SagaInput {
    SagaInput::Replied(SagaReply::RefundFailed {
        refund_id: refund_id.into(),
        code: "PROVIDER_ERROR".into(),
        reason: "try again in a few minutes".into(),
        temporary: true,
    })
}

#[test]
fn a_refund_refused_for_now_is_tried_again_by_the_clock_then_left_to_staff() {
    let mut saga = refunding();
    let e = step(&mut saga, refused_for_now("o1:refund"));
    assert!(e.order_actions.is_empty(), "not for staff yet: {e:?}");
    let due = saga.deadline.expect("a retry is scheduled");
    assert!(due > Utc::now() + Duration::minutes(1));
    // Not before it is due.
    assert!(
        saga.handle(cmd(SagaInput::Tick { now: Utc::now() }))
            .unwrap()
            .is_empty()
    );
    let e = step(&mut saga, SagaInput::Tick { now: due });
    assert_eq!(refund_asked(&e).as_deref(), Some("o1:refund:2"));
    assert_eq!(saga.deadline, None);
    step(&mut saga, refused_for_now("o1:refund:2"));
    let due = saga.deadline.unwrap();
    let e = step(&mut saga, SagaInput::Tick { now: due });
    assert_eq!(refund_asked(&e).as_deref(), Some("o1:refund:3"));
    // The third refusal is staff's: REFUND_FAILED, and no more retries of the clock's.
    let e = step(&mut saga, refused_for_now("o1:refund:3"));
    assert_eq!(
        e.order_actions,
        vec![OrderAction::MarkRefundFailed {
            reason: "PROVIDER_ERROR: try again in a few minutes".into()
        }]
    );
    assert_eq!(saga.deadline, None);
    // Staff retry: the clock may again try up to three asks in all.
    let e = step(&mut saga, SagaInput::RetryRefund);
    assert_eq!(refund_asked(&e).as_deref(), Some("o1:refund:4"));
    let e = step(&mut saga, refused_for_now("o1:refund:4"));
    assert!(e.order_actions.is_empty(), "{e:?}");
    for attempt in [5, 6] {
        let due = saga.deadline.expect("a retry is scheduled");
        let e = step(&mut saga, SagaInput::Tick { now: due });
        let id = format!("o1:refund:{attempt}");
        assert_eq!(refund_asked(&e).as_deref(), Some(id.as_str()));
        let e = step(&mut saga, refused_for_now(&id));
        let given_up = !e.order_actions.is_empty();
        assert_eq!(given_up, attempt == 6, "ask {attempt}: {e:?}");
    }
    assert_eq!(saga.deadline, None, "three asks since the staff retry");
}

#[test]
fn a_deadline_that_outlived_its_purpose_is_cleared() {
    // Refused for now, then refunded another way before the retry was due.
    let mut saga = refunding();
    step(&mut saga, refused_for_now("o1:refund"));
    let due = saga.deadline.unwrap();
    step(&mut saga, at_toss(0, false));
    assert!(!saga.paid);
    let e = step(&mut saga, SagaInput::Tick { now: due });
    assert!(e.sent.is_empty() && e.order_actions.is_empty(), "{e:?}");
    assert_eq!(saga.deadline, None);
}
