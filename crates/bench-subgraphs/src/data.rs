//! The fixed data the four subgraphs serve: six users, nine products and eleven reviews, shaped
//! and sized like the public benchmark's (same ids, the same review text lengths, each review on
//! the same product), with our own names and text.

use std::sync::LazyLock;

/// A user of the accounts subgraph.
#[derive(Debug)]
pub struct UserRecord {
    /// The user's key.
    pub id: &'static str,
    /// Full name.
    pub name: &'static str,
    /// Login name; the reviews subgraph provides it for review authors.
    pub username: &'static str,
    /// Birthday as a Unix timestamp in seconds.
    pub birthday: i32,
}

/// A product: its catalogue entry (products subgraph) and its stock (inventory subgraph).
#[derive(Debug)]
pub struct ProductRecord {
    /// The product's key.
    pub upc: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Price in cents.
    pub price: i32,
    /// Weight in grams.
    pub weight: i32,
    /// Whether the inventory has it in stock.
    pub in_stock: bool,
}

/// A review of the reviews subgraph.
#[derive(Debug)]
pub struct ReviewRecord {
    /// The review's key.
    pub id: &'static str,
    /// The text.
    pub body: String,
    /// The key of the reviewed product.
    pub product_upc: &'static str,
}

const BIRTHDAY: i32 = 1_234_567_890;

/// Every user, in the order `users` returns them.
pub static USERS: [UserRecord; 6] = [
    user("1", "Seo-yeon Parks", "syeon"),
    user("2", "Min-jun Kim", "minjun.kim"),
    user("3", "Do-hyun Jeong", "dohyun.jeong"),
    user("4", "Ye-jin Seonwoo", "yejinsw"),
    user("5", "Eun-ji Song", "eunji.song"),
    user("6", "Tae-yang Lee", "t.yang"),
];

const fn user(id: &'static str, name: &'static str, username: &'static str) -> UserRecord {
    UserRecord {
        id,
        name,
        username,
        birthday: BIRTHDAY,
    }
}

/// Every product, in the order `topProducts` returns them.
pub static PRODUCTS: [ProductRecord; 9] = [
    product("1", "Torte", 899, 100, true),
    product("2", "Crepe", 1299, 1000, false),
    product("3", "Scone", 15, 20, false),
    product("4", "Mochi", 499, 100, false),
    product("5", "Yakgwa", 1299, 1000, true),
    product("6", "Macaron", 6999, 300, true),
    product("7", "Baklava", 3999, 2000, true),
    product("8", "Croquembouche", 100_000, 6000, false),
    product("9", "Pavlova", 9999, 800, true),
];

const fn product(
    upc: &'static str,
    name: &'static str,
    price: i32,
    weight: i32,
    in_stock: bool,
) -> ProductRecord {
    ProductRecord {
        upc,
        name,
        price,
        weight,
        in_stock,
    }
}

/// `(id, product upc, body length)` of every review; the lengths are the public benchmark's.
const REVIEW_SHAPES: [(&str, &str, usize); 11] = [
    ("1", "1", 445),
    ("2", "1", 289),
    ("3", "1", 275),
    ("4", "1", 143),
    ("5", "2", 445),
    ("6", "2", 289),
    ("7", "2", 275),
    ("8", "2", 143),
    ("9", "3", 143),
    ("10", "4", 143),
    ("11", "4", 844),
];

/// Every review, in key order.
pub static REVIEWS: LazyLock<Vec<ReviewRecord>> = LazyLock::new(|| {
    REVIEW_SHAPES
        .iter()
        .enumerate()
        .map(|(seed, &(id, product_upc, len))| ReviewRecord {
            id,
            body: review_text(seed, len),
            product_upc,
        })
        .collect()
});

/// The author of every review (the reviews subgraph answers with this user).
pub const AUTHOR_ID: &str = "1";

/// How many reviews every user has: the first ones of [`REVIEWS`], as in the public benchmark.
pub const REVIEWS_PER_USER: usize = 2;

/// The user with key `id`.
pub fn user_by_id(id: &str) -> Option<&'static UserRecord> {
    USERS.iter().find(|user| user.id == id)
}

/// The product with key `upc`.
pub fn product_by_upc(upc: &str) -> Option<&'static ProductRecord> {
    PRODUCTS.iter().find(|product| product.upc == upc)
}

/// The review with key `id`.
pub fn review_by_id(id: &str) -> Option<&'static ReviewRecord> {
    REVIEWS.iter().find(|review| review.id == id)
}

/// The reviews of the product with key `upc`, in key order.
pub fn reviews_of_product(upc: &str) -> impl Iterator<Item = &'static ReviewRecord> + use<'_> {
    REVIEWS
        .iter()
        .filter(move |review| review.product_upc == upc)
}

/// The reviews every user has.
pub fn reviews_of_user() -> &'static [ReviewRecord] {
    &REVIEWS[..REVIEWS_PER_USER]
}

/// The inventory's shipping estimate: free above 1000, else half the weight.
pub fn shipping_estimate(price: Option<i32>, weight: Option<i32>) -> Option<i32> {
    match (price?, weight) {
        (price, _) if price > 1000 => Some(0),
        (_, Some(weight)) => Some(weight / 2),
        (_, None) => None,
    }
}

/// Words the review texts are made of.
const WORDS: [&str; 24] = [
    "dulcis",
    "mel",
    "crustulum",
    "saccharum",
    "lac",
    "ovum",
    "farina",
    "butyrum",
    "fragum",
    "cerasum",
    "crema",
    "vanilla",
    "cacao",
    "placenta",
    "libum",
    "mustaceum",
    "torta",
    "glacies",
    "aroma",
    "tepidus",
    "coctus",
    "mollis",
    "suavis",
    "aureus",
];

/// A deterministic text of exactly `len` ASCII characters, different for each `seed`.
fn review_text(seed: usize, len: usize) -> String {
    let mut text = String::with_capacity(len + 16);
    let mut word = seed;
    while text.len() < len {
        if !text.is_empty() {
            text.push_str(if word.is_multiple_of(9) { ", " } else { " " });
        }
        text.push_str(WORDS[word % WORDS.len()]);
        word += 5;
    }
    text.truncate(len);
    if text.ends_with(' ') || text.ends_with(',') {
        text.pop();
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_texts_have_the_public_lengths_and_differ() {
        for (review, (_, _, len)) in REVIEWS.iter().zip(REVIEW_SHAPES) {
            assert_eq!(review.body.len(), len, "review {}", review.id);
            assert!(review.body.is_ascii());
            assert!(!review.body.ends_with(' '));
        }
        assert_ne!(REVIEWS[0].body, REVIEWS[4].body);
    }

    #[test]
    fn shipping_is_free_above_1000_else_half_the_weight() {
        assert_eq!(shipping_estimate(Some(1299), Some(1000)), Some(0));
        assert_eq!(shipping_estimate(Some(899), Some(100)), Some(50));
        assert_eq!(shipping_estimate(Some(899), None), None);
        assert_eq!(shipping_estimate(None, Some(100)), None);
    }

    #[test]
    fn lookups_find_known_keys_only() {
        assert_eq!(user_by_id("6").map(|u| u.username), Some("t.yang"));
        assert!(user_by_id("7").is_none());
        assert_eq!(product_by_upc("8").map(|p| p.price), Some(100_000));
        assert!(product_by_upc("0").is_none());
        assert_eq!(reviews_of_product("1").count(), 4);
        assert_eq!(reviews_of_product("5").count(), 0);
        assert_eq!(review_by_id("11").map(|r| r.product_upc), Some("4"));
    }
}
