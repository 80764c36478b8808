//! The inventory subgraph: extends `Product` with `inStock` and `shippingEstimate`, which
//! `@requires` the product's `price` and `weight` from the products subgraph.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

use crate::data::{self, ProductRecord};

/// The inventory subgraph's schema.
pub type InventorySchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// The inventory subgraph's schema, with the federation fields.
pub fn schema() -> InventorySchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

/// A product's stock, with the price and weight the gateway sent in its representation.
pub struct Product {
    record: &'static ProductRecord,
    price: Option<i32>,
    weight: Option<i32>,
}

#[Object]
impl Product {
    async fn upc(&self) -> &str {
        self.record.upc
    }

    #[graphql(external)]
    async fn weight(&self) -> Option<i32> {
        self.weight
    }

    #[graphql(external)]
    async fn price(&self) -> Option<i32> {
        self.price
    }

    async fn in_stock(&self) -> Option<bool> {
        Some(self.record.in_stock)
    }

    /// Free above a price of 1000, else half the weight.
    #[graphql(requires = "price weight")]
    async fn shipping_estimate(&self) -> Option<i32> {
        data::shipping_estimate(self.price, self.weight)
    }
}

/// The inventory subgraph's queries: entities only.
pub struct Query;

#[Object]
impl Query {
    #[graphql(entity)]
    async fn find_product_by_upc(
        &self,
        #[graphql(key)] upc: String,
        price: Option<i32>,
        weight: Option<i32>,
    ) -> Option<Product> {
        data::product_by_upc(&upc).map(|record| Product {
            record,
            price,
            weight,
        })
    }
}
