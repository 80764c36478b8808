//! The product catalog read model: the `products` projection (portable SQL on Postgres and
//! SQLite) and the queries the GraphQL schema runs against its view `rm_products_products`.
//!
//! The model is disposable: every row is folded from the products' events, and a rebuild
//! replays them. Reservation streams share the `inventory` category; the projection does not
//! read them, so it keeps no stream versions for them either.

use std::collections::HashMap;

use async_trait::async_trait;
use eventstore::RecordedEvent;
use projections::{
    PARAMS_PER_STATEMENT, Projection, ProjectionError, ReadModels, Tables, placeholders,
};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row};

use crate::cursor::Cursor;
use crate::error::InventoryError;
use crate::product::{Product, ProductEvent, ProductStatus};

/// The projection's name: tables `rm_products_g{N}_products`, view `rm_products_products`.
pub const NAME: &str = "products";
/// The view readers query.
pub const VIEW: &str = "rm_products_products";
/// Largest page of [`Catalog::list`].
pub const MAX_PAGE: i64 = 100;
/// Most ids looked up in one statement.
const IDS_PER_STATEMENT: usize = 100;
const COLUMNS: &str =
    "id, name, description, price, category, image_url, on_hand, reserved, status";

/// A product as clients see it, from the read model or straight from the aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductView {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// KRW.
    pub price: i64,
    /// Category.
    pub category: String,
    /// Picture URL.
    pub image_url: Option<String>,
    /// Units in the shop, held or not.
    pub on_hand: i64,
    /// Units held by reservations.
    pub reserved: i64,
    /// ON_SALE, SOLD_OUT or DISCONTINUED.
    pub status: ProductStatus,
}

impl ProductView {
    /// Units that can still be ordered.
    pub fn available(&self) -> i64 {
        (self.on_hand - self.reserved).max(0)
    }

    /// The view of an aggregate's state; `None` when it was never created.
    pub fn of(product: &Product) -> Option<Self> {
        Some(Self {
            id: product.id()?.to_string(),
            name: product.name().to_owned(),
            description: product.description().to_owned(),
            price: product.price(),
            category: product.category().to_owned(),
            image_url: product.image_url().map(str::to_owned),
            on_hand: i64::from(product.on_hand()),
            reserved: i64::from(product.reserved()),
            status: product.status(),
        })
    }

    fn discontinued(&self) -> bool {
        self.status == ProductStatus::Discontinued
    }

    /// Folds a stock or price event into the row, as the aggregate does.
    fn fold(&mut self, event: &ProductEvent) {
        let mut discontinued = self.discontinued();
        match event {
            ProductEvent::ProductCreated { .. } => {}
            ProductEvent::PriceChanged { price, .. } => self.price = *price,
            ProductEvent::Restocked { quantity, .. } => self.on_hand += i64::from(*quantity),
            ProductEvent::ProductDiscontinued => discontinued = true,
            ProductEvent::StockReserved { quantity, .. } => self.reserved += i64::from(*quantity),
            ProductEvent::StockReleased {
                quantity,
                after_commit,
                ..
            } => {
                if *after_commit {
                    self.on_hand += i64::from(*quantity);
                } else {
                    self.reserved = (self.reserved - i64::from(*quantity)).max(0);
                }
            }
            ProductEvent::StockCommitted { quantity, .. } => {
                self.on_hand = (self.on_hand - i64::from(*quantity)).max(0);
                self.reserved = (self.reserved - i64::from(*quantity)).max(0);
            }
        }
        let available = u32::try_from(self.available()).unwrap_or(u32::MAX);
        self.status = ProductStatus::derive(discontinued, available);
    }

    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            price: row.try_get("price")?,
            category: row.try_get("category")?,
            image_url: row.try_get("image_url")?,
            on_hand: row.try_get("on_hand")?,
            reserved: row.try_get("reserved")?,
            status: ProductStatus::from_name(&status).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown product status {status:?}").into())
            })?,
        })
    }
}

/// The product `event` belongs to, when it is a product stream's (`inventory-product:{id}`).
fn product_id(event: &RecordedEvent) -> Option<&str> {
    match event.stream_id.category() {
        "inventory" => event.stream_id.entity_id().strip_prefix("product:"),
        _ => None,
    }
}

/// The `products` projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProductCatalog;

#[async_trait]
impl Projection for ProductCatalog {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [&'static str] {
        &["inventory"]
    }

    /// Only product streams: a reservation's events change no product row.
    fn reads(&self, event: &RecordedEvent) -> bool {
        product_id(event).is_some()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["products"]
    }

    async fn create_tables(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
    ) -> Result<(), ProjectionError> {
        let table = tables.table("products");
        conn.execute(
            format!(
                "CREATE TABLE {table} (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    description TEXT NOT NULL,
                    price BIGINT NOT NULL,
                    category TEXT NOT NULL,
                    image_url TEXT,
                    on_hand BIGINT NOT NULL,
                    reserved BIGINT NOT NULL,
                    available BIGINT NOT NULL,
                    status TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                )"
            )
            .as_str(),
        )
        .await?;
        for (suffix, columns) in [
            ("products_by_name", "name, id"),
            ("products_by_category", "category, name, id"),
        ] {
            let index = tables.object(suffix);
            conn.execute(format!("CREATE INDEX {index} ON {table} ({columns})").as_str())
                .await?;
        }
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_batch(conn, tables, &[event]).await
    }

    /// Reads the products the batch changes in one statement, folds the events into them and
    /// writes them back in one upsert.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let table = tables.table("products");
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            let Some(id) = product_id(event) else {
                continue;
            };
            let product_event: ProductEvent =
                event.decode().map_err(|e| ProjectionError::Decode {
                    event_id: event.id.to_string(),
                    reason: e.to_string(),
                })?;
            decoded.push((id, *event, product_event));
        }
        let mut wanted: Vec<&str> = decoded
            .iter()
            .filter(|(_, _, e)| !matches!(e, ProductEvent::ProductCreated { .. }))
            .map(|(id, _, _)| *id)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut rows: HashMap<String, (ProductView, String)> = HashMap::new();
        for chunk in wanted.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {COLUMNS} FROM {table} WHERE id IN ({})",
                placeholders(chunk.len(), 1)
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for found in query.fetch_all(&mut *conn).await? {
                let row = ProductView::from_row(&found)?;
                // Its stamp is set by the event it was read for, below.
                rows.insert(row.id.clone(), (row, String::new()));
            }
        }
        for (id, event, product_event) in decoded {
            let updated_at = event.recorded_at.to_rfc3339();
            match &product_event {
                ProductEvent::ProductCreated {
                    name,
                    description,
                    price,
                    category,
                    image_url,
                    ..
                } => {
                    let row = ProductView {
                        id: id.to_owned(),
                        name: name.clone(),
                        description: description.clone(),
                        price: *price,
                        category: category.clone(),
                        image_url: image_url.clone(),
                        on_hand: 0,
                        reserved: 0,
                        status: ProductStatus::SoldOut,
                    };
                    rows.insert(id.to_owned(), (row, updated_at));
                }
                other => {
                    let Some((row, at)) = rows.get_mut(id) else {
                        return Err(ProjectionError::Decode {
                            event_id: event.id.to_string(),
                            reason: format!(
                                "{} for product {id} before it was created",
                                event.event_type
                            ),
                        });
                    };
                    row.fold(other);
                    *at = updated_at;
                }
            }
        }
        // Every row here is written back: each was created or read for an event of this batch.
        let changed: Vec<&(ProductView, String)> = rows.values().collect();
        for chunk in changed.chunks(PARAMS_PER_STATEMENT / 11) {
            upsert(conn, &table, chunk).await?;
        }
        Ok(())
    }
}

/// Writes `rows` (each with its `updated_at`) in one statement.
async fn upsert(
    conn: &mut AnyConnection,
    table: &str,
    rows: &[&(ProductView, String)],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {table} (id, name, description, price, category, image_url, on_hand, \
         reserved, available, status, updated_at) \
         VALUES {} \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, \
         price = excluded.price, category = excluded.category, image_url = excluded.image_url, \
         on_hand = excluded.on_hand, reserved = excluded.reserved, available = excluded.available, \
         status = excluded.status, updated_at = excluded.updated_at",
        placeholders(rows.len(), 11)
    );
    let mut query = sqlx::query(&sql);
    for (row, updated_at) in rows {
        query = query
            .bind(row.id.as_str())
            .bind(row.name.as_str())
            .bind(row.description.as_str())
            .bind(row.price)
            .bind(row.category.as_str())
            .bind(row.image_url.clone())
            .bind(row.on_hand)
            .bind(row.reserved)
            .bind(row.available())
            .bind(row.status.as_str())
            .bind(updated_at.as_str());
    }
    query.execute(conn).await?;
    Ok(())
}

/// Which products a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    /// Only this category.
    pub category: Option<String>,
    /// Only products with units available and not discontinued.
    pub on_sale_only: bool,
}

/// One page of a listing, in `(name, id)` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPage {
    /// The products, each with the cursor that resumes after it.
    pub items: Vec<(String, ProductView)>,
    /// Whether more products follow.
    pub has_next_page: bool,
}

impl ProductPage {
    /// The cursor of the last product on the page.
    pub fn end_cursor(&self) -> Option<&str> {
        self.items.last().map(|(cursor, _)| cursor.as_str())
    }
}

/// Queries over the catalog read model; cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    models: ReadModels,
}

impl Catalog {
    /// The catalog in `models`, registering the projection so its view exists before the
    /// consumer first runs.
    pub async fn open(models: ReadModels) -> Result<Self, InventoryError> {
        models.register(&ProductCatalog).await?;
        Ok(Self { models })
    }

    /// The read-model database.
    pub fn models(&self) -> &ReadModels {
        &self.models
    }

    /// Up to `first` (1..=100) products after the cursor `after`, filtered.
    pub async fn list(
        &self,
        filter: &ProductFilter,
        first: i64,
        after: Option<&str>,
    ) -> Result<ProductPage, InventoryError> {
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(InventoryError::invalid(
                "first",
                format!("must be 1..={MAX_PAGE}, got {first}"),
            ));
        }
        let after = after.map(|raw| Cursor::decode("after", raw)).transpose()?;
        let category = filter.category.as_deref().map(str::trim);
        if category.is_some_and(|c| c.is_empty() || c.chars().count() > 50) {
            return Err(InventoryError::invalid(
                "category",
                "must be 1..=50 characters",
            ));
        }
        let mut conditions = Vec::new();
        let mut params: Vec<String> = Vec::new();
        if let Some(category) = category {
            params.push(category.to_owned());
            conditions.push(format!("category = ${}", params.len()));
        }
        if filter.on_sale_only {
            conditions.push(format!("status = '{}'", ProductStatus::OnSale.as_str()));
        }
        if let Some(after) = after {
            params.push(after.name);
            params.push(after.id);
            let (n, i) = (params.len() - 1, params.len());
            conditions.push(format!("(name > ${n} OR (name = ${n} AND id > ${i}))"));
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM {VIEW} {filter_sql} ORDER BY name, id LIMIT {}",
            first + 1
        );
        let mut query = sqlx::query(&sql);
        for param in &params {
            query = query.bind(param.as_str());
        }
        let rows = query.fetch_all(self.models.pool()).await?;
        let has_next_page = rows.len() as i64 > first;
        let items = rows
            .iter()
            .take(first as usize)
            .map(|row| {
                let view = ProductView::from_row(row)?;
                Ok((Cursor::after(&view.name, &view.id).encode(), view))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(ProductPage {
            items,
            has_next_page,
        })
    }

    /// One product, if the read model has it.
    pub async fn get(&self, id: &str) -> Result<Option<ProductView>, InventoryError> {
        Ok(self.get_many(&[id.to_owned()]).await?.remove(id))
    }

    /// The products among `ids` that the read model has, by id (for federation `_entities`).
    pub async fn get_many(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, ProductView>, InventoryError> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {COLUMNS} FROM {VIEW} WHERE id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(self.models.pool()).await? {
                let view = ProductView::from_row(&row)?;
                found.insert(view.id.clone(), view);
            }
        }
        Ok(found)
    }
}
