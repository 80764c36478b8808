//! The accounts subgraph: the `User` entity (`@key(fields: "id")`) and the `me`, `user` and
//! `users` queries.

use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema};

use crate::data::{self, UserRecord};

/// The accounts subgraph's schema.
pub type AccountsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// The accounts subgraph's schema, with the federation fields.
pub fn schema() -> AccountsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

/// A user.
pub struct User(&'static UserRecord);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID::from(self.0.id)
    }

    async fn name(&self) -> Option<&str> {
        Some(self.0.name)
    }

    // Shareable: the reviews subgraph provides it for review authors.
    #[graphql(shareable)]
    async fn username(&self) -> Option<&str> {
        Some(self.0.username)
    }

    async fn birthday(&self) -> Option<i32> {
        Some(self.0.birthday)
    }
}

/// The accounts subgraph's queries.
pub struct Query;

#[Object]
impl Query {
    /// The signed-in user (always the first one).
    async fn me(&self) -> Option<User> {
        data::USERS.first().map(User)
    }

    /// The user with this id.
    async fn user(&self, id: ID) -> Option<User> {
        data::user_by_id(&id).map(User)
    }

    /// Every user.
    async fn users(&self) -> Option<Vec<Option<User>>> {
        Some(data::USERS.iter().map(|user| Some(User(user))).collect())
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> Option<User> {
        data::user_by_id(&id).map(User)
    }
}
