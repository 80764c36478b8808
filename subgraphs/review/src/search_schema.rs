//! GraphQL for semantic search, recommendations and grounded answers: `searchReviews`,
//! `recommendProducts` and `askReviews`. Every argument is checked and every failure is a
//! typed error with `extensions.code`.

use std::collections::HashMap;

use async_graphql::{Context, ID, Object, SimpleObject};
use vectorindex::SearchFilter;

use crate::error::ServiceError;
use crate::reviews_view::ReviewDoc;
use crate::schema::{ProductNode, RatingGql, ReviewNode, gql_error, int, intelligence, service};
use crate::search::Like;
use crate::service::check_id;

/// Most results one search or recommendation returns.
pub const MAX_FIRST: i32 = 50;
/// Longest search text, in characters after trimming.
pub const MAX_QUERY_CHARS: usize = assistant::MAX_QUESTION_CHARS;
/// Longest category name, in characters.
pub const MAX_CATEGORY_CHARS: usize = 64;
/// Longest product id accepted, in bytes (the inventory's limit).
const MAX_PRODUCT_ID_LEN: usize = 64;

/// One review found by `searchReviews`.
#[derive(SimpleObject)]
pub struct ReviewSearchResult {
    /// Cosine similarity to the query, higher is closer (at most 1).
    pub score: f64,
    /// The review.
    pub review: ReviewNode,
}

/// A product recommended by `recommendProducts`.
#[derive(SimpleObject)]
pub struct ProductRecommendation {
    /// The product.
    pub product: ProductNode,
    /// The ranking score in 0..=1: 0.8 × review similarity relative to the other candidates
    /// + 0.2 × rating on a 0..1 scale.
    pub score: f64,
    /// Mean similarity of its best-matching reviews.
    pub similarity: f64,
    /// Its stars.
    pub rating: RatingGql,
    /// How many of its reviews matched.
    pub matching_reviews: i32,
}

/// A grounded answer from the reviews.
#[derive(SimpleObject)]
pub struct Answer {
    /// The answer, in Korean, with `[n]` markers for its citations.
    pub text: String,
    /// The reviews it is grounded on, in citation order; every one exists.
    pub citations: Vec<ReviewNode>,
    /// The model that wrote it (`extractive` when answered locally).
    pub model: String,
}

/// A trimmed free text of 1..=`max` characters, or `BAD_USER_INPUT` on `field`.
pub(crate) fn check_text(
    field: &'static str,
    text: &str,
    max: usize,
) -> Result<String, ServiceError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(ServiceError::bad_input(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(ServiceError::bad_input(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

fn check_first(first: i32) -> Result<usize, ServiceError> {
    if (1..=MAX_FIRST).contains(&first) {
        Ok(first as usize)
    } else {
        Err(ServiceError::bad_input(
            "first",
            format!("must be 1 to {MAX_FIRST}, got {first}"),
        ))
    }
}

fn check_product(field: &'static str, id: &ID) -> Result<String, ServiceError> {
    check_id(field, id, MAX_PRODUCT_ID_LEN, "-_.")?;
    Ok(id.0.clone())
}

/// The checked arguments of `searchReviews`.
fn search_args(
    query: &str,
    product_id: Option<&ID>,
    category: Option<&str>,
    first: i32,
) -> Result<(String, Option<String>, Option<String>, usize), ServiceError> {
    Ok((
        check_text("query", query, MAX_QUERY_CHARS)?,
        product_id
            .map(|id| check_product("productId", id))
            .transpose()?,
        category
            .map(|c| check_text("category", c, MAX_CATEGORY_CHARS))
            .transpose()?,
        check_first(first)?,
    ))
}

/// The reviews `ids` as nodes, in order: from the read model, else their own streams.
pub(crate) async fn review_nodes(
    ctx: &Context<'_>,
    ids: &[String],
) -> async_graphql::Result<Vec<ReviewNode>> {
    let service = service(ctx)?;
    let mut found: HashMap<String, ReviewDoc> = service
        .documents()
        .get_many(ids)
        .await
        .map_err(|e| gql_error(&e.into()))?;
    let mut nodes = Vec::with_capacity(ids.len());
    for id in ids {
        let doc = match found.remove(id) {
            Some(doc) => Some(doc),
            None => service.get(id).await.map_err(|e| gql_error(&e))?,
        };
        nodes.extend(doc.map(ReviewNode));
    }
    Ok(nodes)
}

/// Search, recommendation and answer queries.
#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Reviews closest in meaning to `query` (1..=500 characters, any wording), best first;
    /// only of `productId` and/or `category` when given; `first` 1..=50.
    async fn search_reviews(
        &self,
        ctx: &Context<'_>,
        query: String,
        product_id: Option<ID>,
        category: Option<String>,
        #[graphql(default = 10)] first: i32,
    ) -> async_graphql::Result<Vec<ReviewSearchResult>> {
        let (query, product_id, category, first) =
            search_args(&query, product_id.as_ref(), category.as_deref(), first)
                .map_err(|e| gql_error(&e))?;
        let ai = intelligence(ctx)?;
        let filter = SearchFilter {
            product_id,
            category,
        };
        let hits = ai
            .search
            .search(&query, &filter, first)
            .await
            .map_err(|e| gql_error(&e))?;
        Ok(hits
            .into_iter()
            .map(|hit| ReviewSearchResult {
                score: f64::from(hit.score),
                review: ReviewNode(hit.review),
            })
            .collect())
    }

    /// Products ranked by how well their reviews match `query`, or resemble the reviews of
    /// `likeProductId` (exactly one of the two), and by rating; `first` 1..=50.
    async fn recommend_products(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        like_product_id: Option<ID>,
        #[graphql(default = 5)] first: i32,
    ) -> async_graphql::Result<Vec<ProductRecommendation>> {
        let like = match (query.as_deref(), like_product_id.as_ref()) {
            (Some(text), None) => check_text("query", text, MAX_QUERY_CHARS).map(Like::Query),
            (None, Some(id)) => check_product("likeProductId", id).map(Like::Product),
            _ => Err(ServiceError::bad_input(
                "query",
                "give exactly one of query or likeProductId",
            )),
        }
        .map_err(|e| gql_error(&e))?;
        let first = check_first(first).map_err(|e| gql_error(&e))?;
        let ranked = intelligence(ctx)?
            .search
            .recommend(&like, first)
            .await
            .map_err(|e| gql_error(&e))?;
        Ok(ranked
            .into_iter()
            .map(|r| ProductRecommendation {
                product: ProductNode::new(r.product_id),
                score: r.score,
                similarity: r.similarity,
                rating: RatingGql {
                    average: r.rating.average(),
                    count: int(r.rating.count),
                },
                matching_reviews: i32::try_from(r.matching_reviews).unwrap_or(i32::MAX),
            })
            .collect())
    }

    /// Answers `question` (1..=500 characters) from the most relevant reviews (of
    /// `productId` only, when given), citing them; never says anything about their authors.
    async fn ask_reviews(
        &self,
        ctx: &Context<'_>,
        question: String,
        product_id: Option<ID>,
    ) -> async_graphql::Result<Answer> {
        let question =
            check_text("question", &question, MAX_QUERY_CHARS).map_err(|e| gql_error(&e))?;
        let product_id = product_id
            .as_ref()
            .map(|id| check_product("productId", id))
            .transpose()
            .map_err(|e| gql_error(&e))?;
        let answer = intelligence(ctx)?
            .answerer
            .ask(&question, product_id.as_deref())
            .await
            .map_err(|e| gql_error(&e.into()))?;
        let ids: Vec<String> = answer
            .citations
            .iter()
            .map(|c| c.review.id.clone())
            .collect();
        Ok(Answer {
            text: answer.text,
            citations: review_nodes(ctx, &ids).await?,
            model: answer.model,
        })
    }
}
