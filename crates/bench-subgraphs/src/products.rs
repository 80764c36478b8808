//! The products subgraph: the `Product` entity (`@key(fields: "upc")`) with its name, price
//! and weight, and the `topProducts` query.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

use crate::data::{self, ProductRecord};

/// How many products `topProducts` returns when `first` is not given.
const TOP_PRODUCTS_DEFAULT: i32 = 5;

/// The products subgraph's schema.
pub type ProductsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// The products subgraph's schema, with the federation fields.
pub fn schema() -> ProductsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

/// A product of the catalogue.
pub struct Product(&'static ProductRecord);

#[Object]
impl Product {
    async fn upc(&self) -> &str {
        self.0.upc
    }

    async fn name(&self) -> Option<&str> {
        Some(self.0.name)
    }

    async fn price(&self) -> Option<i32> {
        Some(self.0.price)
    }

    async fn weight(&self) -> Option<i32> {
        Some(self.0.weight)
    }
}

/// The products subgraph's queries.
pub struct Query;

#[Object]
impl Query {
    /// The first `first` products of the catalogue.
    async fn top_products(
        &self,
        #[graphql(default = 5)] first: Option<i32>,
    ) -> Option<Vec<Option<Product>>> {
        let first = usize::try_from(first.unwrap_or(TOP_PRODUCTS_DEFAULT)).unwrap_or(0);
        Some(
            data::PRODUCTS
                .iter()
                .take(first)
                .map(|product| Some(Product(product)))
                .collect(),
        )
    }

    #[graphql(entity)]
    async fn find_product_by_upc(&self, upc: String) -> Option<Product> {
        data::product_by_upc(&upc).map(Product)
    }
}
