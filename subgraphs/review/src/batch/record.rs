//! One imported record: its fields as the file gives them (JSON Lines or CSV with a header,
//! same names) and the checks that turn it into a candidate review or a reason to skip it.
//!
//! Fields: `product_id`, `rating` (1..=5), `text` (required); `order_id`, `author_id` (or
//! `customer_id`), `created_at` and `order_date` (RFC 3339), `id` (the source system's id)
//! (optional). Unknown fields are ignored.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::preprocess::{ContentHash, TextBounds, clean_checked};
use crate::review::{MAX_RATING, MIN_RATING};

/// Longest id accepted in a record (order, author, external), in bytes.
const MAX_ID_LEN: usize = 128;
/// Longest product id accepted (the inventory's limit), in bytes.
const MAX_PRODUCT_ID_LEN: usize = 64;

/// A record as the file gives it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawReview {
    /// The source system's id.
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    /// The product reviewed.
    #[serde(default)]
    pub product_id: Option<String>,
    /// Stars.
    #[serde(default)]
    pub rating: Option<serde_json::Value>,
    /// The text.
    #[serde(default)]
    pub text: Option<String>,
    /// The order.
    #[serde(default)]
    pub order_id: Option<String>,
    /// The author's `sub`.
    #[serde(default, alias = "customer_id")]
    pub author_id: Option<String>,
    /// When it was written.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When the order was placed (used when the platform does not know the order).
    #[serde(default)]
    pub order_date: Option<String>,
}

/// A record that passed every check that needs no database.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its line in the file.
    pub line: u64,
    /// The source system's id.
    pub external_id: Option<String>,
    /// The product reviewed.
    pub product_id: String,
    /// The order, if given.
    pub order_id: Option<String>,
    /// The author, if given.
    pub author_id: Option<String>,
    /// 1..=5.
    pub rating: i64,
    /// The cleaned text.
    pub text: String,
    /// When it was written, if given.
    pub created_at: Option<DateTime<Utc>>,
    /// When its order was placed, if given.
    pub order_date: Option<DateTime<Utc>>,
    /// Hash of product, author and text.
    pub hash: ContentHash,
}

/// Checks a record; the error is the reason it is skipped.
pub fn validate(raw: RawReview, line: u64, bounds: TextBounds) -> Result<Candidate, String> {
    let product_id = required(raw.product_id, "product_id")?;
    check_id("product_id", &product_id, MAX_PRODUCT_ID_LEN, "-_.")?;
    let rating = rating(raw.rating)?;
    let text = required(raw.text, "text")?;
    let text = clean_checked(&text, bounds).map_err(|e| e.to_string())?;
    let order_id = optional(raw.order_id);
    if let Some(order_id) = &order_id {
        check_id("order_id", order_id, MAX_ID_LEN, "-_.:@")?;
    }
    let author_id = optional(raw.author_id);
    if let Some(author) = &author_id
        && (author.len() > MAX_ID_LEN || author.chars().any(char::is_control))
    {
        return Err(format!(
            "author_id must be at most {MAX_ID_LEN} bytes without control characters"
        ));
    }
    let external_id = match raw.id {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => optional(Some(s)),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(format!("id must be a string or a number, got {other}")),
    };
    if external_id.as_ref().is_some_and(|id| id.len() > MAX_ID_LEN) {
        return Err(format!("id is longer than {MAX_ID_LEN} bytes"));
    }
    let hash = ContentHash::of(&product_id, author_id.as_deref(), &text);
    Ok(Candidate {
        line,
        external_id,
        rating,
        text,
        created_at: time(raw.created_at, "created_at")?,
        order_date: time(raw.order_date, "order_date")?,
        product_id,
        order_id,
        author_id,
        hash,
    })
}

fn optional(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn required(value: Option<String>, field: &str) -> Result<String, String> {
    optional(value).ok_or_else(|| format!("{field} is missing"))
}

fn check_id(field: &str, id: &str, max: usize, extra: &str) -> Result<(), String> {
    if id.len() <= max
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    {
        Ok(())
    } else {
        Err(format!(
            "{field} must be 1 to {max} ASCII letters, digits or one of {extra:?}"
        ))
    }
}

fn rating(value: Option<serde_json::Value>) -> Result<i64, String> {
    let bad = |shown: String| {
        format!("rating must be an integer {MIN_RATING} to {MAX_RATING}, got {shown}")
    };
    let rating = match value {
        None | Some(serde_json::Value::Null) => return Err("rating is missing".to_owned()),
        Some(serde_json::Value::Number(n)) => n.as_i64().ok_or_else(|| bad(n.to_string()))?,
        Some(serde_json::Value::String(s)) => {
            s.trim().parse::<i64>().map_err(|_| bad(format!("{s:?}")))?
        }
        Some(other) => return Err(bad(other.to_string())),
    };
    if (MIN_RATING..=MAX_RATING).contains(&rating) {
        Ok(rating)
    } else {
        Err(bad(rating.to_string()))
    }
}

fn time(value: Option<String>, field: &str) -> Result<Option<DateTime<Utc>>, String> {
    let Some(raw) = optional(value) else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&raw)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| format!("{field} {raw:?} is not an RFC 3339 time: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawReview {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn accepts_a_complete_record() {
        let c = validate(
            raw(
                r#"{"id":"r1","product_id":"p01","rating":"4","text":" <b>달지</b> 않아요 ",
                "order_id":"o-1","customer_id":"u1","created_at":"2025-05-01T10:00:00+09:00"}"#,
            ),
            7,
            TextBounds::default(),
        )
        .unwrap();
        assert_eq!(c.line, 7);
        assert_eq!(c.rating, 4);
        assert_eq!(c.text, "달지 않아요");
        assert_eq!(c.author_id.as_deref(), Some("u1"));
        assert_eq!(c.external_id.as_deref(), Some("r1"));
        assert_eq!(
            c.created_at.unwrap().to_rfc3339(),
            "2025-05-01T01:00:00+00:00"
        );
        assert_eq!(c.hash, ContentHash::of("p01", Some("u1"), "달지 않아요"));
    }

    #[test]
    fn gives_a_reason_for_each_bad_field() {
        let cases = [
            (r#"{"rating":5,"text":"좋아요"}"#, "product_id is missing"),
            (
                r#"{"product_id":"p 1","rating":5,"text":"좋아요"}"#,
                "product_id must be",
            ),
            (
                r#"{"product_id":"p1","text":"좋아요"}"#,
                "rating is missing",
            ),
            (r#"{"product_id":"p1","rating":6,"text":"좋아요"}"#, "got 6"),
            (
                r#"{"product_id":"p1","rating":4.5,"text":"좋아요"}"#,
                "got 4.5",
            ),
            (
                r#"{"product_id":"p1","rating":"five","text":"좋아요"}"#,
                "got \"five\"",
            ),
            (r#"{"product_id":"p1","rating":3}"#, "text is missing"),
            (
                r#"{"product_id":"p1","rating":3,"text":"<p> </p>"}"#,
                "empty",
            ),
            (
                r#"{"product_id":"p1","rating":3,"text":"좋아요","created_at":"yesterday"}"#,
                "created_at \"yesterday\" is not an RFC 3339 time",
            ),
            (
                r#"{"product_id":"p1","rating":3,"text":"좋아요","order_id":"o/1"}"#,
                "order_id must be",
            ),
            (
                r#"{"product_id":"p1","rating":3,"text":"좋아요","id":[1]}"#,
                "id must be",
            ),
        ];
        for (json, expected) in cases {
            let err = validate(raw(json), 1, TextBounds::default()).unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
