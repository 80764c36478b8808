//! The `Reservation` aggregate: the saga's view of one stock reservation across products.
//!
//! It records what the reservation holds (its lines), the one decision taken about it
//! (reserved or rejected, first writer wins), and how it ended (released or committed). The
//! stock service writes the intent here before it touches products, so every redelivered
//! command finds the same answer and finishes what a crashed attempt started.

use eventstore::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::product::ProductId;

/// One product of a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedLine {
    /// The product.
    pub product_id: ProductId,
    /// Units.
    pub quantity: u32,
}

/// The decision about a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Every line is held.
    Reserved,
    /// Nothing is held, for this reason.
    Rejected {
        /// Why, for the customer.
        reason: String,
    },
}

/// How a reservation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Closing {
    /// Its units went (or go) back to stock.
    Released,
    /// Its units are sold.
    Committed,
}

/// What can be asked of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationCommand {
    /// Records the lines (the first time only).
    Open {
        /// The order it belongs to.
        order_id: String,
        /// Lines sorted by product id, one per product.
        lines: Vec<ReservedLine>,
    },
    /// Records the decision (the first one wins; a released reservation can only be rejected).
    Decide(Decision),
    /// Records that its units go back to stock (also after commit, or before it was opened).
    Release,
    /// Records that its units are sold; only a reserved, open reservation can be.
    Commit,
}

/// What happened to a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ReservationEvent {
    /// The lines were recorded.
    ReservationOpened {
        /// The order it belongs to.
        order_id: String,
        /// What it holds.
        lines: Vec<ReservedLine>,
    },
    /// Every line is held.
    ReservationConfirmed,
    /// Nothing is held.
    ReservationRejected {
        /// Why.
        reason: String,
    },
    /// The units go back to stock.
    ReservationReleased {
        /// Whether they had been sold.
        after_commit: bool,
    },
    /// The units are sold.
    ReservationCommitted,
}

impl DomainEvent for ReservationEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ReservationOpened { .. } => "ReservationOpened",
            Self::ReservationConfirmed => "ReservationConfirmed",
            Self::ReservationRejected { .. } => "ReservationRejected",
            Self::ReservationReleased { .. } => "ReservationReleased",
            Self::ReservationCommitted => "ReservationCommitted",
        }
    }
}

/// Why a reservation refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservationError {
    /// Commit of a reservation that holds nothing.
    #[error("reservation cannot be committed: {0}")]
    NotCommittable(&'static str),
}

impl ReservationError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotCommittable(_) => "NOT_COMMITTABLE",
        }
    }
}

/// A reservation, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    opened: bool,
    order_id: String,
    lines: Vec<ReservedLine>,
    decision: Option<Decision>,
    closing: Option<Closing>,
}

impl Reservation {
    /// Whether its lines were recorded.
    pub fn opened(&self) -> bool {
        self.opened
    }
    /// The order it belongs to.
    pub fn order_id(&self) -> &str {
        &self.order_id
    }
    /// What it holds (or held).
    pub fn lines(&self) -> &[ReservedLine] {
        &self.lines
    }
    /// The decision, once taken.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }
    /// How it ended, if it did.
    pub fn closing(&self) -> Option<Closing> {
        self.closing
    }
}

impl Aggregate for Reservation {
    const CATEGORY: &'static str = "inventory";
    type Command = ReservationCommand;
    type Event = ReservationEvent;
    type Error = ReservationError;

    fn handle(
        &self,
        command: ReservationCommand,
    ) -> Result<Vec<ReservationEvent>, ReservationError> {
        Ok(match command {
            // Opened, or released before it was ever opened: nothing to record.
            ReservationCommand::Open { .. } if self.opened || self.closing.is_some() => vec![],
            ReservationCommand::Open { order_id, lines } => {
                vec![ReservationEvent::ReservationOpened { order_id, lines }]
            }
            ReservationCommand::Decide(_) if self.decision.is_some() => vec![],
            ReservationCommand::Decide(Decision::Reserved) if self.closing.is_some() => {
                vec![ReservationEvent::ReservationRejected {
                    reason: "the reservation was cancelled before stock could be reserved"
                        .to_owned(),
                }]
            }
            ReservationCommand::Decide(Decision::Reserved) => {
                vec![ReservationEvent::ReservationConfirmed]
            }
            ReservationCommand::Decide(Decision::Rejected { reason }) => {
                vec![ReservationEvent::ReservationRejected { reason }]
            }
            ReservationCommand::Release => match self.closing {
                Some(Closing::Released) => vec![],
                closing => vec![ReservationEvent::ReservationReleased {
                    after_commit: closing == Some(Closing::Committed),
                }],
            },
            ReservationCommand::Commit => match (&self.decision, self.closing) {
                (_, Some(Closing::Committed)) => vec![],
                (_, Some(Closing::Released)) => {
                    return Err(ReservationError::NotCommittable("it was released"));
                }
                (Some(Decision::Reserved), None) => vec![ReservationEvent::ReservationCommitted],
                (Some(Decision::Rejected { .. }), None) => {
                    return Err(ReservationError::NotCommittable("it was rejected"));
                }
                (None, None) if self.opened => {
                    return Err(ReservationError::NotCommittable(
                        "stock is not reserved yet",
                    ));
                }
                (None, None) => {
                    return Err(ReservationError::NotCommittable("it does not exist"));
                }
            },
        })
    }

    fn apply(&mut self, event: &ReservationEvent) {
        match event {
            ReservationEvent::ReservationOpened { order_id, lines } => {
                self.opened = true;
                self.order_id = order_id.clone();
                self.lines = lines.clone();
            }
            ReservationEvent::ReservationConfirmed => self.decision = Some(Decision::Reserved),
            ReservationEvent::ReservationRejected { reason } => {
                self.decision = Some(Decision::Rejected {
                    reason: reason.clone(),
                })
            }
            ReservationEvent::ReservationReleased { .. } => self.closing = Some(Closing::Released),
            ReservationEvent::ReservationCommitted => self.closing = Some(Closing::Committed),
        }
    }
}
