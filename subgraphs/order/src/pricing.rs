//! Prices at order time, read from the inventory's catalog read model (never from the client).

use std::collections::HashMap;

use sqlx::{AnyPool, Row};

/// A product as the order needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPrice {
    /// The product.
    pub id: String,
    /// Its name now.
    pub name: String,
    /// KRW per unit now.
    pub price: i64,
    /// ON_SALE, SOLD_OUT or DISCONTINUED.
    pub status: String,
}

/// Reads prices from the inventory's published read model (`rm_products_products`).
#[derive(Clone)]
pub struct PriceBook {
    pool: AnyPool,
}

impl PriceBook {
    /// Prices from the read-model database `pool`.
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// The products among `ids` that exist, by id.
    pub async fn prices(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, ProductPrice>, sqlx::Error> {
        let mut found = HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(found);
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, name, price, status FROM rm_products_products WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(&self.pool).await? {
            let price = ProductPrice {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                price: row.try_get(2)?,
                status: row.try_get(3)?,
            };
            found.insert(price.id.clone(), price);
        }
        Ok(found)
    }
}
