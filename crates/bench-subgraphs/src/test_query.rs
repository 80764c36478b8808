//! The benchmark's one operation, `TestQuery` (users and top products, each with reviews,
//! their products, those products' reviews and their authors: seven subgraph fetches), and the
//! response a correct gateway returns for it over these subgraphs.

use serde_json::{Value, json};

use crate::data::{self, ProductRecord, ReviewRecord, UserRecord};

/// The operation every benchmark request sends.
pub const TEST_QUERY: &str = r#"fragment User on User {
  id
  username
  name
}

fragment Review on Review {
  id
  body
}

fragment Product on Product {
  inStock
  name
  price
  shippingEstimate
  upc
  weight
}

query TestQuery {
  users {
    ...User
    reviews {
      ...Review
      product {
        ...Product
        reviews {
          ...Review
          author {
            ...User
            reviews {
              ...Review
              product {
                ...Product
              }
            }
          }
        }
      }
    }
  }
  topProducts {
    ...Product
    reviews {
      ...Review
      author {
        ...User
        reviews {
          ...Review
          product {
            ...Product
          }
        }
      }
    }
  }
}
"#;

/// The JSON body of a benchmark request: `{"query": TEST_QUERY}`.
pub fn request_body() -> String {
    json!({ "query": TEST_QUERY }).to_string()
}

/// The complete response to [`TEST_QUERY`] over these subgraphs' data.
pub fn expected_response() -> Value {
    let users: Vec<Value> = data::USERS
        .iter()
        .map(|user| {
            let mut value = user_fields(user);
            value["reviews"] = data::reviews_of_user()
                .iter()
                .map(|review| {
                    let mut value = review_fields(review);
                    value["product"] = product_with_reviews(review.product_upc);
                    value
                })
                .collect();
            value
        })
        .collect();
    let top_products: Vec<Value> = data::PRODUCTS
        .iter()
        .take(5)
        .map(|product| product_with_reviews(product.upc))
        .collect();
    json!({ "data": { "users": users, "topProducts": top_products } })
}

/// `...Product` and its `reviews { ...Review author { ... } }`.
fn product_with_reviews(upc: &str) -> Value {
    let Some(product) = data::product_by_upc(upc) else {
        return Value::Null;
    };
    let mut value = product_fields(product);
    value["reviews"] = data::reviews_of_product(upc)
        .map(|review| {
            let mut value = review_fields(review);
            value["author"] = author();
            value
        })
        .collect();
    value
}

/// A review's author: `...User reviews { ...Review product { ...Product } }`.
fn author() -> Value {
    let Some(user) = data::user_by_id(data::AUTHOR_ID) else {
        return Value::Null;
    };
    let mut value = user_fields(user);
    value["reviews"] = data::reviews_of_user()
        .iter()
        .map(|review| {
            let mut value = review_fields(review);
            value["product"] = data::product_by_upc(review.product_upc)
                .map(product_fields)
                .unwrap_or(Value::Null);
            value
        })
        .collect();
    value
}

fn user_fields(user: &UserRecord) -> Value {
    json!({ "id": user.id, "username": user.username, "name": user.name })
}

fn review_fields(review: &ReviewRecord) -> Value {
    json!({ "id": review.id, "body": review.body })
}

fn product_fields(product: &ProductRecord) -> Value {
    json!({
        "inStock": product.in_stock,
        "name": product.name,
        "price": product.price,
        "shippingEstimate": data::shipping_estimate(Some(product.price), Some(product.weight)),
        "upc": product.upc,
        "weight": product.weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_response_has_the_public_shape_and_size() {
        let response = expected_response();
        let users = response["data"]["users"].as_array().unwrap();
        assert_eq!(users.len(), 6);
        let top = response["data"]["topProducts"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        // The first product has four reviews, each by the author with two reviews.
        let first_reviews = top[0]["reviews"].as_array().unwrap();
        assert_eq!(first_reviews.len(), 4);
        assert_eq!(first_reviews[0]["author"]["id"], "1");
        assert_eq!(
            first_reviews[0]["author"]["reviews"][1]["product"]["shippingEstimate"],
            50
        );
        assert_eq!(top[4]["reviews"], json!([]));
        // The public benchmark's response is about 88 KB.
        let size = serde_json::to_vec(&response).unwrap().len();
        assert!((85_000..92_000).contains(&size), "{size} bytes");
    }
}
