//! The review use cases: write a review of a completed order line, read reviews, and record
//! labels from a [`Labeller`].
//!
//! Eligibility: the caller must be the customer of the order, the order must be COMPLETED and
//! contain the product. One review per order line is enforced by the review id (derived from
//! order and product) and the event store's expected version, not by a read model.

use std::sync::Arc;

use auth::Identity;
use chrono::Utc;
use eventstore::{EventStore, Metadata, Repository};
use projections::ReadModels;
use uuid::Uuid;

use crate::documents::ReviewDocuments;
use crate::error::ServiceError;
use crate::labels::{LabelError, Labeller, Labels};
use crate::orders::Orders;
use crate::preprocess::{ContentHash, TextBounds, clean_checked};
use crate::products::product_facts;
use crate::review::{Review, ReviewCommand, ReviewWritten, check_rating, review_id_for_order_line};
use crate::reviews_view::{ReviewDoc, ReviewViews};

/// Longest order id accepted, in bytes.
const MAX_ORDER_ID_LEN: usize = 128;
/// Longest product id accepted, in bytes (the inventory's limit).
const MAX_PRODUCT_ID_LEN: usize = 64;

/// What a customer writes.
#[derive(Debug, Clone)]
pub struct WriteReview {
    /// The completed order.
    pub order_id: String,
    /// The product of that order.
    pub product_id: String,
    /// 1..=5 stars.
    pub rating: i64,
    /// The text as sent (cleaned before it is stored).
    pub text: String,
}

/// The review use cases; cheap to clone.
#[derive(Clone)]
pub struct ReviewService {
    inner: Arc<Inner>,
    documents: Arc<dyn ReviewDocuments>,
}

struct Inner {
    reviews: Repository<Review>,
    views: ReviewViews,
    orders: Orders,
}

impl ReviewService {
    /// The service over an event store and a read-model database (registering the `reviews`
    /// projection there, so its views exist before its consumer first runs).
    pub async fn new(store: Arc<dyn EventStore>, models: ReadModels) -> Result<Self, ServiceError> {
        let orders = Orders::new(models.pool().clone(), store.clone());
        let views = ReviewViews::open(models).await?;
        Ok(Self {
            documents: Arc::new(views.clone()),
            inner: Arc::new(Inner {
                reviews: Repository::new(store),
                views,
                orders,
            }),
        })
    }

    /// The same service reading review documents from `documents` (MongoDB in production)
    /// instead of the SQL read model; ratings and aspect counts stay in the read model.
    pub fn with_documents(mut self, documents: Arc<dyn ReviewDocuments>) -> Self {
        self.documents = documents;
        self
    }

    /// The read model's queries.
    pub fn views(&self) -> &ReviewViews {
        &self.inner.views
    }

    /// The review documents readers see (a product's page, reviews by id).
    pub fn documents(&self) -> &dyn ReviewDocuments {
        self.documents.as_ref()
    }

    /// Writes the caller's review of `product_id` in their completed order `order_id`.
    #[tracing::instrument(skip_all, fields(order_id = %input.order_id, product_id = %input.product_id))]
    pub async fn write(
        &self,
        identity: Option<&Identity>,
        input: WriteReview,
    ) -> Result<ReviewDoc, ServiceError> {
        let me = auth::require(identity)?;
        check_id("orderId", &input.order_id, MAX_ORDER_ID_LEN, "-_.:@")?;
        check_id("productId", &input.product_id, MAX_PRODUCT_ID_LEN, "-_.")?;
        check_rating(input.rating)?;
        let text = clean_checked(&input.text, TextBounds::default())
            .map_err(|e| ServiceError::bad_input("text", e.to_string()))?;
        let order = self
            .inner
            .orders
            .get(&input.order_id)
            .await?
            .ok_or_else(|| ServiceError::OrderNotFound(input.order_id.clone()))?;
        if order.customer_id != me.sub {
            return Err(auth::AuthError::Forbidden("not your order").into());
        }
        if !order.is_completed() {
            return Err(ServiceError::OrderNotCompleted {
                status: order.status.clone(),
            });
        }
        let Some(name_at_order) = order.line(&input.product_id) else {
            return Err(ServiceError::ProductNotInOrder {
                product_id: input.product_id,
            });
        };
        // The catalog's name and category when it has them, else the name at order time.
        let catalog = match product_facts(
            self.inner.views.models().pool(),
            std::slice::from_ref(&input.product_id),
        )
        .await
        {
            Ok(mut found) => found.remove(&input.product_id),
            Err(err) => {
                tracing::warn!(error = %err, "catalog read model unreadable; using the order's product name");
                None
            }
        };
        let review_id = review_id_for_order_line(&input.order_id, &input.product_id);
        let written = ReviewWritten {
            review_id,
            product_name: catalog
                .as_ref()
                .map_or_else(|| name_at_order.to_owned(), |p| p.name.clone()),
            product_category: catalog.map(|p| p.category),
            order_id: Some(input.order_id.clone()),
            order_date: order.placed_at,
            author_id: Some(me.sub.clone()),
            rating: input.rating,
            content_hash: ContentHash::of(&input.product_id, Some(&me.sub), &text).to_string(),
            product_id: input.product_id,
            text,
            created_at: Utc::now(),
            source: None,
        };
        let done = self
            .inner
            .reviews
            .execute(
                &review_id.to_string(),
                ReviewCommand::Write(Box::new(written.clone())),
                metadata(Some(me)),
            )
            .await?;
        metrics::counter!("reviews_written_total").increment(1);
        Ok(ReviewDoc::of(&written, done.state.labels))
    }

    /// A review by id: from the read model, else (just written) from its own stream.
    pub async fn get(&self, id: &str) -> Result<Option<ReviewDoc>, ServiceError> {
        if let Some(doc) = self.documents.get(id).await? {
            return Ok(Some(doc));
        }
        let Ok(uuid) = Uuid::parse_str(id) else {
            return Ok(None);
        };
        let loaded = self.inner.reviews.load(&uuid.to_string()).await?;
        Ok(loaded
            .state
            .written
            .as_ref()
            .map(|w| ReviewDoc::of(w, loaded.state.labels.clone())))
    }

    /// Records a labeller's answer for one review (a new `ReviewLabelled` when it changed).
    pub async fn record_labels(
        &self,
        review_id: Uuid,
        labels: Labels,
        metadata: Metadata,
    ) -> Result<(), ServiceError> {
        self.inner
            .reviews
            .execute(
                &review_id.to_string(),
                ReviewCommand::Label(labels),
                metadata,
            )
            .await?;
        Ok(())
    }

    /// Labels `review_ids` with one call to `labeller` and records the answers; returns how
    /// many reviews were labelled (unknown ids are left out).
    pub async fn label_reviews(
        &self,
        labeller: &dyn Labeller,
        review_ids: &[Uuid],
    ) -> Result<usize, ServiceError> {
        let mut ids = Vec::with_capacity(review_ids.len());
        let mut texts = Vec::with_capacity(review_ids.len());
        for id in review_ids {
            let loaded = self.inner.reviews.load(&id.to_string()).await?;
            if let Some(written) = loaded.state.written {
                ids.push(*id);
                texts.push(written.text);
            }
        }
        if texts.is_empty() {
            return Ok(0);
        }
        let labels = labeller.label(&texts).await?;
        if labels.len() != texts.len() {
            return Err(LabelError::BadAnswer(format!(
                "{} labels for {} texts",
                labels.len(),
                texts.len()
            ))
            .into());
        }
        for (id, labels) in ids.iter().zip(labels) {
            self.record_labels(*id, labels, metadata(None)).await?;
        }
        Ok(ids.len())
    }
}

/// Event metadata on behalf of `identity`, continuing the current trace.
fn metadata(identity: Option<&Identity>) -> Metadata {
    let mut metadata = Metadata::new();
    if let Some(identity) = identity {
        metadata = metadata.with_user(identity.sub.clone());
    }
    match telemetry::current_traceparent() {
        Some(traceparent) => metadata.with_traceparent(traceparent),
        None => metadata,
    }
}

/// Checks an id argument: 1..=`max` bytes of ASCII letters, digits and `extra`.
pub(crate) fn check_id(
    field: &'static str,
    id: &str,
    max: usize,
    extra: &str,
) -> Result<(), ServiceError> {
    let ok = !id.is_empty()
        && id.len() <= max
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::bad_input(
            field,
            format!("must be 1 to {max} ASCII letters, digits or one of {extra:?}"),
        ))
    }
}
