//! The payment subgraph's errors, each with a stable code that becomes the GraphQL
//! `extensions.code` (Toss's own code for Toss errors).

use auth::AuthError;
use eventstore::RepositoryError;
use projections::ProjectionError;

use crate::payment::PaymentRuleError;
use crate::toss::TossError;

/// Why a payment operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// Not signed in, or not allowed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// An input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// No order with this id awaits payment.
    #[error("order {0} is not awaiting payment")]
    OrderNotFound(String),
    /// The order can no longer be paid (closed or expired).
    #[error("order cannot be paid: {0}")]
    NotPayable(String),
    /// The payment's rules refused (amount mismatch, already paid, failed, ...).
    #[error(transparent)]
    Rule(#[from] PaymentRuleError),
    /// Toss refused or could not be reached; the code is Toss's (or `TOSS_TIMEOUT`,
    /// `TOSS_UNREACHABLE`, `TOSS_BAD_RESPONSE`).
    #[error(transparent)]
    Toss(#[from] TossError),
    /// Toss answered with a payment that does not belong to the order.
    #[error("toss answered a payment that does not match the order: {0}")]
    Mismatch(String),
    /// The event store failed.
    #[error("payment store: {0}")]
    Store(#[source] RepositoryError<PaymentRuleError>),
    /// The read-model database failed.
    #[error("payable orders: {0}")]
    ReadModel(#[from] ProjectionError),
    /// The task carrying the request stopped before it finished (the process is shutting
    /// down); the outcome is unknown.
    #[error("payment task stopped: {0}")]
    Interrupted(String),
}

impl From<RepositoryError<PaymentRuleError>> for PaymentError {
    fn from(err: RepositoryError<PaymentRuleError>) -> Self {
        match err {
            RepositoryError::Domain(rule) => Self::Rule(rule),
            other => Self::Store(other),
        }
    }
}

impl PaymentError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            Self::Auth(e) => e.code(),
            Self::Invalid(_) => "BAD_USER_INPUT",
            Self::OrderNotFound(_) => "ORDER_NOT_FOUND",
            Self::NotPayable(_) => "ORDER_NOT_PAYABLE",
            Self::Rule(e) => e.code(),
            Self::Toss(e) => &e.code,
            Self::Mismatch(_) => "PAYMENT_MISMATCH",
            Self::Store(e) => e.code(),
            Self::ReadModel(_) => "READ_MODEL_UNAVAILABLE",
            Self::Interrupted(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// Whether the error is ours (infrastructure), so its details stay in the logs.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Store(_) | Self::ReadModel(_) | Self::Mismatch(_) | Self::Interrupted(_)
        )
    }

    /// Whether Toss asked to try again in a while, as a new request (its `TRY_LATER` codes).
    pub fn is_try_later(&self) -> bool {
        matches!(self, Self::Toss(e) if e.is_try_later())
    }

    /// Whether trying again later may succeed (Toss or our stores were unavailable, or the
    /// outcome is unknown).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Toss(e) => e.is_transient(),
            Self::Store(_) | Self::ReadModel(_) | Self::Interrupted(_) => true,
            _ => false,
        }
    }
}
