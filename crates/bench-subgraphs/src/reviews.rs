//! The reviews subgraph: the `Review` entity, and `reviews` on `User` and `Product`; a
//! review's author comes with its `username` (`@provides`).

use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema};

use crate::data::{self, ReviewRecord, UserRecord};

/// The reviews subgraph's schema.
pub type ReviewsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// The reviews subgraph's schema, with the federation fields.
pub fn schema() -> ReviewsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

/// A review.
pub struct Review(&'static ReviewRecord);

#[Object]
impl Review {
    async fn id(&self) -> ID {
        ID::from(self.0.id)
    }

    async fn body(&self) -> Option<&str> {
        Some(&self.0.body)
    }

    async fn product(&self) -> Option<Product> {
        Some(Product {
            upc: self.0.product_upc,
        })
    }

    // The author, with the `username` filled in.
    #[graphql(provides = "username")]
    async fn author(&self) -> Option<User> {
        data::user_by_id(data::AUTHOR_ID).map(User)
    }
}

/// A user, as far as the reviews subgraph knows it.
pub struct User(&'static UserRecord);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID::from(self.0.id)
    }

    #[graphql(external)]
    async fn username(&self) -> Option<&str> {
        Some(self.0.username)
    }

    async fn reviews(&self) -> Option<Vec<Option<Review>>> {
        Some(reviews(data::reviews_of_user().iter()))
    }
}

/// A product, as far as the reviews subgraph knows it.
pub struct Product {
    upc: &'static str,
}

#[Object]
impl Product {
    async fn upc(&self) -> &str {
        self.upc
    }

    async fn reviews(&self) -> Option<Vec<Option<Review>>> {
        Some(reviews(data::reviews_of_product(self.upc)))
    }
}

fn reviews(records: impl Iterator<Item = &'static ReviewRecord>) -> Vec<Option<Review>> {
    records.map(|review| Some(Review(review))).collect()
}

/// The reviews subgraph's queries: entities only.
pub struct Query;

#[Object]
impl Query {
    #[graphql(entity)]
    async fn find_review_by_id(&self, id: ID) -> Option<Review> {
        data::review_by_id(&id).map(Review)
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> Option<User> {
        data::user_by_id(&id).map(User)
    }

    #[graphql(entity)]
    async fn find_product_by_upc(&self, upc: String) -> Option<Product> {
        data::product_by_upc(&upc).map(|product| Product { upc: product.upc })
    }
}
