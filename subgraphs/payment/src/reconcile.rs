//! Reconciliation with Toss: bring a recorded payment in line with what Toss says about it
//! (used by webhooks). Only Toss's answer to a lookup is trusted, never the caller's claims;
//! every step is idempotent, so the same notification may arrive any number of times.

use crate::error::PaymentError;
use crate::payment::{PaymentCommand, PaymentStatus};
use crate::service::{PaymentService, check_order_id, metadata, observed_refunds};
use crate::toss::{TossStatus, codes};

/// What a reconciliation with Toss did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// New facts were recorded.
    Recorded {
        /// How many events.
        events: usize,
    },
    /// Toss's state was already recorded.
    Unchanged,
    /// The payment is not one of ours to record.
    Ignored(&'static str),
    /// Toss approved a payment the order cannot take (the order's payment failed, or another
    /// payment paid it): it was cancelled at Toss.
    Voided,
}

impl PaymentService {
    /// Brings the recorded payment in line with what Toss says about `payment_key` (fetched
    /// from Toss, never taken from the caller). `order_id`, when given, must match Toss's.
    /// Cancels are recorded in the order's refund turn, after any refund under way.
    #[tracing::instrument(skip_all)]
    pub async fn reconcile(
        &self,
        order_id: Option<&str>,
        payment_key: &str,
    ) -> Result<Reconciled, PaymentError> {
        self.reconcile_with(order_id, payment_key, false).await
    }

    /// Like [`PaymentService::reconcile`], for a caller that holds the order's refund turn.
    pub(crate) async fn reconcile_in_turn(
        &self,
        order_id: Option<&str>,
        payment_key: &str,
    ) -> Result<Reconciled, PaymentError> {
        self.reconcile_with(order_id, payment_key, true).await
    }

    async fn reconcile_with(
        &self,
        order_id: Option<&str>,
        payment_key: &str,
        in_turn: bool,
    ) -> Result<Reconciled, PaymentError> {
        let paid = match self.inner.toss.get(payment_key).await {
            Ok(paid) => paid,
            Err(err) if err.status == Some(404) || err.code == codes::INVALID_REQUEST => {
                return Ok(Reconciled::Ignored("toss does not know this payment"));
            }
            Err(err) => return Err(err.into()),
        };
        if order_id.is_some_and(|id| id != paid.order_id) {
            return Ok(Reconciled::Ignored("the order id does not match toss's"));
        }
        let order_id = paid.order_id.as_str();
        if check_order_id(order_id).is_err() {
            return Ok(Reconciled::Ignored("not an order id of ours"));
        }
        let loaded = self.inner.payments.load(order_id).await?;
        let mut state = loaded.state;
        let before = loaded.version;
        let metadata = metadata(order_id, None);
        if state.status == PaymentStatus::New {
            let Some(order) = self.inner.payable.get(order_id).await? else {
                return Ok(Reconciled::Ignored("no order of ours awaits this payment"));
            };
            state = self
                .inner
                .payments
                .execute(
                    order_id,
                    PaymentCommand::Request {
                        order_id: order.order_id,
                        customer_id: order.customer_id,
                        amount: order.amount,
                        expires_at: order.expires_at,
                    },
                    metadata.clone(),
                )
                .await?
                .state;
        }
        let ours = state.payment_key.as_deref() == Some(paid.payment_key.as_str());
        match paid.status {
            s if s.was_approved() && state.status == PaymentStatus::Requested => {
                match self.record_approved(order_id, &paid, metadata).await {
                    Ok(_) => {}
                    Err(PaymentError::Rule(rule)) => {
                        tracing::error!(order_id, code = rule.code(), error = %rule, "toss approved a payment the order refuses");
                        return Ok(Reconciled::Ignored("the payment does not fit the order"));
                    }
                    Err(other) => return Err(other),
                }
            }
            s if s.was_approved() && ours && state.status.was_confirmed() => {
                // After any refund under way has recorded its cancel under its own id.
                let turn = match (in_turn, paid.cancels.is_empty()) {
                    (false, false) => Some(self.refund_turn(order_id).await?),
                    _ => None,
                };
                let done = self
                    .inner
                    .payments
                    .execute(
                        order_id,
                        PaymentCommand::Refund {
                            refunds: observed_refunds(&paid.cancels),
                        },
                        metadata,
                    )
                    .await?;
                if let Some(turn) = turn {
                    turn.end().await;
                }
                // What this call recorded (a refund recorded during the wait for the turn is
                // not this call's).
                return Ok(match done.events.len() {
                    0 => Reconciled::Unchanged,
                    events => Reconciled::Recorded { events },
                });
            }
            s if s.was_approved()
                && paid.balance_amount > 0
                && (state.status == PaymentStatus::Failed || !ours) =>
            {
                // Money taken for an order whose payment failed, or a second payment of a paid
                // order: give it back.
                tracing::error!(
                    order_id,
                    "toss approved a payment the order cannot take; cancelling it at toss"
                );
                self.inner
                    .toss
                    .cancel(
                        &paid.payment_key,
                        "the order's payment failed or was already made",
                        None,
                        // A new request each time: Toss keeps a refusal ("try again in a
                        // while") under its key, and a full cancel cannot happen twice.
                        &format!("void-{}-{}", paid.payment_key, uuid::Uuid::now_v7()),
                    )
                    .await?;
                return Ok(Reconciled::Voided);
            }
            TossStatus::Aborted | TossStatus::Expired
                if state.status == PaymentStatus::Requested =>
            {
                let status = if paid.status == TossStatus::Aborted {
                    "ABORTED"
                } else {
                    "EXPIRED"
                };
                self.inner
                    .payments
                    .execute(
                        order_id,
                        PaymentCommand::Fail {
                            payment_key: Some(paid.payment_key.clone()),
                            code: format!("PAYMENT_{status}"),
                            reason: format!("toss reports the payment {status}"),
                        },
                        metadata,
                    )
                    .await?;
            }
            _ => {}
        }
        let after = self.inner.payments.load(order_id).await?.version;
        Ok(match after.saturating_sub(before) {
            0 => Reconciled::Unchanged,
            events => Reconciled::Recorded {
                events: events as usize,
            },
        })
    }
}
