//! What the review subgraph knows of products, for denormalising reviews: name and category
//! from the inventory subgraph's catalog read model `rm_products_products`.

use std::collections::HashMap;

use sqlx::{AnyPool, Row};

/// The view of the inventory subgraph's catalog read model.
pub const PRODUCTS_VIEW: &str = "rm_products_products";
/// Most ids looked up in one statement.
const IDS_PER_STATEMENT: usize = 200;

/// A product's name and category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFacts {
    /// Display name.
    pub name: String,
    /// Category, such as `cake`.
    pub category: String,
}

/// The products among `ids` that the catalog knows, by id.
pub async fn product_facts(
    pool: &AnyPool,
    ids: &[String],
) -> Result<HashMap<String, ProductFacts>, sqlx::Error> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, name, category FROM {PRODUCTS_VIEW} WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(pool).await? {
            found.insert(
                row.try_get(0)?,
                ProductFacts {
                    name: row.try_get(1)?,
                    category: row.try_get(2)?,
                },
            );
        }
    }
    Ok(found)
}
