//! The review subgraph's GraphQL schema (Federation v2): `Review @key(id)`, the inventory's
//! `Product @key(id)` extended with `reviews`, `rating` and `reviewSummary`, `review(id)` and
//! the `writeReview` mutation.
//!
//! `Query` and `Mutation` are merged objects: semantic search, recommendations and the
//! assistant ([`crate::search_schema`]) and chat ([`crate::chat_schema`], with the
//! `Subscription` root) add their own roots beside [`ReviewQuery`] and [`ReviewMutation`].

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    Context, Enum, ErrorExtensions, ID, MergedObject, Object, Schema, SimpleObject,
};
use auth::Identity;
use eventstore::EventStore;
use projections::ReadModels;

use crate::chat_schema::{ChatMutation, ChatQuery, ChatSubscription};
use crate::cursor::Cursor;
use crate::error::ServiceError;
use crate::intelligence::Intelligence;
use crate::labels::{Aspect, Sentiment};
use crate::reviews_view::{Rating, ReviewDoc, ReviewViews};
use crate::search_schema::SearchQuery;
use crate::service::{ReviewService, WriteReview};

/// The executable schema.
pub type ReviewSchema = Schema<Query, Mutation, ChatSubscription>;

/// Largest page of `Product.reviews`.
pub const MAX_PAGE: i32 = 50;

/// What the resolvers need; cheap to clone.
#[derive(Clone)]
pub struct ReviewState {
    /// The review use cases.
    pub service: ReviewService,
    /// Search, answers and chat, when this process runs them.
    pub ai: Option<Arc<Intelligence>>,
}

impl ReviewState {
    /// The state over an event store and a read-model database.
    pub async fn new(store: Arc<dyn EventStore>, models: ReadModels) -> Result<Self, ServiceError> {
        Ok(Self {
            service: ReviewService::new(store, models).await?,
            ai: None,
        })
    }

    /// The same state serving search, answers and chat with `ai`.
    pub fn with_intelligence(mut self, ai: Intelligence) -> Self {
        self.ai = Some(Arc::new(ai));
        self
    }
}

/// Every query root of the subgraph.
#[derive(MergedObject, Default)]
pub struct Query(ReviewQuery, SearchQuery, ChatQuery);

/// Every mutation root of the subgraph.
#[derive(MergedObject, Default)]
pub struct Mutation(ReviewMutation, ChatMutation);

/// Builds the schema.
pub fn schema(state: ReviewState) -> ReviewSchema {
    builder().data(state).finish()
}

/// The federation SDL of this subgraph.
pub fn sdl() -> String {
    builder()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

fn builder() -> async_graphql::SchemaBuilder<Query, Mutation, ChatSubscription> {
    Schema::build(Query::default(), Mutation::default(), ChatSubscription)
        .enable_federation()
        .enable_subscription_in_federation()
        .limit_depth(12)
        .limit_complexity(2_000)
}

/// Batches the ratings one request asks for (a product list through the gateway).
pub struct RatingLoader(pub ReviewViews);

impl Loader<String> for RatingLoader {
    type Value = Rating;
    type Error = Arc<ServiceError>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Rating>, Self::Error> {
        self.0
            .ratings(keys)
            .await
            .map_err(|e| Arc::new(ServiceError::from(e)))
    }
}

/// A GraphQL error with `extensions.code` (and `extensions.field` for bad input); platform
/// failures are logged and shown as a generic message.
pub(crate) fn gql_error(err: &ServiceError) -> async_graphql::Error {
    let code = err.code();
    let message = if err.is_client_error() {
        err.to_string()
    } else {
        tracing::error!(error = %err, code, "review request failed");
        "internal error; try again later".to_owned()
    };
    let field = err.field();
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some(field) = field {
            ext.set("field", field);
        }
    })
}

pub(crate) fn service<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a ReviewService> {
    Ok(&ctx.data::<ReviewState>()?.service)
}

/// Search, answers and chat, or `AI_UNAVAILABLE` when this process does not run them.
pub(crate) fn intelligence<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Intelligence> {
    ctx.data::<ReviewState>()?
        .ai
        .as_deref()
        .ok_or_else(|| gql_error(&ServiceError::AiUnavailable))
}

pub(crate) fn identity<'a>(ctx: &Context<'a>) -> Option<&'a Identity> {
    ctx.data_opt::<Option<Identity>>().and_then(Option::as_ref)
}

/// Aspects a review can talk about.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "ReviewAspect")]
pub enum AspectGql {
    /// How it tastes.
    Taste,
    /// How sweet it is.
    Sweetness,
    /// Texture.
    Texture,
    /// Freshness.
    Freshness,
    /// Price and portion.
    Price,
    /// Packaging.
    Packaging,
    /// Delivery.
    Delivery,
    /// Staff and complaint handling.
    Service,
}

impl From<Aspect> for AspectGql {
    fn from(a: Aspect) -> Self {
        match a {
            Aspect::Taste => Self::Taste,
            Aspect::Sweetness => Self::Sweetness,
            Aspect::Texture => Self::Texture,
            Aspect::Freshness => Self::Freshness,
            Aspect::Price => Self::Price,
            Aspect::Packaging => Self::Packaging,
            Aspect::Delivery => Self::Delivery,
            Aspect::Service => Self::Service,
        }
    }
}

/// How a review feels.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Sentiment")]
pub enum SentimentGql {
    /// Favourable.
    Positive,
    /// Neither.
    Neutral,
    /// Unfavourable.
    Negative,
}

impl From<Sentiment> for SentimentGql {
    fn from(s: Sentiment) -> Self {
        match s {
            Sentiment::Positive => Self::Positive,
            Sentiment::Neutral => Self::Neutral,
            Sentiment::Negative => Self::Negative,
        }
    }
}

/// One aspect a review talks about.
#[derive(SimpleObject)]
#[graphql(name = "ReviewAspectLabel")]
pub struct AspectLabelGql {
    /// The aspect.
    pub aspect: AspectGql,
    /// The sentiment about it.
    pub sentiment: SentimentGql,
}

/// What a labeller found in a review.
#[derive(SimpleObject)]
#[graphql(name = "ReviewLabels")]
pub struct LabelsGql {
    /// Overall sentiment.
    pub sentiment: SentimentGql,
    /// Aspects, most relevant first.
    pub aspects: Vec<AspectLabelGql>,
}

/// How many reviews of a product speak of an aspect with a sentiment.
#[derive(SimpleObject)]
#[graphql(name = "ReviewAspectCount")]
pub struct AspectCountGql {
    /// The aspect.
    pub aspect: AspectGql,
    /// The sentiment.
    pub sentiment: SentimentGql,
    /// Reviews.
    pub count: i32,
}

/// A product's stars.
#[derive(SimpleObject)]
#[graphql(name = "ProductRating")]
pub struct RatingGql {
    /// Mean stars, null without reviews.
    pub average: Option<f64>,
    /// Reviews counted.
    pub count: i32,
}

/// The order a review is about (owned by the order subgraph).
#[derive(SimpleObject)]
#[graphql(name = "Order", unresolvable)]
pub struct OrderRef {
    /// The order id.
    pub id: ID,
}

/// A user of the platform.
#[derive(SimpleObject)]
#[graphql(name = "User")]
pub struct UserRef {
    /// Cognito `sub`.
    pub id: ID,
}

pub(crate) fn int(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// A customer's review of a product they received.
pub struct ReviewNode(pub ReviewDoc);

/// A customer's review of a product from one of their orders.
#[Object(name = "Review")]
impl ReviewNode {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// 1 to 5 stars.
    async fn rating(&self) -> i32 {
        int(self.0.rating)
    }
    /// The text (plain, cleaned).
    async fn text(&self) -> &str {
        &self.0.text
    }
    /// The product reviewed.
    async fn product(&self) -> ProductNode {
        ProductNode {
            id: ID(self.0.product_id.clone()),
        }
    }
    /// The order it came in; null for imported reviews without one.
    async fn order(&self) -> Option<OrderRef> {
        self.0
            .order_id
            .as_ref()
            .map(|id| OrderRef { id: ID(id.clone()) })
    }
    /// Who wrote it; null for anonymous imported reviews.
    async fn author(&self) -> Option<UserRef> {
        self.0
            .author_id
            .as_ref()
            .map(|id| UserRef { id: ID(id.clone()) })
    }
    /// When it was written (RFC 3339).
    async fn created_at(&self) -> &str {
        &self.0.created_at
    }
    /// Aspects and sentiment; null until the review is labelled.
    async fn labels(&self) -> Option<LabelsGql> {
        self.0.labels.as_ref().map(|l| LabelsGql {
            sentiment: l.sentiment.into(),
            aspects: l
                .aspects
                .iter()
                .map(|a| AspectLabelGql {
                    aspect: a.aspect.into(),
                    sentiment: a.sentiment.into(),
                })
                .collect(),
        })
    }
}

/// The inventory's product, extended here with its reviews.
pub struct ProductNode {
    id: ID,
}

impl ProductNode {
    /// The product with this id.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: ID(id.into()) }
    }
}

/// A dessert on the menu (owned by the inventory subgraph).
#[Object(name = "Product")]
impl ProductNode {
    /// Its id.
    async fn id(&self) -> &ID {
        &self.id
    }

    /// Its reviews, newest first, a page at a time (`first` 1..=50, `after` a cursor from a
    /// previous page).
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, ReviewNode>> {
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(gql_error(&ServiceError::bad_input(
                "first",
                format!("must be 1 to {MAX_PAGE}, got {first}"),
            )));
        }
        let after = match after.as_deref() {
            Some(raw) => Some(Cursor::decode(raw).ok_or_else(|| {
                gql_error(&ServiceError::bad_input(
                    "after",
                    "not a cursor this API returned",
                ))
            })?),
            None => None,
        };
        let page = service(ctx)?
            .documents()
            .page(&self.id, first as usize, after.as_ref())
            .await
            .map_err(|e| gql_error(&e.into()))?;
        let mut connection = Connection::new(after.is_some(), page.has_next_page);
        connection.edges.extend(
            page.reviews
                .into_iter()
                .map(|doc| Edge::new(doc.cursor(), ReviewNode(doc))),
        );
        Ok(connection)
    }

    /// Its stars: mean and count.
    async fn rating(&self, ctx: &Context<'_>) -> async_graphql::Result<RatingGql> {
        let rating = match ctx.data_opt::<DataLoader<RatingLoader>>() {
            Some(loader) => loader
                .load_one(self.id.to_string())
                .await
                .map_err(|e| gql_error(&e))?,
            None => service(ctx)?
                .views()
                .ratings(std::slice::from_ref(&self.id.0))
                .await
                .map_err(|e| gql_error(&e.into()))?
                .remove(self.id.as_str()),
        }
        .unwrap_or_default();
        Ok(RatingGql {
            average: rating.average(),
            count: int(rating.count),
        })
    }

    /// How many of its labelled reviews speak of each aspect with each sentiment, most
    /// frequent first.
    async fn review_summary(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<AspectCountGql>> {
        let counts = service(ctx)?
            .views()
            .summary(&self.id)
            .await
            .map_err(|e| gql_error(&e.into()))?;
        Ok(counts
            .into_iter()
            .map(|c| AspectCountGql {
                aspect: c.aspect.into(),
                sentiment: c.sentiment.into(),
                count: int(c.count),
            })
            .collect())
    }
}

/// Review queries.
#[derive(Default)]
pub struct ReviewQuery;

#[Object]
impl ReviewQuery {
    /// One review, or null when there is none with this id.
    async fn review(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<ReviewNode>> {
        let found = service(ctx)?.get(&id).await.map_err(|e| gql_error(&e))?;
        Ok(found.map(ReviewNode))
    }

    /// Resolves `Review` references from other subgraphs.
    #[graphql(entity)]
    async fn find_review_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ReviewNode>> {
        let found = service(ctx)?.get(&id).await.map_err(|e| gql_error(&e))?;
        Ok(found.map(ReviewNode))
    }

    /// Resolves `Product` references: any product id gets its review fields.
    #[graphql(entity)]
    async fn find_product_by_id(&self, id: ID) -> ProductNode {
        ProductNode { id }
    }

    /// Resolves `User` references.
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> UserRef {
        UserRef { id }
    }
}

/// Review mutations.
#[derive(Default)]
pub struct ReviewMutation;

#[Object]
impl ReviewMutation {
    /// Reviews a product of the caller's completed order: `rating` 1..=5, `text` 1..=2,000
    /// characters once cleaned of markup; one review per product per order.
    async fn write_review(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        product_id: ID,
        rating: i32,
        text: String,
    ) -> async_graphql::Result<ReviewNode> {
        let input = WriteReview {
            order_id: order_id.0,
            product_id: product_id.0,
            rating: i64::from(rating),
            text,
        };
        let doc = service(ctx)?
            .write(identity(ctx), input)
            .await
            .map_err(|e| gql_error(&e))?;
        Ok(ReviewNode(doc))
    }
}
