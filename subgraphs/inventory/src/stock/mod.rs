//! Stock reservations for the order saga: reserve every line or none, release, commit.
//!
//! Each command is decided on the reservation (its lines, its one decision, how it ended) and
//! the products of its lines, and written as **one** multi-stream append with the expected
//! version of every stream involved: the reservation's events and the products' stock events
//! land together or not at all. So:
//! - a reservation's decision and its holds can never disagree (no half-held reservation to
//!   repair after a crash);
//! - a redelivered command finds the reservation's answer and writes nothing;
//! - a release that overtakes its reserve closes the reservation, and the late reserve is
//!   refused by the reservation itself, which is what lets a product forget a hold once it is
//!   committed or released;
//! - a product never oversells: any concurrent writer moves its version and this append is
//!   refused and decided again.
//!
//! Inside one process, commands take turns per product (in product-id order), so racing
//! orders for one cake queue instead of retrying.

mod streams;

use std::collections::BTreeMap;

use contracts::{Envelope, InventoryCommand, SagaReply, StockLine};
use eventstore::{Aggregate as _, Metadata};
use tokio::sync::OwnedMutexGuard;
use tracing::Instrument as _;

use crate::error::InventoryError;
use crate::product::{self, ProductCommand, ProductId};
use crate::reservation::{
    Closing, Decision, Reservation, ReservationCommand, ReservationEvent, ReservedLine,
};
use crate::service::{Inventory, MAX_ATTEMPTS};
use streams::{Held, Streams};

/// Most lines in one reservation.
pub const MAX_LINES: usize = 50;
/// Most units of one line.
pub const MAX_LINE_QUANTITY: u32 = 99;

impl Inventory {
    /// Handles one saga command and returns the reply to send.
    ///
    /// A redelivered command gets the same reply and has no second effect. `Err` means the
    /// command could not be finished now (the event store is down, a stream stayed contended)
    /// and should be redelivered later; malformed reservation ids on release or commit are
    /// `BAD_USER_INPUT` and will never succeed.
    pub async fn handle(
        &self,
        envelope: Envelope<InventoryCommand>,
    ) -> Result<SagaReply, InventoryError> {
        let span = tracing::info_span!(
            "inventory.command",
            order_id = %envelope.order_id,
            message_id = %envelope.message_id,
        );
        if let Some(traceparent) = &envelope.traceparent
            && let Err(err) = telemetry::set_parent_from_traceparent(&span, traceparent)
        {
            tracing::debug!(error = %err, "ignoring the command's traceparent");
        }
        let metadata = metadata_of(&envelope);
        let Envelope { order_id, body, .. } = envelope;
        async move {
            match body {
                InventoryCommand::ReserveStock {
                    reservation_id,
                    lines,
                } => {
                    self.reserve(&order_id, reservation_id, &lines, metadata)
                        .await
                }
                InventoryCommand::ReleaseStock { reservation_id } => {
                    self.release(reservation_id, metadata).await
                }
                InventoryCommand::CommitStock { reservation_id } => {
                    self.commit(reservation_id, metadata).await
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn reserve(
        &self,
        order_id: &str,
        reservation_id: String,
        lines: &[StockLine],
        metadata: Metadata,
    ) -> Result<SagaReply, InventoryError> {
        let lines = match validate(&reservation_id, lines) {
            Ok(lines) => lines,
            Err(reason) => return Ok(rejected(reservation_id, reason)),
        };
        let key = reservation_key(&reservation_id);
        // A reserve usually opens its reservation: the append expecting version 0 finds out
        // if it exists, instead of a read of the (empty) stream first.
        let reservation = (self.reservations.current_or_empty(&key)?, false);
        let mut lines = lines;
        let _turns = self.turns_for(lines.iter().map(|l| &l.product_id)).await;
        let mut streams = Streams::with_reservation(self, reservation, &lines).await?;
        for _ in 0..MAX_ATTEMPTS {
            if let Some(decision) = streams.reservation.state.decision() {
                // Decisions are final: a cached one is as good as a fresh one.
                return Ok(reply_to_reserve(reservation_id, decision.clone()));
            }
            let recorded = streams.reservation.state.lines();
            if streams.reservation.state.opened() && recorded != lines.as_slice() {
                // Once opened, a reservation keeps the lines it was opened with.
                lines = recorded.to_vec();
                let reservation = (streams.reservation.clone(), streams.reservation_fresh);
                streams = Streams::with_reservation(self, reservation, &lines).await?;
            }
            let mut after = streams.reservation.state.clone();
            let mut events = decide(
                &mut after,
                ReservationCommand::Open {
                    order_id: order_id.to_owned(),
                    lines: lines.clone(),
                },
            );
            let mut writes = Vec::new();
            let mut decision = Decision::Reserved;
            if after.closing().is_none() {
                match streams.hold_all(&reservation_id) {
                    Held::All(holds) => writes = holds,
                    Held::Refused(reason) => {
                        decision = Decision::Rejected { reason };
                        // Whatever an earlier, crashed protocol left held goes back.
                        writes = streams.product_changes(|_| ProductCommand::Release {
                            reservation_id: reservation_id.clone(),
                            sold: None,
                        });
                    }
                    Held::Stale(index) => {
                        streams.refresh_product(self, index).await?;
                        continue;
                    }
                    Held::StaleReservation => {
                        streams.refresh_reservation(self, &key).await?;
                        continue;
                    }
                }
            }
            events.extend(decide(&mut after, ReservationCommand::Decide(decision)));
            if streams
                .write(self, &key, events, after, writes, &metadata)
                .await?
            {
                let decision = streams.reservation.state.decision().cloned();
                return Ok(reply_to_reserve(
                    reservation_id,
                    decision.unwrap_or(Decision::Reserved),
                ));
            }
        }
        Err(InventoryError::Contended(key))
    }

    async fn release(
        &self,
        reservation_id: String,
        metadata: Metadata,
    ) -> Result<SagaReply, InventoryError> {
        let (key, _turns, mut streams) = self.recorded(&reservation_id).await?;
        for _ in 0..MAX_ATTEMPTS {
            let mut after = streams.reservation.state.clone();
            let events = decide(&mut after, ReservationCommand::Release);
            if events.is_empty() {
                if streams.reservation_fresh {
                    tracing::debug!(reservation_id, "already released");
                    return Ok(SagaReply::StockReleased { reservation_id });
                }
                streams.refresh_reservation(self, &key).await?;
                continue;
            }
            let sold = streams.reservation.state.closing() == Some(Closing::Committed);
            let writes = streams.product_changes(|line| ProductCommand::Release {
                reservation_id: reservation_id.clone(),
                sold: sold.then_some(line.quantity),
            });
            if let Some(index) = streams.stale_hold(&reservation_id, &writes, !sold) {
                streams.refresh_product(self, index).await?;
                continue;
            }
            if streams
                .write(self, &key, events, after, writes, &metadata)
                .await?
            {
                tracing::info!(reservation_id, after_commit = sold, "stock released");
                return Ok(SagaReply::StockReleased { reservation_id });
            }
        }
        Err(InventoryError::Contended(key))
    }

    async fn commit(
        &self,
        reservation_id: String,
        metadata: Metadata,
    ) -> Result<SagaReply, InventoryError> {
        let (key, _turns, mut streams) = self.recorded(&reservation_id).await?;
        for _ in 0..MAX_ATTEMPTS {
            let mut after = streams.reservation.state.clone();
            let events = match after.handle(ReservationCommand::Commit) {
                Ok(events) if !events.is_empty() => events,
                // Refused or already done, on a state that may be behind its stream: look again.
                _ if !streams.reservation_fresh => {
                    streams.refresh_reservation(self, &key).await?;
                    continue;
                }
                Ok(_) => return Ok(SagaReply::StockCommitted { reservation_id }),
                Err(err) => {
                    tracing::warn!(reservation_id, error = %err, "commit refused");
                    return Ok(rejected(reservation_id, err.to_string()));
                }
            };
            for event in &events {
                after.apply(event);
            }
            let writes = streams.product_changes(|_| ProductCommand::Commit {
                reservation_id: reservation_id.clone(),
            });
            if let Some(index) = streams.stale_hold(&reservation_id, &writes, true) {
                streams.refresh_product(self, index).await?;
                continue;
            }
            if streams
                .write(self, &key, events, after, writes, &metadata)
                .await?
            {
                tracing::info!(reservation_id, "stock committed");
                return Ok(SagaReply::StockCommitted { reservation_id });
            }
        }
        Err(InventoryError::Contended(key))
    }
}

impl Inventory {
    /// For a release or commit: the key of reservation `reservation_id`, this process's turns on
    /// its products, and its streams. The cached state is used when it already has its lines
    /// (they never change once recorded).
    async fn recorded(
        &self,
        reservation_id: &str,
    ) -> Result<(String, Vec<OwnedMutexGuard<()>>, Streams), InventoryError> {
        product::reservation(reservation_id)?;
        let key = reservation_key(reservation_id);
        let (mut loaded, mut fresh) = self.reservations.current(&key).await?;
        if !fresh && !loaded.state.opened() {
            loaded = self.reservations.refresh(&key, loaded).await?;
            fresh = true;
        }
        let lines = loaded.state.lines().to_vec();
        let turns = self.turns_for(lines.iter().map(|l| &l.product_id)).await;
        let streams = Streams::with_reservation(self, (loaded, fresh), &lines).await?;
        Ok((key, turns, streams))
    }
}

/// Runs a reservation command that never refuses on `state` and folds its events in.
fn decide(state: &mut Reservation, command: ReservationCommand) -> Vec<ReservationEvent> {
    let events = state.handle(command).unwrap_or_default();
    for event in &events {
        state.apply(event);
    }
    events
}

/// The reply to a reserve whose reservation was decided.
fn reply_to_reserve(reservation_id: String, decision: Decision) -> SagaReply {
    match decision {
        Decision::Reserved => {
            tracing::info!(reservation_id, "stock reserved");
            metrics::counter!("inventory_reservations_total", "outcome" => "reserved").increment(1);
            SagaReply::StockReserved { reservation_id }
        }
        Decision::Rejected { reason } => {
            tracing::info!(reservation_id, reason, "stock rejected");
            metrics::counter!("inventory_reservations_total", "outcome" => "rejected").increment(1);
            rejected(reservation_id, reason)
        }
    }
}

/// The aggregate id of a reservation: its stream is `inventory-reservation:{id}`.
fn reservation_key(reservation_id: &str) -> String {
    format!("reservation:{reservation_id}")
}

fn rejected(reservation_id: String, reason: String) -> SagaReply {
    SagaReply::StockRejected {
        reservation_id,
        reason,
    }
}

/// Checks the reservation and merges its lines into one per product, sorted by product id
/// (a stable order across concurrent reservations).
fn validate(reservation_id: &str, lines: &[StockLine]) -> Result<Vec<ReservedLine>, String> {
    product::reservation(reservation_id).map_err(|e| e.to_string())?;
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(format!(
            "a reservation needs 1..={MAX_LINES} lines, got {}",
            lines.len()
        ));
    }
    let mut merged: BTreeMap<ProductId, u32> = BTreeMap::new();
    for line in lines {
        let id = ProductId::parse(&line.product_id)
            .map_err(|_| format!("invalid product id {:?}", truncate(&line.product_id)))?;
        if !(1..=MAX_LINE_QUANTITY).contains(&line.quantity) {
            return Err(format!(
                "quantity of product {id} must be 1..={MAX_LINE_QUANTITY}, got {}",
                line.quantity
            ));
        }
        *merged.entry(id).or_default() += line.quantity;
    }
    Ok(merged
        .into_iter()
        .map(|(product_id, quantity)| ReservedLine {
            product_id,
            quantity,
        })
        .collect())
}

fn truncate(raw: &str) -> String {
    raw.chars().take(64).collect()
}

/// Event metadata for a saga command: correlated by order, caused by the message.
fn metadata_of(envelope: &Envelope<InventoryCommand>) -> Metadata {
    let correlation = uuid::Uuid::parse_str(&envelope.order_id).unwrap_or(envelope.message_id);
    let metadata = Metadata::caused_by(correlation, envelope.message_id);
    match envelope
        .traceparent
        .clone()
        .or_else(telemetry::current_traceparent)
    {
        Some(traceparent) => metadata.with_traceparent(traceparent),
        None => metadata,
    }
}
