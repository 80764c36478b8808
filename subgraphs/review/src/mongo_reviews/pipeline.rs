//! Pure construction of `reviews` documents, filters, sorts and updates (unit-tested; no I/O).

use mongodb::bson::{Bson, Document, doc};

use crate::cursor::Cursor;
use crate::documents::DocumentsError;
use crate::labels::Labels;
use crate::reviews_view::ReviewDoc;

/// The sort of a product's page: newest first, ties by id (as the SQL read model).
pub fn page_sort() -> Document {
    doc! { "created_at": -1, "_id": -1 }
}

/// The filter of a product's page after `after`: strictly older, or as old with a smaller id.
pub fn page_filter(product_id: &str, after: Option<&Cursor>) -> Document {
    match after {
        None => doc! { "product_id": product_id },
        Some(c) => doc! {
            "product_id": product_id,
            "$or": [
                { "created_at": { "$lt": c.at.as_str() } },
                { "created_at": c.at.as_str(), "_id": { "$lt": c.id.as_str() } },
            ],
        },
    }
}

/// Rows fetched for a page of `first`: one more, to tell whether a next page exists.
pub fn page_limit(first: usize) -> i64 {
    i64::try_from(first.saturating_add(1)).unwrap_or(i64::MAX)
}

/// The filter selecting the reviews among `ids`.
pub fn ids_filter(ids: &[String]) -> Document {
    doc! { "_id": { "$in": ids } }
}

fn opt(value: Option<&str>) -> Bson {
    value.map_or(Bson::Null, |v| Bson::String(v.to_owned()))
}

/// The document of `review` minus its labels: what a `ReviewWritten` sets (upserted by id, so a
/// replayed event writes the same fields again and keeps labels already recorded).
pub fn written_fields(review: &ReviewDoc) -> Document {
    doc! {
        "product_id": &review.product_id,
        "product_name": &review.product_name,
        "product_category": opt(review.product_category.as_deref()),
        "order_id": opt(review.order_id.as_deref()),
        "order_date": opt(review.order_date.as_deref()),
        "author_id": opt(review.author_id.as_deref()),
        "rating": review.rating,
        "text": &review.text,
        "content_hash": &review.content_hash,
        "created_at": &review.created_at,
    }
}

/// The upsert of a written review: its fields set, `labels` null only when inserted.
pub fn written_update(review: &ReviewDoc) -> Document {
    doc! {
        "$set": written_fields(review),
        "$setOnInsert": { "labels": Bson::Null },
    }
}

/// The update recording `labels` (the latest labelling wins).
pub fn labels_update(labels: &Labels) -> Result<Document, DocumentsError> {
    let labels = mongodb::bson::serialize_to_bson(labels)
        .map_err(|e| DocumentsError::Decode(format!("labels: {e}")))?;
    Ok(doc! { "$set": { "labels": labels } })
}

fn opt_str(doc: &Document, key: &str) -> Result<Option<String>, DocumentsError> {
    match doc.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(DocumentsError::Decode(format!("{key} is {other}"))),
    }
}

fn req_str(doc: &Document, key: &str) -> Result<String, DocumentsError> {
    opt_str(doc, key)?.ok_or_else(|| DocumentsError::Decode(format!("{key} is missing")))
}

/// The review of a stored document.
pub fn review_of(doc: &Document) -> Result<ReviewDoc, DocumentsError> {
    let rating = match doc.get("rating") {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        other => return Err(DocumentsError::Decode(format!("rating is {other:?}"))),
    };
    let labels = match doc.get("labels") {
        None | Some(Bson::Null) => None,
        Some(b) => Some(
            mongodb::bson::deserialize_from_bson::<Labels>(b.clone())
                .map_err(|e| DocumentsError::Decode(format!("labels: {e}")))?,
        ),
    };
    Ok(ReviewDoc {
        id: req_str(doc, "_id")?,
        product_id: req_str(doc, "product_id")?,
        product_name: req_str(doc, "product_name")?,
        product_category: opt_str(doc, "product_category")?,
        order_id: opt_str(doc, "order_id")?,
        order_date: opt_str(doc, "order_date")?,
        author_id: opt_str(doc, "author_id")?,
        rating,
        text: req_str(doc, "text")?,
        content_hash: req_str(doc, "content_hash")?,
        created_at: req_str(doc, "created_at")?,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{AspectLabel, Sentiment};
    use serde_json::json;

    fn review() -> ReviewDoc {
        ReviewDoc {
            id: "r-1".into(),
            product_id: "p-1".into(),
            product_name: "딸기 케이크".into(),
            product_category: Some("cake".into()),
            order_id: Some("o-1".into()),
            order_date: Some("2026-01-02T03:04:05.000006Z".into()),
            author_id: Some("sub-1".into()),
            rating: 5,
            text: "맛있어요".into(),
            content_hash: "ab".repeat(32),
            created_at: "2026-01-03T00:00:00.000000Z".into(),
            labels: None,
        }
    }

    fn as_json(doc: &Document) -> serde_json::Value {
        serde_json::to_value(doc).unwrap()
    }

    #[test]
    fn a_first_page_filters_on_the_product_only() {
        assert_eq!(
            as_json(&page_filter("p-1", None)),
            json!({ "product_id": "p-1" })
        );
        assert_eq!(
            as_json(&page_sort()),
            json!({ "created_at": -1, "_id": -1 })
        );
        assert_eq!(page_limit(10), 11);
        assert_eq!(page_limit(usize::MAX), i64::MAX);
    }

    #[test]
    fn a_next_page_resumes_strictly_after_the_cursor() {
        let cursor = Cursor::after("2026-01-03T00:00:00.000000Z", "r-5");
        assert_eq!(
            as_json(&page_filter("p-1", Some(&cursor))),
            json!({
                "product_id": "p-1",
                "$or": [
                    { "created_at": { "$lt": "2026-01-03T00:00:00.000000Z" } },
                    { "created_at": "2026-01-03T00:00:00.000000Z", "_id": { "$lt": "r-5" } },
                ],
            })
        );
    }

    #[test]
    fn ids_are_looked_up_with_in() {
        let ids = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            as_json(&ids_filter(&ids)),
            json!({ "_id": { "$in": ["a", "b"] } })
        );
    }

    #[test]
    fn a_written_review_upserts_its_fields_and_keeps_labels() {
        let update = written_update(&review());
        assert_eq!(
            as_json(&update),
            json!({
                "$set": {
                    "product_id": "p-1",
                    "product_name": "딸기 케이크",
                    "product_category": "cake",
                    "order_id": "o-1",
                    "order_date": "2026-01-02T03:04:05.000006Z",
                    "author_id": "sub-1",
                    "rating": 5,
                    "text": "맛있어요",
                    "content_hash": "ab".repeat(32),
                    "created_at": "2026-01-03T00:00:00.000000Z",
                },
                "$setOnInsert": { "labels": null },
            })
        );
    }

    #[test]
    fn a_document_round_trips_with_and_without_labels() {
        let mut doc = written_fields(&review());
        doc.insert("_id", "r-1");
        doc.insert("labels", Bson::Null);
        assert_eq!(review_of(&doc).unwrap(), review());

        let labels = Labels {
            sentiment: Sentiment::Positive,
            aspects: vec![AspectLabel {
                aspect: crate::labels::Aspect::Taste,
                sentiment: Sentiment::Positive,
                relevance: 0.5,
            }],
            model: "labeller".into(),
            version: "1".into(),
        };
        let set = labels_update(&labels).unwrap();
        doc.insert(
            "labels",
            set.get_document("$set")
                .unwrap()
                .get("labels")
                .unwrap()
                .clone(),
        );
        let labelled = review_of(&doc).unwrap();
        assert_eq!(labelled.labels, Some(labels));
    }

    #[test]
    fn an_anonymous_review_stores_null_author_and_a_bad_document_is_an_error() {
        let mut anonymous = review();
        anonymous.author_id = None;
        anonymous.product_category = None;
        let fields = written_fields(&anonymous);
        assert_eq!(fields.get("author_id"), Some(&Bson::Null));
        let mut doc = fields;
        doc.insert("_id", "r-1");
        assert_eq!(review_of(&doc).unwrap(), anonymous);
        doc.insert("rating", "five");
        assert!(matches!(review_of(&doc), Err(DocumentsError::Decode(_))));
    }
}
