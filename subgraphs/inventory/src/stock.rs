//! Stock reservations for the order saga: reserve every line or none, release, commit.
//!
//! The protocol, which makes every command idempotent and safe under any concurrency:
//! 1. record the reservation's lines (`Reservation::Open`; a redelivery finds them);
//! 2. reserve line by line in product-id order (each product refuses to oversell and
//!    remembers the reservation id, so a repeat holds nothing twice);
//! 3. record the decision (the first one wins); if it is a rejection, release every line.
//!
//! Release and commit record their intent on the reservation first, then apply it to each
//! product; a redelivery repeats the (idempotent) product steps. A product never reserves a
//! released reservation id again, so a late or duplicate reserve cannot resurrect a hold.

use std::collections::BTreeMap;

use contracts::{Envelope, InventoryCommand, SagaReply, StockLine};
use eventstore::{Metadata, RepositoryError};
use tracing::Instrument as _;

use crate::error::InventoryError;
use crate::product::{self, HoldState, ProductCommand, ProductId};
use crate::reservation::{Closing, Decision, ReservationCommand, ReservedLine};
use crate::service::{Inventory, not_found_as};

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
        let open = ReservationCommand::Open {
            order_id: order_id.to_owned(),
            lines,
        };
        let opened = self
            .reservations
            .execute(&key, open, metadata.clone())
            .await?
            .state;
        let decision = match opened.decision() {
            Some(decision) => decision.clone(),
            None => {
                let attempt = self
                    .hold_lines(&reservation_id, opened.lines(), &metadata)
                    .await?;
                let decide = ReservationCommand::Decide(attempt.clone());
                let decided = self
                    .reservations
                    .execute(&key, decide, metadata.clone())
                    .await?;
                // The first decision recorded wins, whichever attempt wrote it.
                decided.state.decision().cloned().unwrap_or(attempt)
            }
        };
        match decision {
            Decision::Reserved => {
                tracing::info!(reservation_id, "stock reserved");
                metrics::counter!("inventory_reservations_total", "outcome" => "reserved")
                    .increment(1);
                Ok(SagaReply::StockReserved { reservation_id })
            }
            Decision::Rejected { reason } => {
                // Give back whatever this (or a concurrent, or a crashed) attempt holds.
                self.release_lines(&reservation_id, opened.lines(), &metadata)
                    .await?;
                tracing::info!(reservation_id, reason, "stock rejected");
                metrics::counter!("inventory_reservations_total", "outcome" => "rejected")
                    .increment(1);
                Ok(rejected(reservation_id, reason))
            }
        }
    }

    /// Reserves each line in order; stops at the first refusal and says why.
    async fn hold_lines(
        &self,
        reservation_id: &str,
        lines: &[ReservedLine],
        metadata: &Metadata,
    ) -> Result<Decision, InventoryError> {
        if lines.is_empty() {
            return Ok(Decision::Rejected {
                reason: format!("reservation {reservation_id} was cancelled"),
            });
        }
        for line in lines {
            let command = ProductCommand::Reserve {
                reservation_id: reservation_id.to_owned(),
                quantity: i64::from(line.quantity),
            };
            match self
                .execute(&line.product_id, command, metadata.clone())
                .await
            {
                Ok(done) => {
                    let held = done.state.hold(reservation_id).map(|h| h.state);
                    if held != Some(HoldState::Reserved) {
                        return Ok(Decision::Rejected {
                            reason: format!(
                                "reservation {reservation_id} of '{}' was already released",
                                done.state.name()
                            ),
                        });
                    }
                }
                Err(RepositoryError::Domain(err)) => {
                    let err = not_found_as(&line.product_id, RepositoryError::Domain(err));
                    return Ok(Decision::Rejected {
                        reason: err.to_string(),
                    });
                }
                Err(err) => return Err(not_found_as(&line.product_id, err)),
            }
        }
        Ok(Decision::Reserved)
    }

    async fn release(
        &self,
        reservation_id: String,
        metadata: Metadata,
    ) -> Result<SagaReply, InventoryError> {
        product::reservation(&reservation_id)?;
        let key = reservation_key(&reservation_id);
        let released = self
            .reservations
            .execute(&key, ReservationCommand::Release, metadata.clone())
            .await?
            .state;
        self.release_lines(&reservation_id, released.lines(), &metadata)
            .await?;
        tracing::info!(reservation_id, "stock released");
        Ok(SagaReply::StockReleased { reservation_id })
    }

    async fn commit(
        &self,
        reservation_id: String,
        metadata: Metadata,
    ) -> Result<SagaReply, InventoryError> {
        product::reservation(&reservation_id)?;
        let key = reservation_key(&reservation_id);
        let committed = match self
            .reservations
            .execute(&key, ReservationCommand::Commit, metadata.clone())
            .await
        {
            Ok(done) => done.state,
            Err(RepositoryError::Domain(err)) => {
                tracing::warn!(reservation_id, error = %err, "commit refused");
                return Ok(rejected(reservation_id, err.to_string()));
            }
            Err(err) => return Err(err.into()),
        };
        debug_assert_eq!(committed.closing(), Some(Closing::Committed));
        for line in committed.lines() {
            let command = ProductCommand::Commit {
                reservation_id: reservation_id.clone(),
            };
            self.run(&line.product_id, command, metadata.clone())
                .await?;
        }
        tracing::info!(reservation_id, "stock committed");
        Ok(SagaReply::StockCommitted { reservation_id })
    }

    /// Releases every line (a no-op for lines never held or already released).
    async fn release_lines(
        &self,
        reservation_id: &str,
        lines: &[ReservedLine],
        metadata: &Metadata,
    ) -> Result<(), InventoryError> {
        for line in lines {
            let command = ProductCommand::Release {
                reservation_id: reservation_id.to_owned(),
            };
            self.run(&line.product_id, command, metadata.clone())
                .await?;
        }
        Ok(())
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
