//! Errors of the review use cases, each with a stable code that becomes the GraphQL
//! `extensions.code`.

use eventstore::{RepositoryError, StoreError};

use crate::labels::LabelError;
use crate::orders::OrdersError;
use crate::review::ReviewError;

/// Why a review request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Not signed in, or not allowed (someone else's order).
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The review refused the command (already reviewed, invalid, not found).
    #[error(transparent)]
    Review(#[from] ReviewError),
    /// An input is malformed; `field` names it.
    #[error("invalid {field}: {reason}")]
    BadInput {
        /// The argument at fault, as the API spells it.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No order with this id.
    #[error("order {0} not found")]
    OrderNotFound(String),
    /// The order was not handed over yet (or was cancelled).
    #[error("order is {status}; only completed orders can be reviewed")]
    OrderNotCompleted {
        /// Its status.
        status: String,
    },
    /// The order does not contain the product.
    #[error("product {product_id} is not in this order")]
    ProductNotInOrder {
        /// The product asked for.
        product_id: String,
    },
    /// The labeller failed.
    #[error(transparent)]
    Label(#[from] LabelError),
    /// Orders could not be read.
    #[error(transparent)]
    Orders(#[from] OrdersError),
    /// The event store failed; see [`StoreError::certainly_aborted`] for whether a write happened.
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    /// The read-model database failed.
    #[error("read model: {0}")]
    ReadModel(#[from] projections::ProjectionError),
    /// Stored data does not decode.
    #[error("stored data does not decode: {0}")]
    Decode(String),
    /// The review documents (MongoDB in production) failed.
    #[error(transparent)]
    Documents(crate::documents::DocumentsError),
    /// Other writers kept winning the race for the review's stream.
    #[error("review {0} is too contended; try again")]
    Contended(String),
    /// The assistant refused or failed (bad question, another user's session, LLM failure).
    #[error(transparent)]
    Assistant(#[from] assistant::AssistantError),
    /// The embedding model failed.
    #[error("embedding model: {0}")]
    Model(#[from] model::ModelError),
    /// The vector index failed.
    #[error("vector index: {0}")]
    Index(#[from] vectorindex::IndexError),
    /// Search, recommendations and the assistant are not configured in this process.
    #[error("review search and the assistant are not available here")]
    AiUnavailable,
    /// The vector index holds another model's vectors (a re-embedding job has not finished).
    #[error("the review index is being rebuilt for model {0}; try again later")]
    Reindexing(String),
}

impl ServiceError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Auth(e) => e.code(),
            Self::Review(e) => e.code(),
            Self::BadInput { .. } => "BAD_USER_INPUT",
            Self::OrderNotFound(_) => "NOT_FOUND",
            Self::OrderNotCompleted { .. } => "ORDER_NOT_COMPLETED",
            Self::ProductNotInOrder { .. } => "PRODUCT_NOT_IN_ORDER",
            Self::Label(LabelError::Unavailable(_)) => "LABELLER_UNAVAILABLE",
            Self::Label(LabelError::BadAnswer(_)) => "LABELLER_BAD_ANSWER",
            Self::Orders(OrdersError::ReadModel(_)) | Self::ReadModel(_) => "READ_MODEL_DATABASE",
            Self::Orders(OrdersError::Store(e)) | Self::Store(e) => e.code(),
            Self::Decode(_) => "EVENT_CODEC",
            Self::Documents(_) => "READ_MODEL_DATABASE",
            Self::Contended(_) => "CONTENDED",
            Self::Assistant(e) => e.code(),
            Self::Model(model::ModelError::InvalidInput(_)) => "BAD_USER_INPUT",
            Self::Model(model::ModelError::Overloaded) => "MODEL_OVERLOADED",
            Self::Model(_) => "MODEL_UNAVAILABLE",
            Self::Index(e) => e.code(),
            Self::AiUnavailable => "AI_UNAVAILABLE",
            Self::Reindexing(_) => "REINDEXING",
        }
    }

    /// The argument at fault, for input errors.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::BadInput { field, .. } | Self::Review(ReviewError::Invalid { field, .. }) => {
                Some(field)
            }
            _ => None,
        }
    }

    /// Whether the caller caused it; only those messages reach clients as they are.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::Auth(_)
                | Self::Review(_)
                | Self::BadInput { .. }
                | Self::OrderNotFound(_)
                | Self::OrderNotCompleted { .. }
                | Self::ProductNotInOrder { .. }
                | Self::AiUnavailable
                | Self::Reindexing(_)
                | Self::Model(model::ModelError::InvalidInput(_) | model::ModelError::Overloaded)
                | Self::Assistant(
                    assistant::AssistantError::BadInput(_)
                        | assistant::AssistantError::Forbidden
                        | assistant::AssistantError::SessionNotFound
                )
        )
    }

    pub(crate) fn bad_input(field: &'static str, reason: impl Into<String>) -> Self {
        Self::BadInput {
            field,
            reason: reason.into(),
        }
    }
}

impl From<RepositoryError<ReviewError>> for ServiceError {
    fn from(err: RepositoryError<ReviewError>) -> Self {
        match err {
            RepositoryError::Domain(e) => Self::Review(e),
            RepositoryError::Store(e) => Self::Store(e),
            RepositoryError::Decode { stream, reason } => {
                Self::Decode(format!("{stream}: {reason}"))
            }
            RepositoryError::Contended { stream, .. } => Self::Contended(stream),
        }
    }
}

impl From<crate::documents::DocumentsError> for ServiceError {
    fn from(err: crate::documents::DocumentsError) -> Self {
        match err {
            crate::documents::DocumentsError::Sql(e) => e.into(),
            other => Self::Documents(other),
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(err: sqlx::Error) -> Self {
        Self::ReadModel(projections::ProjectionError::Database(err))
    }
}
