//! Errors of the inventory subgraph, each with a stable code that becomes the GraphQL
//! `extensions.code`.

use eventstore::{RepositoryError, StoreError};

use crate::product::ProductError;
use crate::reservation::ReservationError;

/// What went wrong while serving inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A product refused the command (validation, stock, status).
    #[error(transparent)]
    Product(#[from] ProductError),
    /// A reservation refused the command.
    #[error(transparent)]
    Reservation(#[from] ReservationError),
    /// The caller may not do this.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The product does not exist.
    #[error("product {id} does not exist")]
    ProductNotFound {
        /// The id asked for.
        id: String,
    },
    /// An input outside the product rules is malformed (a cursor, a page size); `field` names it.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending input, e.g. `first`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The event store failed; see [`StoreError::certainly_aborted`] for whether a write happened.
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    /// A stored event or snapshot does not decode.
    #[error("stored data does not decode: {0}")]
    Decode(String),
    /// Too many writers raced for one stream; nothing was written by this command.
    #[error("stream {0} is too contended; try again")]
    Contended(String),
    /// The read-model database failed.
    #[error("read model: {0}")]
    ReadModel(#[from] projections::ProjectionError),
}

impl InventoryError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Product(e) => e.code(),
            Self::Reservation(e) => e.code(),
            Self::Auth(e) => e.code(),
            Self::ProductNotFound { .. } => "NOT_FOUND",
            Self::InvalidInput { .. } => "BAD_USER_INPUT",
            Self::Store(e) => e.code(),
            Self::Decode(_) => "EVENT_CODEC",
            Self::Contended(_) => "CONTENDED",
            Self::ReadModel(e) => e.code(),
        }
    }

    /// The input at fault, for validation errors.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Product(ProductError::Invalid { field, .. })
            | Self::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether the caller caused it (bad input, refused rule, missing rights) rather than the
    /// platform; only those messages are shown to clients as they are.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::Product(_)
                | Self::Reservation(_)
                | Self::Auth(_)
                | Self::ProductNotFound { .. }
                | Self::InvalidInput { .. }
        )
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

impl<E> From<RepositoryError<E>> for InventoryError
where
    E: std::error::Error + Into<InventoryError> + 'static,
{
    fn from(err: RepositoryError<E>) -> Self {
        match err {
            RepositoryError::Domain(e) => e.into(),
            RepositoryError::Store(e) => Self::Store(e),
            RepositoryError::Decode { stream, reason } => {
                Self::Decode(format!("{stream}: {reason}"))
            }
            RepositoryError::Contended { stream, .. } => Self::Contended(stream),
        }
    }
}

impl From<sqlx::Error> for InventoryError {
    fn from(err: sqlx::Error) -> Self {
        Self::ReadModel(projections::ProjectionError::Database(err))
    }
}
