//! The order saga: reserve stock → wait for payment → commit stock and mark paid, with
//! compensation (release stock, refund) on failure, cancellation, rejection and timeout.
//!
//! The saga is an event-sourced aggregate (stream `saga-order:{order_id}`) driven by inputs:
//! order and payment events, handlers' replies, and timeouts. Each input carries a message id;
//! an input seen before changes nothing, so redelivery and replays are harmless. Deciding is
//! pure (`handle`); the runner carries out the decision's effects: order commands (idempotent
//! by status) and bus commands (idempotent by reservation/refund id, re-sent until answered).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use contracts::{Envelope, InventoryCommand, PaymentCommand, SagaReply, StockLine};
use eventstore::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where the saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not started.
    #[default]
    New,
    /// Waiting for inventory to reserve.
    Reserving,
    /// Stock reserved; waiting for the customer's payment.
    AwaitingPayment,
    /// Paid; committing stock.
    Committing,
    /// Paid and stock sold: the happy path is done.
    Confirmed,
    /// Undoing: releasing stock and/or refunding.
    Compensating,
    /// Finished without a sale (rejected for stock).
    Ended,
}

/// A command the saga sends over the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "to", content = "message")]
pub enum Outgoing {
    /// To inventory.
    Inventory(Envelope<InventoryCommand>),
    /// To payment.
    Payment(Envelope<PaymentCommand>),
}

impl Outgoing {
    /// The key a reply answers this by: `reserve:`, `release:`, `commit:` or `refund:` plus the id.
    pub fn answer_key(&self) -> String {
        match self {
            Outgoing::Inventory(e) => match &e.body {
                InventoryCommand::ReserveStock { reservation_id, .. } => {
                    format!("reserve:{reservation_id}")
                }
                InventoryCommand::ReleaseStock { reservation_id } => {
                    format!("release:{reservation_id}")
                }
                InventoryCommand::CommitStock { reservation_id } => {
                    format!("commit:{reservation_id}")
                }
            },
            Outgoing::Payment(e) => match &e.body {
                PaymentCommand::RefundPayment { refund_id, .. } => format!("refund:{refund_id}"),
            },
        }
    }
}

/// The answer key of a reply (matches [`Outgoing::answer_key`]).
pub fn reply_key(reply: &SagaReply) -> String {
    match reply {
        SagaReply::StockReserved { reservation_id }
        | SagaReply::StockRejected { reservation_id, .. } => {
            format!("reserve:{reservation_id}")
        }
        SagaReply::StockReleased { reservation_id } => format!("release:{reservation_id}"),
        SagaReply::StockCommitted { reservation_id } => format!("commit:{reservation_id}"),
        SagaReply::PaymentRefunded { refund_id, .. }
        | SagaReply::RefundFailed { refund_id, .. } => {
            format!("refund:{refund_id}")
        }
        // Not an answer to a command (no command waits for it): the orchestrator feeds it to
        // the saga as [`SagaInput::PaymentConfirmed`].
        SagaReply::PaymentConfirmed { payment_key, .. } => format!("paid:{payment_key}"),
    }
}

/// A change the saga asks of the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OrderAction {
    /// Stock reserved: request payment until `expires_at`.
    AwaitPayment {
        /// Deadline.
        expires_at: DateTime<Utc>,
    },
    /// Payment confirmed.
    MarkPaid {
        /// Toss's key.
        payment_key: String,
    },
    /// Rejected for stock.
    Reject {
        /// Why.
        reason: String,
    },
    /// Payment failed.
    FailPayment {
        /// Why.
        reason: String,
    },
    /// Payment did not arrive in time.
    Expire,
    /// Money returned.
    MarkRefunded {
        /// KRW.
        amount: i64,
    },
    /// The whole payment was cancelled at Toss, outside the platform.
    MarkRefundedAtToss {
        /// Toss's cancel reason.
        reason: String,
    },
    /// Toss refused the saga's refund for good: the order shows it to staff.
    MarkRefundFailed {
        /// Toss's code and message.
        reason: String,
    },
    /// Staff asked for a refund Toss refused to be tried again: the order is refunding again.
    RetryRefund,
}

/// What drives the saga.
#[derive(Debug, Clone, PartialEq)]
pub enum SagaInput {
    /// The order was placed.
    OrderPlaced {
        /// What to reserve.
        lines: Vec<StockLine>,
        /// KRW.
        total: i64,
    },
    /// A handler answered.
    Replied(SagaReply),
    /// Toss confirmed the payment.
    PaymentConfirmed {
        /// Toss's key.
        payment_key: String,
        /// KRW.
        amount: i64,
    },
    /// The payment failed.
    PaymentFailed {
        /// Why.
        reason: String,
    },
    /// Money was returned at Toss without the saga asking (a cancel in the Toss console).
    RefundedAtToss {
        /// KRW this refund returned.
        amount: i64,
        /// KRW left of the payment afterwards (0: all of it was returned).
        balance: i64,
        /// Toss's cancel reason.
        reason: String,
        /// Whether the order was made (it reached READY; the orchestrator reads it as the saga
        /// steps): its units were used, so they stay sold.
        units_used: bool,
    },
    /// The customer cancelled or the shop rejected the order.
    OrderWithdrawn {
        /// Why.
        reason: String,
        /// Whether the order was made (READY) when the shop rejected it (the orchestrator reads
        /// it as the saga steps): its units were used, so they stay sold.
        units_used: bool,
    },
    /// Staff asked for the refund Toss refused to be tried again.
    RetryRefund,
    /// The clock passed a deadline.
    Tick {
        /// Now.
        now: DateTime<Utc>,
    },
}

/// An input with the id of the message that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaCommand {
    /// Unique per message; the saga ignores ids it has seen.
    pub message_id: Uuid,
    /// The order.
    pub order_id: String,
    /// What happened.
    pub input: SagaInput,
    /// How long to wait for payment.
    pub payment_timeout: Duration,
    /// How long to wait before trying again a refund Toss refused for now.
    pub refund_retry_after: Duration,
}

/// The one kind of saga event: what an input changed and which effects it calls for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaAdvanced {
    /// The message that caused it.
    pub cause: Uuid,
    /// The order.
    pub order_id: String,
    /// The phase entered.
    pub phase: Phase,
    /// The clock's next deadline: the payment's while awaiting payment, else when a refund
    /// Toss refused for now is asked for again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// Lines, when starting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<StockLine>,
    /// Whether money is held (set on payment, cleared on refund).
    pub paid: bool,
    /// Toss's key, once paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_key: Option<String>,
    /// Commands sent with this step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<Outgoing>,
    /// Answer keys of commands this step received replies for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answered: Vec<String>,
    /// Order changes this step calls for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_actions: Vec<OrderAction>,
    /// When.
    pub at: DateTime<Utc>,
}

impl DomainEvent for SagaAdvanced {
    fn event_type(&self) -> &'static str {
        "SagaAdvanced"
    }
}

/// The saga's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderSaga {
    /// The order.
    pub order_id: String,
    /// Current phase.
    pub phase: Phase,
    /// What was reserved.
    pub lines: Vec<StockLine>,
    /// The clock's next deadline: the payment's, or a refund's retry.
    pub deadline: Option<DateTime<Utc>>,
    /// Whether money is held.
    pub paid: bool,
    /// Toss's key.
    pub payment_key: Option<String>,
    /// Commands sent and not answered yet, by answer key.
    pub pending: BTreeMap<String, Outgoing>,
    /// Messages already handled (most recent 256).
    pub seen: Vec<Uuid>,
    /// Refunds asked for so far (each retry asks under a new refund id).
    #[serde(default)]
    pub refunds_asked: u32,
    /// `refunds_asked` when staff last had a refund retried: the clock's own retries count
    /// from there.
    #[serde(default)]
    pub refunds_before_staff: u32,
    /// Why the money goes back, as first asked (a retry tells Toss the same).
    #[serde(default)]
    pub refund_reason: String,
}

/// The id of the refund the saga of `order_id` asks for (the payment records it under this id).
pub fn refund_id(order_id: &str) -> String {
    format!("{order_id}:refund")
}

/// The id of the saga's `attempt`th refund of `order_id` (1: [`refund_id`]; a retry, which
/// Toss must see as a new request, gets its own id and idempotency key).
pub fn refund_attempt_id(order_id: &str, attempt: u32) -> String {
    if attempt <= 1 {
        refund_id(order_id)
    } else {
        format!("{}:{attempt}", refund_id(order_id))
    }
}

/// Whether `refund_id` is one the saga of `order_id` asked for (a first refund or a retry).
pub fn is_saga_refund(order_id: &str, refund_id: &str) -> bool {
    refund_id
        .strip_prefix(order_id)
        .and_then(|rest| rest.strip_prefix(":refund"))
        .is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(':')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The answer key of the commit of an order's reservation (see [`Outgoing::answer_key`]).
fn commit_key(order_id: &str) -> String {
    format!("commit:{order_id}")
}

/// The saga never refuses an input; unexpected ones change nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saga error: {0}")]
pub struct SagaError(String);

const SEEN_KEPT: usize = 256;

/// Refunds the saga asks for on its own before a refusal Toss calls temporary needs staff.
pub const AUTO_REFUND_ATTEMPTS: u32 = 3;

impl OrderSaga {
    fn inventory(&self, body: InventoryCommand) -> Outgoing {
        Outgoing::Inventory(Envelope::new(self.order_id.clone(), body))
    }

    fn release(&self) -> Outgoing {
        self.inventory(InventoryCommand::ReleaseStock {
            reservation_id: self.order_id.clone(),
        })
    }

    /// Rejects the order for want of stock (`why`). Money already taken goes back, and a commit
    /// still waiting is moot.
    fn reject_for_stock(&self, next: &mut SagaAdvanced, why: String) {
        next.phase = Phase::Ended;
        if self.paid {
            next.phase = Phase::Compensating;
            let commit = commit_key(&self.order_id);
            if self.pending.contains_key(&commit) && !next.answered.contains(&commit) {
                next.answered.push(commit);
            }
            next.sent.push(self.refund(&why));
        }
        next.order_actions.push(OrderAction::Reject { reason: why });
    }

    /// A retry of the refund Toss refused, with the first ask's reason.
    fn refund_again(&self) -> Outgoing {
        let reason = if self.refund_reason.is_empty() {
            "refund"
        } else {
            self.refund_reason.as_str()
        };
        self.refund(reason)
    }

    /// A refund of what is held: the one under way again, else a new one (under a new refund
    /// id when one was asked for before and refused).
    fn refund(&self, reason: &str) -> Outgoing {
        let attempt = if self.pending_refund().is_some() {
            self.refunds_asked.max(1)
        } else {
            self.refunds_asked + 1
        };
        Outgoing::Payment(Envelope::new(
            self.order_id.clone(),
            PaymentCommand::RefundPayment {
                refund_id: refund_attempt_id(&self.order_id, attempt),
                amount: None,
                reason: reason.to_owned(),
            },
        ))
    }

    /// The answer key of the refund the saga still waits on, if any.
    fn pending_refund(&self) -> Option<String> {
        self.pending
            .iter()
            .find(|(_, out)| {
                matches!(out, Outgoing::Payment(e)
                    if matches!(e.body, PaymentCommand::RefundPayment { .. }))
            })
            .map(|(key, _)| key.clone())
    }
}

impl Aggregate for OrderSaga {
    const CATEGORY: &'static str = "saga";
    type Command = SagaCommand;
    type Event = SagaAdvanced;
    type Error = SagaError;

    fn handle(&self, cmd: SagaCommand) -> Result<Vec<SagaAdvanced>, SagaError> {
        if self.seen.contains(&cmd.message_id) {
            return Ok(vec![]);
        }
        let now = Utc::now();
        let mut next = SagaAdvanced {
            cause: cmd.message_id,
            order_id: cmd.order_id.clone(),
            phase: self.phase,
            deadline: self.deadline,
            lines: vec![],
            paid: self.paid,
            payment_key: self.payment_key.clone(),
            sent: vec![],
            answered: vec![],
            order_actions: vec![],
            at: now,
        };
        let mut me = self.clone();
        me.order_id = cmd.order_id.clone();
        use Phase as P;
        match cmd.input {
            SagaInput::OrderPlaced { lines, .. } => {
                if self.phase != P::New {
                    return Ok(vec![]);
                }
                me.lines = lines.clone();
                next.lines = lines.clone();
                next.phase = P::Reserving;
                next.sent.push(me.inventory(InventoryCommand::ReserveStock {
                    reservation_id: cmd.order_id.clone(),
                    lines,
                }));
            }
            SagaInput::Replied(reply) => {
                let key = reply_key(&reply);
                if !self.pending.contains_key(&key) {
                    // Inventory answers a commit it refuses (the reservation is gone) the way
                    // it answers a refused reserve; re-sending the commit cannot change that.
                    let commit = commit_key(&cmd.order_id);
                    let SagaReply::StockRejected { reason, .. } = &reply else {
                        return Ok(vec![]); // a duplicate or stray reply
                    };
                    if !self.pending.contains_key(&commit) {
                        return Ok(vec![]);
                    }
                    next.answered.push(commit);
                    if matches!(self.phase, P::Compensating | P::Ended) {
                        // The saga released the units itself; the commit is moot.
                        tracing::debug!(order_id = %cmd.order_id, reason, "commit refused after the release");
                        return Ok(vec![next]);
                    }
                    // Paid, but the units are no longer held for it: like running out of
                    // stock, the order is rejected and the money goes back.
                    tracing::error!(order_id = %cmd.order_id, reason, "stock commit refused; the order is rejected and refunded");
                    me.reject_for_stock(&mut next, format!("stock no longer held: {reason}"));
                    return Ok(vec![next]);
                }
                next.answered.push(key);
                match reply {
                    SagaReply::StockReserved { .. } => match self.phase {
                        P::Reserving => {
                            let deadline = now + cmd.payment_timeout;
                            next.phase = P::AwaitingPayment;
                            next.deadline = Some(deadline);
                            next.order_actions.push(OrderAction::AwaitPayment {
                                expires_at: deadline,
                            });
                        }
                        // Withdrawn while reserving: give the units back.
                        P::Compensating | P::Ended => next.sent.push(me.release()),
                        _ => {}
                    },
                    SagaReply::StockRejected { reason, .. } => {
                        me.reject_for_stock(&mut next, format!("out of stock: {reason}"));
                    }
                    SagaReply::StockCommitted { .. } => {
                        if self.phase == P::Committing {
                            next.phase = P::Confirmed;
                        }
                    }
                    SagaReply::StockReleased { .. } | SagaReply::PaymentConfirmed { .. } => {}
                    // Nothing was left: a cancel at Toss returned it all, and its relayed event
                    // (`RefundedAtToss`) settles the order.
                    SagaReply::PaymentRefunded { amount: 0, .. } => {}
                    SagaReply::PaymentRefunded { amount, .. } => {
                        next.paid = false;
                        next.order_actions
                            .push(OrderAction::MarkRefunded { amount });
                    }
                    SagaReply::RefundFailed {
                        code,
                        reason,
                        temporary,
                        ..
                    } => {
                        let asked = self.refunds_asked.saturating_sub(self.refunds_before_staff);
                        if temporary && asked < AUTO_REFUND_ATTEMPTS {
                            // Toss asked to try again later: the clock does, as a new refund.
                            tracing::warn!(order_id = %cmd.order_id, code, reason, "refund refused for now; trying again later");
                            next.deadline = Some(now + cmd.refund_retry_after);
                        } else {
                            tracing::error!(order_id = %cmd.order_id, code, reason, "refund failed; needs an operator");
                            next.order_actions.push(OrderAction::MarkRefundFailed {
                                reason: format!("{code}: {reason}"),
                            });
                        }
                    }
                }
            }
            SagaInput::PaymentConfirmed { payment_key, .. } => {
                if self.paid {
                    return Ok(vec![]);
                }
                next.paid = true;
                next.payment_key = Some(payment_key.clone());
                match self.phase {
                    P::AwaitingPayment | P::Reserving => {
                        next.phase = P::Committing;
                        next.deadline = None;
                        next.order_actions
                            .push(OrderAction::MarkPaid { payment_key });
                        next.sent.push(me.inventory(InventoryCommand::CommitStock {
                            reservation_id: cmd.order_id.clone(),
                        }));
                    }
                    // Paid after expiry, cancellation or rejection: return the money.
                    _ => next
                        .sent
                        .push(me.refund("order no longer valid when payment arrived")),
                }
            }
            SagaInput::PaymentFailed { reason } => {
                if !matches!(self.phase, P::AwaitingPayment | P::Reserving) {
                    return Ok(vec![]);
                }
                next.phase = P::Compensating;
                next.deadline = None;
                next.sent.push(me.release());
                next.order_actions.push(OrderAction::FailPayment {
                    reason: format!("payment failed: {reason}"),
                });
            }
            SagaInput::RefundedAtToss {
                amount,
                balance,
                reason,
                units_used,
            } => {
                // A partial cancel is the payment's business; the order stands.
                if !self.paid || balance > 0 {
                    return Ok(vec![]);
                }
                next.paid = false;
                if let Some(ours) = self.pending_refund() {
                    // The saga was refunding: this is most likely its own cancel, seen by
                    // Toss's webhook before the payment service recorded it under the saga's id
                    // (else someone beat it to it); either way nothing is left to return, and
                    // the order records it as the saga's refund (this cancel's amount).
                    next.answered.push(ours);
                    next.order_actions
                        .push(OrderAction::MarkRefunded { amount });
                } else {
                    // Like a rejection, unless the goods were made: the units go back.
                    if matches!(self.phase, P::Committing | P::Confirmed) && !units_used {
                        next.phase = P::Compensating;
                        next.sent.push(me.release());
                    }
                    next.order_actions
                        .push(OrderAction::MarkRefundedAtToss { reason });
                }
            }
            SagaInput::OrderWithdrawn { reason, units_used } => {
                if matches!(self.phase, P::New | P::Compensating | P::Ended) {
                    return Ok(vec![]);
                }
                next.phase = P::Compensating;
                next.deadline = None;
                if self.phase != P::Reserving && !units_used {
                    // Reserved or committed units go back; while reserving, the reply triggers it.
                    next.sent.push(me.release());
                }
                if self.paid {
                    next.sent.push(me.refund(&reason));
                }
            }
            SagaInput::RetryRefund => {
                // Only money still held, with no refund under way: the last one was refused.
                if !self.paid || self.pending_refund().is_some() || self.refunds_asked == 0 {
                    return Ok(vec![]);
                }
                next.phase = P::Compensating;
                next.deadline = None;
                next.sent.push(me.refund_again());
                next.order_actions.push(OrderAction::RetryRefund);
            }
            SagaInput::Tick { now } => {
                if self.deadline.is_none_or(|d| d > now) {
                    return Ok(vec![]);
                }
                next.deadline = None;
                if self.phase == P::AwaitingPayment {
                    next.phase = P::Compensating;
                    next.sent.push(me.release());
                    next.order_actions.push(OrderAction::Expire);
                } else if self.paid && self.pending_refund().is_none() && self.refunds_asked > 0 {
                    // A refund Toss refused for now is due again.
                    next.sent.push(me.refund_again());
                }
                // Otherwise the deadline outlived what it was for: it is cleared.
            }
        }
        Ok(vec![next])
    }

    fn apply(&mut self, e: &SagaAdvanced) {
        self.order_id = e.order_id.clone();
        self.phase = e.phase;
        self.deadline = e.deadline;
        self.paid = e.paid;
        self.payment_key = e.payment_key.clone();
        if !e.lines.is_empty() {
            self.lines = e.lines.clone();
        }
        for key in &e.answered {
            self.pending.remove(key);
        }
        if e.order_actions.contains(&OrderAction::RetryRefund) {
            self.refunds_before_staff = self.refunds_asked;
        }
        for out in &e.sent {
            let key = out.answer_key();
            if let Outgoing::Payment(env) = out
                && let PaymentCommand::RefundPayment { reason, .. } = &env.body
                && !self.pending.contains_key(&key)
            {
                self.refunds_asked += 1;
                if self.refund_reason.is_empty() {
                    self.refund_reason.clone_from(reason);
                }
            }
            self.pending.insert(key, out.clone());
        }
        self.seen.push(e.cause);
        if self.seen.len() > SEEN_KEPT {
            self.seen.remove(0);
        }
    }
}
