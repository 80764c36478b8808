//! The `reviews` read model: the review documents (denormalised: product name and category,
//! order date, labels), each product's rating (count and sum of stars) and its aspect ×
//! sentiment counts, all maintained by one projection so they never disagree; plus the
//! queries the schema and the batch import run against its views.
//!
//! Portable SQL on Postgres and SQLite. Times are stored as RFC 3339 text with microseconds
//! and `Z`, so text order is time order.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use eventstore::RecordedEvent;
use projections::{Projection, ProjectionError, ReadModels, Tables};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row};

use crate::cursor::Cursor;
use crate::labels::{Aspect, Labels, Sentiment};
use crate::review::{REVIEW_LABELLED, REVIEW_WRITTEN, ReviewLabelled, ReviewWritten};

/// The projection's name (tables `rm_reviews_g{N}_*`).
pub const NAME: &str = "reviews";
/// The view of review documents.
pub const REVIEWS: &str = "rm_reviews_reviews";
/// The view of product ratings.
pub const RATINGS: &str = "rm_reviews_ratings";
/// The view of aspect × sentiment counts per product.
pub const ASPECTS: &str = "rm_reviews_aspects";
/// Most ids looked up in one statement.
const IDS_PER_STATEMENT: usize = 200;
const COLUMNS: &str = "id, product_id, product_name, product_category, order_id, order_date, \
     author_id, rating, text, content_hash, created_at, labels";

/// A time as the read model stores it.
pub fn stored_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A review as readers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewDoc {
    /// The review id.
    pub id: String,
    /// The product reviewed.
    pub product_id: String,
    /// The product's name when reviewed.
    pub product_name: String,
    /// The product's category, when known.
    pub product_category: Option<String>,
    /// The order, when known.
    pub order_id: Option<String>,
    /// When the order was placed (stored RFC 3339), when known.
    pub order_date: Option<String>,
    /// The author's `sub`, unless anonymous.
    pub author_id: Option<String>,
    /// 1..=5.
    pub rating: i64,
    /// The cleaned text.
    pub text: String,
    /// Hex SHA-256 of product, author and text.
    pub content_hash: String,
    /// When it was written (stored RFC 3339).
    pub created_at: String,
    /// Labels, once labelled.
    pub labels: Option<Labels>,
}

impl ReviewDoc {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let labels: Option<String> = row.try_get("labels")?;
        let labels = labels
            .map(|raw| serde_json::from_str(&raw))
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Self {
            id: row.try_get("id")?,
            product_id: row.try_get("product_id")?,
            product_name: row.try_get("product_name")?,
            product_category: row.try_get("product_category")?,
            order_id: row.try_get("order_id")?,
            order_date: row.try_get("order_date")?,
            author_id: row.try_get("author_id")?,
            rating: row.try_get("rating")?,
            text: row.try_get("text")?,
            content_hash: row.try_get("content_hash")?,
            created_at: row.try_get("created_at")?,
            labels,
        })
    }

    /// The document of a review as written, before the read model has it.
    pub fn of(w: &ReviewWritten, labels: Option<Labels>) -> Self {
        Self {
            id: w.review_id.to_string(),
            product_id: w.product_id.clone(),
            product_name: w.product_name.clone(),
            product_category: w.product_category.clone(),
            order_id: w.order_id.clone(),
            order_date: w.order_date.as_ref().map(stored_time),
            author_id: w.author_id.clone(),
            rating: w.rating,
            text: w.text.clone(),
            content_hash: w.content_hash.clone(),
            created_at: stored_time(&w.created_at),
            labels,
        }
    }

    /// The cursor that resumes after this review.
    pub fn cursor(&self) -> String {
        Cursor::after(&self.created_at, &self.id).encode()
    }
}

/// A product's rating.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rating {
    /// Reviews counted.
    pub count: i64,
    /// Sum of their stars.
    pub sum: i64,
}

impl Rating {
    /// Mean stars; `None` without reviews.
    pub fn average(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }
}

/// How many of a product's reviews speak of `aspect` with `sentiment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AspectCount {
    /// The aspect.
    pub aspect: Aspect,
    /// The sentiment.
    pub sentiment: Sentiment,
    /// Reviews.
    pub count: i64,
}

/// The `reviews` projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReviewsView;

#[async_trait]
impl Projection for ReviewsView {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [&'static str] {
        &["review"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["reviews", "ratings", "aspects"]
    }

    async fn create_tables(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
    ) -> Result<(), ProjectionError> {
        let reviews = tables.table("reviews");
        let ddl = [
            format!(
                "CREATE TABLE {reviews} (
                    id TEXT PRIMARY KEY,
                    product_id TEXT NOT NULL,
                    product_name TEXT NOT NULL,
                    product_category TEXT,
                    order_id TEXT,
                    order_date TEXT,
                    author_id TEXT,
                    rating BIGINT NOT NULL,
                    text TEXT NOT NULL,
                    content_hash TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    labels TEXT
                )"
            ),
            format!(
                "CREATE INDEX {} ON {reviews} (product_id, created_at, id)",
                tables.object("reviews_by_product")
            ),
            format!(
                "CREATE INDEX {} ON {reviews} (content_hash)",
                tables.object("reviews_by_hash")
            ),
            format!(
                "CREATE TABLE {} (
                    product_id TEXT PRIMARY KEY,
                    review_count BIGINT NOT NULL,
                    rating_sum BIGINT NOT NULL
                )",
                tables.table("ratings")
            ),
            format!(
                "CREATE TABLE {} (
                    product_id TEXT NOT NULL,
                    aspect TEXT NOT NULL,
                    sentiment TEXT NOT NULL,
                    review_count BIGINT NOT NULL,
                    PRIMARY KEY (product_id, aspect, sentiment)
                )",
                tables.table("aspects")
            ),
        ];
        for statement in ddl {
            conn.execute(statement.as_str()).await?;
        }
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let decode_err = |e: eventstore::StoreError| ProjectionError::Decode {
            event_id: event.id.to_string(),
            reason: e.to_string(),
        };
        match event.event_type.as_str() {
            REVIEW_WRITTEN => {
                // The body is `ReviewEvent`'s: the payload's fields beside a `type` tag.
                let written: ReviewWritten = event.decode().map_err(decode_err)?;
                insert_review(conn, tables, &written).await
            }
            REVIEW_LABELLED => {
                let labelled: ReviewLabelled = event.decode().map_err(decode_err)?;
                relabel(conn, tables, &labelled, event).await
            }
            other => {
                tracing::debug!(
                    event_type = other,
                    "reviews view skips an unknown event type"
                );
                Ok(())
            }
        }
    }
}

async fn insert_review(
    conn: &mut AnyConnection,
    tables: &Tables,
    w: &ReviewWritten,
) -> Result<(), ProjectionError> {
    let sql = format!(
        "INSERT INTO {} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)",
        tables.table("reviews")
    );
    sqlx::query(&sql)
        .bind(w.review_id.to_string())
        .bind(w.product_id.as_str())
        .bind(w.product_name.as_str())
        .bind(w.product_category.clone())
        .bind(w.order_id.clone())
        .bind(w.order_date.as_ref().map(stored_time))
        .bind(w.author_id.clone())
        .bind(w.rating)
        .bind(w.text.as_str())
        .bind(w.content_hash.as_str())
        .bind(stored_time(&w.created_at))
        .execute(&mut *conn)
        .await?;
    let ratings = tables.table("ratings");
    let sql = format!(
        "INSERT INTO {ratings} (product_id, review_count, rating_sum) VALUES ($1, 1, $2) \
         ON CONFLICT (product_id) DO UPDATE SET review_count = {ratings}.review_count + 1, \
         rating_sum = {ratings}.rating_sum + excluded.rating_sum"
    );
    sqlx::query(&sql)
        .bind(w.product_id.as_str())
        .bind(w.rating)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn relabel(
    conn: &mut AnyConnection,
    tables: &Tables,
    l: &ReviewLabelled,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let reviews = tables.table("reviews");
    let aspects = tables.table("aspects");
    let id = l.review_id.to_string();
    let row = sqlx::query(&format!(
        "SELECT product_id, labels FROM {reviews} WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Err(ProjectionError::Decode {
            event_id: event.id.to_string(),
            reason: format!("labels for review {id} before it was written"),
        });
    };
    let product_id: String = row.try_get(0)?;
    let old: Option<String> = row.try_get(1)?;
    let old: Option<Labels> = old
        .map(|raw| serde_json::from_str(&raw))
        .transpose()
        .map_err(|e| ProjectionError::Decode {
            event_id: event.id.to_string(),
            reason: format!("stored labels of {id}: {e}"),
        })?;
    if let Some(old) = old {
        for a in &old.aspects {
            sqlx::query(&format!(
                "UPDATE {aspects} SET review_count = review_count - 1 \
                 WHERE product_id = $1 AND aspect = $2 AND sentiment = $3"
            ))
            .bind(product_id.as_str())
            .bind(a.aspect.as_str())
            .bind(a.sentiment.as_str())
            .execute(&mut *conn)
            .await?;
        }
    }
    for a in &l.labels.aspects {
        sqlx::query(&format!(
            "INSERT INTO {aspects} (product_id, aspect, sentiment, review_count) \
             VALUES ($1, $2, $3, 1) ON CONFLICT (product_id, aspect, sentiment) \
             DO UPDATE SET review_count = {aspects}.review_count + 1"
        ))
        .bind(product_id.as_str())
        .bind(a.aspect.as_str())
        .bind(a.sentiment.as_str())
        .execute(&mut *conn)
        .await?;
    }
    let labels = serde_json::to_string(&l.labels).map_err(|e| ProjectionError::Decode {
        event_id: event.id.to_string(),
        reason: e.to_string(),
    })?;
    sqlx::query(&format!("UPDATE {reviews} SET labels = $1 WHERE id = $2"))
        .bind(labels)
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One page of a product's reviews, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewPage {
    /// The reviews.
    pub reviews: Vec<ReviewDoc>,
    /// Whether more follow.
    pub has_next_page: bool,
}

/// Queries over the `reviews` read model; cheap to clone.
#[derive(Clone)]
pub struct ReviewViews {
    models: ReadModels,
}

impl ReviewViews {
    /// The views in `models`, registering the projection so they exist before its consumer runs.
    pub async fn open(models: ReadModels) -> Result<Self, ProjectionError> {
        models.register(&ReviewsView).await?;
        Ok(Self { models })
    }

    /// The read-model database.
    pub fn models(&self) -> &ReadModels {
        &self.models
    }

    /// Up to `first` reviews of `product_id` after `after`, newest first.
    pub async fn page(
        &self,
        product_id: &str,
        first: usize,
        after: Option<&Cursor>,
    ) -> Result<ReviewPage, sqlx::Error> {
        let limit = i64::try_from(first.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = match after {
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM {REVIEWS} WHERE product_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(product_id)
                .bind(limit)
                .fetch_all(self.models.pool())
                .await?
            }
            Some(cursor) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM {REVIEWS} WHERE product_id = $1 \
                     AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                ))
                .bind(product_id)
                .bind(cursor.at.as_str())
                .bind(cursor.id.as_str())
                .bind(limit)
                .fetch_all(self.models.pool())
                .await?
            }
        };
        let has_next_page = rows.len() > first;
        let reviews = rows
            .iter()
            .take(first)
            .map(ReviewDoc::from_row)
            .collect::<Result<_, _>>()?;
        Ok(ReviewPage {
            reviews,
            has_next_page,
        })
    }

    /// The reviews among `ids` that the read model has, by id.
    pub async fn get_many(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, ReviewDoc>, sqlx::Error> {
        let mut found = HashMap::with_capacity(ids.len());
        for rows in self.in_list(REVIEWS, "id", COLUMNS, ids).await? {
            let doc = ReviewDoc::from_row(&rows)?;
            found.insert(doc.id.clone(), doc);
        }
        Ok(found)
    }

    /// One review, if the read model has it.
    pub async fn get(&self, id: &str) -> Result<Option<ReviewDoc>, sqlx::Error> {
        Ok(self.get_many(&[id.to_owned()]).await?.remove(id))
    }

    /// Ids of stored reviews whose content hash is among `hashes`, by hash.
    pub async fn ids_by_hash(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        for row in self
            .in_list(REVIEWS, "content_hash", "content_hash, id", hashes)
            .await?
        {
            found
                .entry(row.try_get(0)?)
                .or_default()
                .push(row.try_get(1)?);
        }
        Ok(found)
    }

    /// The ratings of `product_ids` (products without reviews are absent).
    pub async fn ratings(
        &self,
        product_ids: &[String],
    ) -> Result<HashMap<String, Rating>, sqlx::Error> {
        let mut found = HashMap::with_capacity(product_ids.len());
        for row in self
            .in_list(
                RATINGS,
                "product_id",
                "product_id, review_count, rating_sum",
                product_ids,
            )
            .await?
        {
            found.insert(
                row.try_get(0)?,
                Rating {
                    count: row.try_get(1)?,
                    sum: row.try_get(2)?,
                },
            );
        }
        Ok(found)
    }

    /// A product's aspect × sentiment counts (non-zero), most frequent first.
    pub async fn summary(&self, product_id: &str) -> Result<Vec<AspectCount>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT aspect, sentiment, review_count FROM {ASPECTS} \
             WHERE product_id = $1 AND review_count > 0 \
             ORDER BY review_count DESC, aspect, sentiment"
        ))
        .bind(product_id)
        .fetch_all(self.models.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let aspect: String = row.try_get(0)?;
            let sentiment: String = row.try_get(1)?;
            let (Some(aspect), Some(sentiment)) =
                (Aspect::from_name(&aspect), Sentiment::from_name(&sentiment))
            else {
                tracing::warn!(aspect, sentiment, "unknown label in the reviews read model");
                continue;
            };
            out.push(AspectCount {
                aspect,
                sentiment,
                count: row.try_get(2)?,
            });
        }
        Ok(out)
    }

    /// Rows of `view` whose `key` is among `values`, a statement per chunk of values.
    async fn in_list(
        &self,
        view: &str,
        key: &str,
        columns: &str,
        values: &[String],
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut out = Vec::new();
        for chunk in values.chunks(IDS_PER_STATEMENT) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {columns} FROM {view} WHERE {key} IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for value in chunk {
                query = query.bind(value.as_str());
            }
            out.extend(query.fetch_all(self.models.pool()).await?);
        }
        Ok(out)
    }
}
