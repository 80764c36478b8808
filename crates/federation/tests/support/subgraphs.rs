//! The test subgraphs: products, reviews, accounts, inventory.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_graphql::{
    ComplexObject, EmptyMutation, EmptySubscription, Enum, ID, Interface, Object, Result, Schema,
    SimpleObject, Subscription, Union,
};
use futures::Stream;

use super::Counters;

// ---------- products ----------

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum Category {
    Cake,
    Cookie,
}

#[derive(SimpleObject, Clone)]
pub struct Product {
    pub upc: String,
    pub name: String,
    pub price: i32,
    pub weight: i32,
    pub category: Category,
}

fn product(upc: &str) -> Option<Product> {
    let (name, price, weight, category) = match upc {
        "p1" => ("Strawberry cake", 30000, 800, Category::Cake),
        "p2" => ("Chocolate cookie", 3000, 50, Category::Cookie),
        "p3" => ("Cheesecake", 28000, 900, Category::Cake),
        "p4" => ("Macaron", 2500, 20, Category::Cookie),
        _ => return None,
    };
    Some(Product {
        upc: upc.to_owned(),
        name: name.to_owned(),
        price,
        weight,
        category,
    })
}

#[derive(SimpleObject, Clone)]
pub struct Book {
    pub id: ID,
    pub title: String,
    pub pages: i32,
}

#[derive(SimpleObject, Clone)]
pub struct Movie {
    pub id: ID,
    pub title: String,
    pub minutes: i32,
}

#[derive(Interface, Clone)]
#[graphql(field(name = "id", ty = "&ID"), field(name = "title", ty = "&String"))]
pub enum Media {
    Book(Book),
    Movie(Movie),
}

#[derive(Union, Clone)]
pub enum SearchResult {
    Book(Book),
    Movie(Movie),
}

fn book() -> Book {
    Book {
        id: "b1".into(),
        title: "Baking basics".to_owned(),
        pages: 320,
    }
}

fn movie() -> Movie {
    Movie {
        id: "m1".into(),
        title: "The Great Bake".to_owned(),
        minutes: 95,
    }
}

pub struct ProductsQuery;

#[Object(name = "Query")]
impl ProductsQuery {
    async fn top_products(&self, #[graphql(default = 4)] first: i32) -> Vec<Option<Product>> {
        ["p1", "p2", "p3", "p4"]
            .iter()
            .take(first.max(0) as usize)
            .map(|upc| product(upc))
            .collect()
    }

    async fn product(&self, upc: String) -> Option<Product> {
        product(&upc)
    }

    async fn media(&self) -> Vec<Media> {
        vec![Media::Book(book()), Media::Movie(movie())]
    }

    async fn search(&self) -> Vec<SearchResult> {
        vec![SearchResult::Movie(movie()), SearchResult::Book(book())]
    }

    async fn slow(&self) -> Option<String> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Some("late".to_owned())
    }

    async fn failing(&self) -> Result<Option<String>> {
        Err("products failed on purpose".into())
    }

    #[graphql(entity)]
    async fn find_product_by_upc(&self, upc: String) -> Option<Product> {
        product(&upc)
    }

    #[graphql(entity)]
    async fn find_book_by_id(&self, id: ID) -> Option<Book> {
        (id.as_str() == "b1").then(book)
    }

    #[graphql(entity)]
    async fn find_movie_by_id(&self, id: ID) -> Option<Movie> {
        (id.as_str() == "m1").then(movie)
    }
}

pub struct ProductsSubscription {
    counters: Arc<Counters>,
}

struct ActiveGuard(Arc<Counters>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active_subscriptions.fetch_sub(1, Ordering::SeqCst);
    }
}

#[Subscription(name = "Subscription")]
impl ProductsSubscription {
    /// Three products, then the stream completes.
    async fn product_added(&self) -> impl Stream<Item = Product> {
        futures::stream::iter(["p1", "p2", "p4"].into_iter().filter_map(product))
    }

    /// A product every 20 ms, forever; counts live subscribers.
    async fn ticks(&self) -> impl Stream<Item = Product> {
        self.counters
            .active_subscriptions
            .fetch_add(1, Ordering::SeqCst);
        let guard = ActiveGuard(self.counters.clone());
        futures::stream::unfold(guard, |guard| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            product("p2").map(|p| (p, guard))
        })
    }
}

pub type ProductsSchema = Schema<ProductsQuery, EmptyMutation, ProductsSubscription>;

pub fn products_schema_with(counters: Arc<Counters>) -> ProductsSchema {
    Schema::build(
        ProductsQuery,
        EmptyMutation,
        ProductsSubscription { counters },
    )
    .enable_federation()
    .enable_subscription_in_federation()
    .finish()
}

pub fn products_schema() -> ProductsSchema {
    products_schema_with(Arc::default())
}

// ---------- reviews ----------

#[derive(SimpleObject, Clone)]
pub struct Review {
    pub id: ID,
    pub body: String,
    #[graphql(provides = "name")]
    pub author: ReviewUser,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "User", complex)]
pub struct ReviewUser {
    pub id: ID,
    #[graphql(external)]
    pub name: String,
}

#[ComplexObject]
impl ReviewUser {
    async fn review_count(&self) -> i32 {
        reviews_of_user(self.id.as_str()).len() as i32
    }
}

fn reviews_of_product(upc: &str) -> Vec<Review> {
    let user = |id: &str, name: &str| ReviewUser {
        id: id.into(),
        name: name.to_owned(),
    };
    match upc {
        "p1" => vec![
            Review {
                id: "r1".into(),
                body: "Not too sweet".to_owned(),
                author: user("u1", "Minji"),
            },
            Review {
                id: "r2".into(),
                body: "Lovely".to_owned(),
                author: user("u2", "Jisoo"),
            },
        ],
        "p2" => vec![Review {
            id: "r3".into(),
            body: "Crunchy".to_owned(),
            author: user("u1", "Minji"),
        }],
        _ => Vec::new(),
    }
}

fn reviews_of_user(id: &str) -> Vec<Review> {
    ["p1", "p2"]
        .iter()
        .flat_map(|upc| reviews_of_product(upc))
        .filter(|review| review.author.id.as_str() == id)
        .collect()
}

#[derive(SimpleObject)]
#[graphql(name = "Product", complex)]
pub struct ReviewProduct {
    pub upc: String,
}

#[ComplexObject]
impl ReviewProduct {
    async fn reviews(&self) -> Result<Vec<Review>> {
        if self.upc == "p3" {
            return Err("reviews are unavailable for p3".into());
        }
        Ok(reviews_of_product(&self.upc))
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Book")]
pub struct ReviewBook {
    pub id: ID,
    pub rating: i32,
}

#[derive(SimpleObject)]
#[graphql(name = "Movie")]
pub struct ReviewMovie {
    pub id: ID,
    pub rating: i32,
}

pub struct ReviewsQuery;

#[Object(name = "Query")]
impl ReviewsQuery {
    async fn latest_review(&self) -> Review {
        reviews_of_product("p1").remove(0)
    }

    #[graphql(entity)]
    async fn find_product_by_upc(&self, upc: String) -> ReviewProduct {
        ReviewProduct { upc }
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> ReviewUser {
        ReviewUser {
            id,
            name: String::new(),
        }
    }

    #[graphql(entity)]
    async fn find_book_by_id(&self, id: ID) -> ReviewBook {
        ReviewBook { id, rating: 4 }
    }

    #[graphql(entity)]
    async fn find_movie_by_id(&self, id: ID) -> ReviewMovie {
        ReviewMovie { id, rating: 5 }
    }
}

pub type ReviewsSchema = Schema<ReviewsQuery, EmptyMutation, EmptySubscription>;

pub fn reviews_schema() -> ReviewsSchema {
    Schema::build(ReviewsQuery, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

// ---------- accounts ----------

#[derive(SimpleObject, Clone)]
pub struct User {
    pub id: ID,
    pub name: String,
    pub username: String,
}

fn user(id: &str) -> Option<User> {
    let (name, username) = match id {
        "u1" => ("Minji", "minji"),
        "u2" => ("Jisoo", "jisoo"),
        _ => return None,
    };
    Some(User {
        id: id.into(),
        name: name.to_owned(),
        username: username.to_owned(),
    })
}

pub struct AccountsQuery;

#[Object(name = "Query")]
impl AccountsQuery {
    async fn me(&self) -> Option<User> {
        user("u1")
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> Option<User> {
        user(id.as_str())
    }
}

pub type AccountsSchema = Schema<AccountsQuery, EmptyMutation, EmptySubscription>;

pub fn accounts_schema() -> AccountsSchema {
    Schema::build(AccountsQuery, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

// ---------- inventory ----------

#[derive(SimpleObject)]
#[graphql(name = "Product", complex)]
pub struct InventoryProduct {
    pub upc: String,
    #[graphql(external)]
    pub price: i32,
    #[graphql(external)]
    pub weight: i32,
    pub in_stock: bool,
}

#[ComplexObject]
impl InventoryProduct {
    #[graphql(requires = "price weight")]
    async fn shipping_estimate(&self) -> i32 {
        // Free over 20 000 KRW, else 1 KRW per gram.
        if self.price > 20_000 { 0 } else { self.weight }
    }
}

pub struct InventoryQuery;

#[Object(name = "Query")]
impl InventoryQuery {
    #[graphql(entity)]
    async fn find_product_by_upc(
        &self,
        #[graphql(key)] upc: String,
        price: Option<i32>,
        weight: Option<i32>,
    ) -> InventoryProduct {
        InventoryProduct {
            in_stock: upc != "p2",
            upc,
            price: price.unwrap_or(-1),
            weight: weight.unwrap_or(-1),
        }
    }
}

pub type InventorySchema = Schema<InventoryQuery, EmptyMutation, EmptySubscription>;

pub fn inventory_schema() -> InventorySchema {
    Schema::build(InventoryQuery, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}
