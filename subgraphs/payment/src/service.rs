//! The payment use cases: confirm a customer's payment, show it, refund it for the saga, and
//! reconcile with what Toss says (webhooks).
//!
//! The amount is never trusted: it must equal what the order asked for (the order's own
//! events) before Toss is called. Every confirm and refund carries an idempotency key derived
//! from the order (confirm) or the refund id (cancel), so retrying any of them is safe (a void
//! of a second payment is a new request each time); after an answer that may hide an effect
//! (timeout, 5xx, `FORBIDDEN_CONSECUTIVE_REQUEST`, and for a confirm
//! `ALREADY_PROCESSED_PAYMENT`) the payment is looked up at Toss and recorded as Toss has it
//! before anything else is decided.

use std::sync::Arc;

use auth::{AuthError, Group, Identity};
use bus::{MessageBus, OutgoingRecord};
use chrono::Utc;
use contracts::{Envelope, SagaReply};
use eventstore::{EventStore, Metadata, Repository};
use projections::{ProjectionError, ReadModels};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::error::PaymentError;
use crate::payable::PayableOrders;
use crate::payment::{
    AT_TOSS_PREFIX, Payment, PaymentCommand, PaymentRuleError, PaymentStatus, Refund,
    STAFF_REFUND_PREFIX,
};
use crate::refund_turn::RefundTurns;
use crate::toss::{TossCancel, TossClient, TossError, TossPayment, codes};

/// Payments whose states stay in memory between requests and commands.
const PAYMENTS_CACHED: usize = 20_000;

/// The payment use cases; cheap to clone.
#[derive(Clone)]
pub struct PaymentService {
    pub(crate) inner: Arc<Inner>,
    notice: Option<Arc<SagaNotice>>,
}

/// Notices to the saga being published at most at once (past this, during a broker outage,
/// say, a notice is dropped: the relayed event still carries the news).
const NOTICES_IN_FLIGHT: usize = 1_024;

/// Where confirmed payments are announced to the order saga as soon as they are recorded.
struct SagaNotice {
    bus: Arc<dyn MessageBus>,
    topic: String,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// What the service holds.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) payments: Repository<Payment>,
    pub(crate) payable: PayableOrders,
    pub(crate) toss: TossClient,
    /// Refunds of one order (staff's, the saga's, a webhook's recording) one at a time.
    pub(crate) refund_turns: RefundTurns,
}

impl PaymentService {
    /// A service over the event store, the read-model database (registering the `payable`
    /// projection there) and a Toss client.
    pub async fn new(
        store: Arc<dyn EventStore>,
        models: ReadModels,
        toss: TossClient,
    ) -> Result<Self, PaymentError> {
        Ok(Self {
            inner: Arc::new(Inner {
                payments: Repository::new(store.clone()).with_cache(PAYMENTS_CACHED),
                store,
                refund_turns: RefundTurns::new(&models),
                payable: PayableOrders::new(models).await?,
                toss,
            }),
            notice: None,
        })
    }

    /// Also announces each recorded confirmation on `{topic_prefix}saga.replies` (best effort).
    ///
    /// The saga then marks the order paid one relay round sooner and takes the relayed
    /// `PaymentConfirmed` that follows as the same input; a lost notice leaves the news to it.
    pub fn with_saga_notice(mut self, bus: Arc<dyn MessageBus>, topic_prefix: &str) -> Self {
        self.notice = Some(Arc::new(SagaNotice {
            bus,
            topic: format!("{topic_prefix}{}", contracts::SAGA_REPLIES),
            in_flight: Arc::new(tokio::sync::Semaphore::new(NOTICES_IN_FLIGHT)),
        }));
        self
    }

    /// Sends the saga the notice of `order_id`'s confirmed payment, if set up to.
    fn notify_saga(&self, order_id: &str, payment_key: &str, amount: i64) {
        let Some(notice) = self.notice.clone() else {
            return;
        };
        let envelope = Envelope {
            traceparent: telemetry::current_traceparent(),
            ..Envelope::new(
                order_id,
                SagaReply::PaymentConfirmed {
                    payment_key: payment_key.to_owned(),
                    amount,
                },
            )
        };
        let payload = match serde_json::to_vec(&envelope) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::warn!(order_id, error = %err, "saga notice does not serialise; the relay carries the news");
                return;
            }
        };
        let Ok(permit) = notice.in_flight.clone().try_acquire_owned() else {
            metrics::counter!("payment_saga_notices_dropped_total").increment(1);
            tracing::warn!(
                order_id,
                "too many saga notices in flight; the relay carries the news"
            );
            return;
        };
        let record = OutgoingRecord::new(&notice.topic, order_id, payload);
        let order_id = order_id.to_owned();
        tokio::spawn(
            async move {
                if let Err(err) = notice.bus.publish(vec![record]).await {
                    tracing::warn!(order_id, error = %err, "saga notice not sent; the relay carries the news");
                }
                drop(permit);
            }
            .in_current_span(),
        );
    }

    /// The order as its own event stream tells it.
    async fn order_from_events(
        &self,
        order_id: &str,
    ) -> Result<Option<crate::payable::PayableOrder>, PaymentError> {
        let stream = eventstore::StreamId::of("order", order_id)
            .map_err(|e| PaymentError::Invalid(e.to_string()))?;
        let events = self
            .inner
            .store
            .read_stream(&stream, eventstore::Direction::Forward, None, 1_000)
            .await
            .map_err(|e| PaymentError::Store(eventstore::RepositoryError::Store(e)))?;
        Ok(crate::payable::fold_order_events(&events))
    }

    /// The orders awaiting payment.
    pub fn payable(&self) -> &PayableOrders {
        &self.inner.payable
    }

    /// The Toss client.
    pub fn toss(&self) -> &TossClient {
        &self.inner.toss
    }

    /// Confirms the caller's payment of their order with Toss.
    ///
    /// The caller must be the customer of an order awaiting payment and `amount` must equal
    /// its amount exactly (else `AMOUNT_MISMATCH`, and Toss is never called). Confirming again
    /// with the same payment key returns the recorded payment without charging again.
    #[tracing::instrument(skip_all, fields(order_id = %order_id))]
    pub async fn confirm(
        &self,
        identity: Option<&Identity>,
        order_id: &str,
        payment_key: &str,
        amount: i64,
    ) -> Result<Payment, PaymentError> {
        let identity = auth::require(identity)?;
        if !identity.is(Group::Customers) {
            return Err(AuthError::Forbidden("only customers pay for orders").into());
        }
        check_order_id(order_id)?;
        crate::toss::client::check_payment_key(payment_key)
            .map_err(|e| PaymentError::Invalid(e.message))?;
        if amount <= 0 {
            return Err(PaymentError::Invalid("amount must be positive".into()));
        }
        // The order's own events, not the `payable` read model: a confirm usually follows the
        // order's PAYMENT_PENDING within moments, before a batched projection has it (the
        // model missed on every confirm of the ordering benchmark), and the stream is never
        // stale.
        let order = self
            .order_from_events(order_id)
            .await?
            .ok_or_else(|| PaymentError::OrderNotFound(order_id.to_owned()))?;
        if order.customer_id != identity.sub {
            return Err(AuthError::Forbidden("not your order").into());
        }
        if amount != order.amount {
            tracing::warn!(
                order_id,
                amount,
                expected = order.amount,
                "payment amount mismatch"
            );
            return Err(PaymentRuleError::AmountMismatch {
                expected: order.amount,
                given: amount,
            }
            .into());
        }
        let metadata = metadata(order_id, None).with_user(&identity.sub);
        // A first confirm is the common case: the payment's stream is not read first (the
        // request expects no stream, and an existing payment is read when that fails).
        let known = self.inner.payments.current_or_empty(order_id)?.state;
        if decided(&known) {
            return self
                .answer_decided(order_id, payment_key, &known, metadata)
                .await;
        }
        if let Some(reason) = order.unpayable_reason(Utc::now()) {
            // Paid (or failed) already? Then the recorded payment answers.
            let state = self.inner.payments.load(order_id).await?.state;
            if decided(&state) {
                return self
                    .answer_decided(order_id, payment_key, &state, metadata)
                    .await;
            }
            if state.status == PaymentStatus::Requested {
                self.record_if_approved(order_id, payment_key, metadata)
                    .await;
            }
            return Err(PaymentError::NotPayable(reason));
        }
        let requested = self
            .inner
            .payments
            .execute_new(
                order_id,
                PaymentCommand::Request {
                    order_id: order.order_id.clone(),
                    customer_id: order.customer_id.clone(),
                    amount: order.amount,
                    expires_at: order.expires_at,
                },
                metadata.clone(),
            )
            .await?;
        if decided(&requested.state) {
            return self
                .answer_decided(order_id, payment_key, &requested.state, metadata)
                .await;
        }
        // Carried to the end even when the caller goes away (a client or gateway timeout drops
        // the request): Toss may approve the payment after the caller has gone, and then only
        // this task records it.
        let service = self.clone();
        let (order_id, payment_key) = (order_id.to_owned(), payment_key.to_owned());
        tokio::spawn(
            async move {
                let outcome = service
                    .confirm_at_toss(&order_id, &payment_key, amount, metadata)
                    .await;
                // Logged here too: the caller may have gone.
                if let Err(err) = &outcome {
                    tracing::warn!(order_id, code = err.code(), error = %err, "confirm failed");
                }
                outcome
            }
            .in_current_span(),
        )
        .await
        .map_err(|stopped| PaymentError::Interrupted(stopped.to_string()))?
    }

    /// Records the payment if Toss approved `payment_key` for `order_id`: a confirm asked
    /// before the order closed may have been approved and never recorded (its process stopped
    /// in between), and once recorded the saga refunds it as a late payment. Asked again after
    /// the order closed, so the money is not left at Toss; a failure here is only logged.
    async fn record_if_approved(&self, order_id: &str, payment_key: &str, metadata: Metadata) {
        let recorded = match self.approved_at_toss(order_id, payment_key).await {
            Ok(Some(found)) => {
                tracing::warn!(
                    order_id,
                    "a payment approved at toss was never recorded; recording it for the saga to refund"
                );
                self.record_approved(order_id, &found, metadata)
                    .await
                    .map(drop)
            }
            Ok(None) => Ok(()),
            Err(err) if err.status == Some(404) => Ok(()),
            Err(err) => Err(err.into()),
        };
        if let Err(err) = recorded {
            tracing::warn!(order_id, error = %err, "cannot check toss for a payment of a closed order");
        }
    }

    /// Toss's payment `payment_key`, when Toss approved it for `order_id`.
    async fn approved_at_toss(
        &self,
        order_id: &str,
        payment_key: &str,
    ) -> Result<Option<TossPayment>, TossError> {
        let found = self.inner.toss.get(payment_key).await?;
        Ok((found.order_id == order_id && found.status.was_approved()).then_some(found))
    }

    /// Asks Toss to confirm a requested payment and records the outcome.
    async fn confirm_at_toss(
        &self,
        order_id: &str,
        payment_key: &str,
        amount: i64,
        metadata: Metadata,
    ) -> Result<Payment, PaymentError> {
        let key = confirm_idempotency_key(order_id, payment_key);
        match self
            .inner
            .toss
            .confirm(payment_key, order_id, amount, &key)
            .await
        {
            Ok(paid) => self.record_approved(order_id, &paid, metadata).await,
            Err(err) => {
                self.confirm_failed(order_id, payment_key, err, metadata)
                    .await
            }
        }
    }

    /// The answer to a confirm of a payment that was already confirmed or failed: the
    /// aggregate's (a no-op for the same payment key, an error otherwise).
    async fn answer_decided(
        &self,
        order_id: &str,
        payment_key: &str,
        state: &Payment,
        metadata: Metadata,
    ) -> Result<Payment, PaymentError> {
        let done = self
            .inner
            .payments
            .execute(order_id, confirm_command(payment_key, state), metadata)
            .await?;
        Ok(done.state)
    }

    /// After a failed confirm: record what Toss says, and return the error unless the payment
    /// turns out approved after all.
    async fn confirm_failed(
        &self,
        order_id: &str,
        payment_key: &str,
        err: TossError,
        metadata: Metadata,
    ) -> Result<Payment, PaymentError> {
        tracing::info!(order_id, code = %err.code, "toss refused or failed the confirm");
        if err.maybe_done() || err.code == codes::ALREADY_PROCESSED_PAYMENT {
            match self.approved_at_toss(order_id, payment_key).await {
                Ok(Some(found)) => return self.record_approved(order_id, &found, metadata).await,
                Ok(None) => {}
                Err(lookup) => {
                    // The outcome is unknown: record nothing; a retry reuses the idempotency key.
                    tracing::warn!(order_id, code = %lookup.code, "payment lookup failed after a confirm failure");
                    return Err(err.into());
                }
            }
        }
        // Declines, and the provider failing, are answers for good; other 5xx and no answer
        // leave the outcome open (a retry reuses the idempotency key; after "too soon", which
        // Toss keeps under the key, the app starts a new widget attempt).
        let for_good = err.is_rejection() || err.code == codes::PROVIDER_ERROR;
        if for_good {
            self.inner
                .payments
                .execute(
                    order_id,
                    PaymentCommand::Fail {
                        payment_key: Some(payment_key.to_owned()),
                        code: err.code.clone(),
                        reason: err.message.clone(),
                    },
                    metadata,
                )
                .await?;
        }
        Err(err.into())
    }

    /// Records a payment Toss approved (and any cancels it already has).
    pub(crate) async fn record_approved(
        &self,
        order_id: &str,
        paid: &TossPayment,
        metadata: Metadata,
    ) -> Result<Payment, PaymentError> {
        if paid.order_id != order_id || !paid.status.was_approved() {
            tracing::error!(order_id, toss_order_id = %paid.order_id, status = ?paid.status, "toss answered another payment");
            return Err(PaymentError::Mismatch(format!(
                "payment of order {} is {:?}",
                paid.order_id, paid.status
            )));
        }
        let confirm = PaymentCommand::Confirm {
            payment_key: paid.payment_key.clone(),
            amount: paid.total_amount,
            method: paid.method.clone(),
            approved_at: paid.approved_at.map(|at| at.with_timezone(&Utc)),
            receipt_url: paid.receipt.as_ref().map(|r| r.url.clone()),
        };
        let mut done = self
            .inner
            .payments
            .execute(order_id, confirm, metadata.clone())
            .await?;
        self.notify_saga(order_id, &paid.payment_key, paid.total_amount);
        if !paid.cancels.is_empty() {
            done = self
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
        }
        tracing::info!(order_id, "payment confirmed");
        Ok(done.state)
    }

    /// The payment of an order, for its customer or staff; `None` when nothing was recorded.
    pub async fn payment(
        &self,
        identity: Option<&Identity>,
        order_id: &str,
    ) -> Result<Option<Payment>, PaymentError> {
        let identity = auth::require(identity)?;
        check_order_id(order_id)?;
        let state = self.inner.payments.load(order_id).await?.state;
        if state.status == PaymentStatus::New {
            return Ok(None);
        }
        if !identity.is_staff() && state.customer_id != identity.sub {
            return Err(AuthError::Forbidden("not your order").into());
        }
        Ok(Some(state))
    }

    /// Staff return part of a confirmed payment (a missing or spoilt item): refunded at Toss
    /// and recorded under `idempotency_key` (asked again, it refunds once); the order stands.
    /// Something must be left: all of it goes back by cancelling or rejecting the order (up to
    /// READY), whose saga then refunds what is left.
    pub async fn refund_partly(
        &self,
        identity: Option<&Identity>,
        order_id: &str,
        amount: i64,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<Payment, PaymentError> {
        use crate::toss::client::MAX_CANCEL_REASON_CHARS;
        let me = auth::require_staff(identity)?;
        check_order_id(order_id)?;
        let key = idempotency_key.trim();
        if key.is_empty() || key.len() > 64 || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(PaymentError::Invalid(
                "idempotencyKey must be 1 to 64 printable ASCII characters".into(),
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_CANCEL_REASON_CHARS {
            return Err(PaymentError::Invalid(format!(
                "reason must be 1 to {MAX_CANCEL_REASON_CHARS} characters"
            )));
        }
        if amount <= 0 {
            return Err(PaymentError::Invalid("amount must be positive".into()));
        }
        // Toss scopes idempotency keys by payment; the order id keeps them apart anyway.
        let refund_id = format!("{STAFF_REFUND_PREFIX}{order_id}-{key}");
        // One at a time per order, checked and recorded in its turn: two at once could each
        // leave something and together return everything.
        let turn = self.refund_turn(order_id).await?;
        let state = self.inner.payments.load(order_id).await?.state;
        match state.refund(&refund_id) {
            Some(done) if done.amount == amount => return Ok(state),
            Some(_) => {
                return Err(PaymentError::Invalid(
                    "idempotencyKey was already used for another refund; use a new key".into(),
                ));
            }
            None => {}
        }
        refundable(&state)?;
        if amount >= state.balance {
            return Err(PaymentError::Invalid(format!(
                "a partial refund must leave something ({} KRW is left); cancel or reject the \
                 order (up to READY) to refund all of it",
                state.balance
            )));
        }
        let metadata = metadata(order_id, None).with_user(&me.sub);
        self.refund_in_turn(order_id, &refund_id, Some(amount), reason, metadata)
            .await?;
        tracing::info!(order_id, amount, "partial refund by staff");
        let after = self.inner.payments.load(order_id).await?.state;
        turn.end().await;
        Ok(after)
    }

    /// Handles a saga command. `Ok` is the reply to send (including refusals for good, as
    /// `RefundFailed`); `Err` means the outcome is not known yet (Toss or a store unavailable):
    /// do not acknowledge, handle the same message again later, which is safe.
    #[tracing::instrument(skip_all, fields(order_id = %envelope.order_id, message_id = %envelope.message_id))]
    pub async fn handle(
        &self,
        envelope: Envelope<contracts::PaymentCommand>,
    ) -> Result<SagaReply, PaymentError> {
        let mut metadata = metadata(&envelope.order_id, Some(envelope.message_id));
        if let Some(traceparent) = &envelope.traceparent {
            metadata = metadata.with_traceparent(traceparent.clone());
        }
        match envelope.body {
            contracts::PaymentCommand::RefundPayment {
                refund_id,
                amount,
                reason,
            } => {
                let order_id = envelope.order_id.as_str();
                let result = match check_refund(order_id, &refund_id, amount) {
                    Ok(()) => {
                        let turn = self.refund_turn(order_id).await?;
                        let refunded = self
                            .refund_in_turn(order_id, &refund_id, amount, &reason, metadata)
                            .await;
                        turn.end().await;
                        refunded
                    }
                    Err(invalid) => Err(invalid),
                };
                match result {
                    Ok(amount) => Ok(SagaReply::PaymentRefunded { refund_id, amount }),
                    Err(err) if err.is_transient() => Err(err),
                    Err(err) => {
                        tracing::info!(code = err.code(), "refund failed");
                        Ok(SagaReply::RefundFailed {
                            refund_id,
                            code: err.code().to_owned(),
                            reason: err.to_string(),
                            temporary: err.is_try_later(),
                        })
                    }
                }
            }
        }
    }

    /// Waits for `order_id`'s refund turn (see `refund_turn`).
    pub(crate) async fn refund_turn(
        &self,
        order_id: &str,
    ) -> Result<crate::refund_turn::RefundTurn, PaymentError> {
        Ok(self
            .inner
            .refund_turns
            .take(order_id)
            .await
            .map_err(ProjectionError::from)?)
    }

    /// Refunds (cancels at Toss) and records it; returns the KRW refunded. The caller holds
    /// the order's refund turn and has checked the ids and the amount.
    async fn refund_in_turn(
        &self,
        order_id: &str,
        refund_id: &str,
        amount: Option<i64>,
        reason: &str,
        metadata: Metadata,
    ) -> Result<i64, PaymentError> {
        let state = self.inner.payments.load(order_id).await?.state;
        if let Some(done) = state.refund(refund_id) {
            return Ok(done.amount);
        }
        refundable(&state)?;
        let payment_key = state
            .payment_key
            .clone()
            .ok_or(PaymentRuleError::NotConfirmed)?;
        let reason = cancel_reason(reason);
        if amount.is_none() && state.emptied_at_toss() {
            // Everything was returned already, with a cancel at Toss (the console): nothing is
            // left to refund, and that cancel's own event tells the order.
            return Ok(0);
        }
        let (cancels, ours) = match self
            .inner
            .toss
            .cancel(&payment_key, &reason, amount, refund_id)
            .await
        {
            Ok(cancelled) => {
                // Toss appends the new cancel; ours is the last one.
                let ours = cancelled.cancels.last().cloned().ok_or_else(|| {
                    PaymentError::Mismatch("toss answered a cancel without cancels".into())
                })?;
                (cancelled.cancels, ours)
            }
            // The cancel may have gone through although Toss failed or refused it as too soon
            // after another request: if Toss shows it, it is recorded as this refund, so asking
            // again (same id) answers it instead of failing, or refunding twice under a new id.
            Err(err) if err.maybe_done() => {
                match self
                    .cancel_made(&payment_key, &state, amount, &reason)
                    .await
                {
                    Ok(Some(found)) => found,
                    Ok(None) => {
                        return self
                            .after_failed_cancel(order_id, &payment_key, amount.is_none(), err)
                            .await;
                    }
                    Err(again) if again.is_transient() || again.is_try_later() => {
                        return Err(again);
                    }
                    Err(again) => {
                        tracing::warn!(order_id, error = %again, "cannot look up a cancel that may have gone through");
                        return Err(err.into());
                    }
                }
            }
            // Toss has nothing left to cancel: most likely a cancel at Toss whose webhook has not
            // come yet.
            Err(err) if amount.is_none() && err.code == codes::ALREADY_CANCELED_PAYMENT => {
                return self
                    .after_failed_cancel(order_id, &payment_key, true, err)
                    .await;
            }
            Err(err) => return Err(err.into()),
        };
        // Recorded in Toss's order, ours under its id: a cancel made meanwhile (a staff partial
        // refund not recorded yet, the console) comes before ours, with the balance it left.
        let mut refunds = observed_refunds(&cancels);
        let mine = refunds
            .iter()
            .position(|r| r.transaction_key.is_some() && r.transaction_key == ours.transaction_key)
            .unwrap_or(refunds.len().saturating_sub(1));
        if let Some(mine) = refunds.get_mut(mine) {
            mine.refund_id = refund_id.to_owned();
        }
        let done = self
            .inner
            .payments
            .execute(order_id, PaymentCommand::Refund { refunds }, metadata)
            .await?;
        let recorded = done.state.refund(refund_id).or_else(|| {
            done.state
                .refunds
                .iter()
                .find(|r| r.transaction_key.is_some() && r.transaction_key == ours.transaction_key)
        });
        Ok(recorded.map_or(ours.cancel_amount, |r| r.amount))
    }

    /// After a cancel that failed but may have gone through: Toss's cancels and the one that
    /// is this attempt's, when Toss shows exactly one cancel not recorded before it (`before`)
    /// for the `amount` asked (all of the balance when `None`) with the `reason` sent. The
    /// order's refund turn keeps our other refunds and the webhook's recording out meanwhile;
    /// an ask of the same id again later (a retry) finds its cancel the same way. Taken for it
    /// wrongly: a cancel for the same amount and reason made elsewhere meanwhile (the Toss
    /// console), or left unrecorded by an earlier refund of ours whose lookup failed.
    async fn cancel_made(
        &self,
        payment_key: &str,
        before: &Payment,
        amount: Option<i64>,
        reason: &str,
    ) -> Result<Option<(Vec<TossCancel>, TossCancel)>, PaymentError> {
        let paid = self.inner.toss.get(payment_key).await?;
        let known = |cancel: &TossCancel| {
            before
                .refunds
                .iter()
                .any(|r| r.transaction_key.is_some() && r.transaction_key == cancel.transaction_key)
        };
        let mut new = paid
            .cancels
            .iter()
            .filter(|c| c.transaction_key.is_some() && !known(c));
        let (Some(ours), None) = (new.next(), new.next()) else {
            return Ok(None);
        };
        let matches = ours.cancel_amount == amount.unwrap_or(before.balance)
            && ours.cancel_reason.trim() == reason.trim();
        if !matches {
            return Ok(None);
        }
        let ours = ours.clone();
        Ok(Some((paid.cancels, ours)))
    }

    /// Records what Toss has after a cancel that may have gone through (`maybe_done`) or that
    /// found nothing left (`ALREADY_CANCELED_PAYMENT`), so the balance is right for the next
    /// ask (a cancel found is recorded as made at Toss, `toss-{tx}`). A full refund found done
    /// is answered as done (0 KRW left to return); otherwise the cancel's error stands (or the
    /// lookup's, when Toss could not say now).
    async fn after_failed_cancel(
        &self,
        order_id: &str,
        payment_key: &str,
        full: bool,
        err: TossError,
    ) -> Result<i64, PaymentError> {
        match self.reconcile_in_turn(Some(order_id), payment_key).await {
            Ok(_) => {}
            Err(again) if again.is_transient() || again.is_try_later() => return Err(again),
            Err(again) => {
                tracing::warn!(order_id, error = %again, "cannot record toss's state after a failed cancel");
                return Err(err.into());
            }
        }
        let state = self.inner.payments.load(order_id).await?.state;
        if full && state.emptied_at_toss() {
            return Ok(0);
        }
        Err(err.into())
    }
}

/// The reason sent with a cancel, fitted to Toss's rules: the saga passes on the customer's or
/// the staff's words, which may be blank or longer than Toss takes, and a refund must not fail
/// for that.
fn cancel_reason(reason: &str) -> std::borrow::Cow<'_, str> {
    use crate::toss::client::MAX_CANCEL_REASON_CHARS;
    let reason = reason.trim();
    if reason.is_empty() {
        return "refund".into();
    }
    match reason.char_indices().nth(MAX_CANCEL_REASON_CHARS - 1) {
        // Room for the ellipsis that says it was cut.
        Some((cut, _)) if reason[cut..].chars().nth(1).is_some() => {
            format!("{}…", reason[..cut].trim_end()).into()
        }
        _ => reason.into(),
    }
}

/// The Confirm command that re-asks an already decided payment (a no-op for its own key).
fn confirm_command(payment_key: &str, state: &Payment) -> PaymentCommand {
    PaymentCommand::Confirm {
        payment_key: payment_key.to_owned(),
        amount: state.amount,
        method: state.method.clone(),
        approved_at: state.approved_at,
        receipt_url: state.receipt_url.clone(),
    }
}

/// Toss cancels as refunds; those made elsewhere (e.g. the Toss console) get the id
/// `toss-{transactionKey}` (or `toss-cancel-{n}` without one).
pub(crate) fn observed_refunds(cancels: &[TossCancel]) -> Vec<Refund> {
    cancels
        .iter()
        .enumerate()
        .map(|(i, cancel)| Refund {
            refund_id: match &cancel.transaction_key {
                Some(tx) => format!("{AT_TOSS_PREFIX}{tx}"),
                None => format!("{AT_TOSS_PREFIX}cancel-{i}"),
            },
            transaction_key: cancel.transaction_key.clone(),
            amount: cancel.cancel_amount,
            reason: cancel.cancel_reason.clone(),
            canceled_at: cancel.canceled_at.with_timezone(&Utc),
        })
        .collect()
}

/// The confirm's idempotency key: derived from the order (and the payment key, so a new
/// payment attempt after a refused request is a new request), so a retried confirm is safe.
pub fn confirm_idempotency_key(order_id: &str, payment_key: &str) -> String {
    let attempt = Uuid::new_v5(&order_uuid(order_id), payment_key.as_bytes());
    format!("confirm-{order_id}-{}", attempt.simple())
}

/// Refused unless the order id, the refund id (Toss's idempotency key) and the amount (when
/// not the whole balance) can be asked of Toss.
fn check_refund(order_id: &str, refund_id: &str, amount: Option<i64>) -> Result<(), PaymentError> {
    check_order_id(order_id)?;
    let valid_id = !refund_id.is_empty()
        && refund_id.len() <= crate::toss::client::MAX_IDEMPOTENCY_KEY_LEN
        && refund_id.chars().all(|c| c.is_ascii_graphic());
    if !valid_id {
        return Err(PaymentError::Invalid(
            "refund id must be 1..=300 printable ASCII characters".into(),
        ));
    }
    if amount.is_some_and(|a| a <= 0) {
        return Err(PaymentError::Invalid(
            "refund amount must be positive".into(),
        ));
    }
    Ok(())
}

/// Order ids are Toss order ids too: 1..=64 ASCII letters, digits, `-` or `_`.
pub(crate) fn check_order_id(order_id: &str) -> Result<(), PaymentError> {
    let ok = !order_id.is_empty()
        && order_id.len() <= 64
        && order_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        && !order_id.starts_with('-')
        && !order_id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(PaymentError::Invalid(
            "order id must be 1..=64 ASCII letters, digits, '-' or '_'".into(),
        ))
    }
}

/// A stable UUID for an order id (order ids are UUIDs; anything else is hashed).
fn order_uuid(order_id: &str) -> Uuid {
    Uuid::parse_str(order_id)
        .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, order_id.as_bytes()))
}

/// Metadata of events written for `order_id`, correlated by the order.
pub(crate) fn metadata(order_id: &str, cause: Option<Uuid>) -> Metadata {
    Metadata::caused_by(order_uuid(order_id), cause.unwrap_or_else(Uuid::now_v7))
}

/// Refused unless the payment was confirmed (there is something to refund).
fn refundable(payment: &Payment) -> Result<(), PaymentRuleError> {
    match payment.status {
        s if s.was_confirmed() => Ok(()),
        PaymentStatus::New => Err(PaymentRuleError::NotRequested),
        _ => Err(PaymentRuleError::NotConfirmed),
    }
}

/// Whether a payment was confirmed or failed (a confirm can only be answered, not retried).
fn decided(payment: &Payment) -> bool {
    payment.status.was_confirmed() || payment.status == PaymentStatus::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_stable_and_fit_toss() {
        let a = confirm_idempotency_key("0193a1b2-0000-7000-8000-000000000001", "tbs_x");
        assert_eq!(
            a,
            confirm_idempotency_key("0193a1b2-0000-7000-8000-000000000001", "tbs_x")
        );
        assert_ne!(
            a,
            confirm_idempotency_key("0193a1b2-0000-7000-8000-000000000001", "tbs_y")
        );
        assert!(a.len() <= 300);
        let long = confirm_idempotency_key(&"o".repeat(64), &"k".repeat(200));
        assert!(long.len() <= 300);
    }

    #[test]
    fn cancel_reasons_fit_toss() {
        use crate::toss::client::MAX_CANCEL_REASON_CHARS as MAX;
        assert_eq!(cancel_reason("  "), "refund");
        assert_eq!(cancel_reason(" changed my mind "), "changed my mind");
        let exact = "가".repeat(MAX);
        assert_eq!(cancel_reason(&exact), exact.as_str());
        let long = "가".repeat(MAX + 300);
        let fitted = cancel_reason(&long);
        assert_eq!(fitted.chars().count(), MAX);
        assert!(fitted.ends_with('…'), "{fitted}");
        assert!(fitted.starts_with(&"가".repeat(MAX - 1)));
    }

    #[test]
    fn order_ids_are_checked() {
        assert!(check_order_id("0193a1b2-0000-7000-8000-000000000001").is_ok());
        for bad in ["", "-x", "a/b", "a b", &"o".repeat(65)] {
            assert!(check_order_id(bad).is_err(), "{bad}");
        }
    }
}
