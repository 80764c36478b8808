//! The MongoDB adapter of the review documents against a real MongoDB (Atlas or a replica
//! set), in a database of its own; skipped, saying why, when `MONGODB_URI` is not set.

use std::time::{SystemTime, UNIX_EPOCH};

use review::cursor::Cursor;
use review::labels::{Labels, Sentiment};
use review::reviews_view::ReviewDoc;
use review::{MongoReviews, ReviewDocuments};

async fn database() -> Option<mongodb::Database> {
    let Ok(uri) = std::env::var("MONGODB_URI") else {
        println!(
            "skipped: MONGODB_URI is not set, no MongoDB to test the review documents against"
        );
        return None;
    };
    let client = mongodb::Client::with_uri_str(&uri)
        .await
        .expect("MONGODB_URI is usable");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Some(client.database(&format!("review_docs_{}_{nanos}", std::process::id())))
}

fn review(id: &str, product: &str, created_at: &str) -> ReviewDoc {
    ReviewDoc {
        id: id.into(),
        product_id: product.into(),
        product_name: "딸기 케이크".into(),
        product_category: Some("cake".into()),
        order_id: Some(format!("order-{id}")),
        order_date: Some("2026-01-01T00:00:00.000000Z".into()),
        author_id: Some("sub-1".into()),
        rating: 4,
        text: format!("리뷰 {id}"),
        content_hash: "cd".repeat(32),
        created_at: created_at.into(),
        labels: None,
    }
}

#[tokio::test]
async fn documents_are_upserted_idempotently_paged_newest_first_and_labelled() {
    let Some(db) = database().await else { return };
    let reviews = MongoReviews::new(&db);
    reviews.ensure_schema().await.unwrap();
    // Idempotent: a second start finds the collection and its indexes.
    reviews.ensure_schema().await.unwrap();

    let docs = [
        review("r-1", "p-1", "2026-01-01T00:00:00.000000Z"),
        review("r-2", "p-1", "2026-01-02T00:00:00.000000Z"),
        review("r-3", "p-1", "2026-01-02T00:00:00.000000Z"),
        review("r-4", "p-2", "2026-01-03T00:00:00.000000Z"),
    ];
    for doc in &docs {
        reviews.upsert(doc).await.unwrap();
    }
    let labels = Labels {
        sentiment: Sentiment::Positive,
        aspects: vec![],
        model: "labeller".into(),
        version: "1".into(),
    };
    assert!(reviews.set_labels("r-2", &labels).await.unwrap());
    assert!(!reviews.set_labels("missing", &labels).await.unwrap());
    // A replayed ReviewWritten rewrites the document and keeps its labels.
    reviews.upsert(&docs[1]).await.unwrap();

    let first = reviews.page("p-1", 2, None).await.unwrap();
    let ids: Vec<&str> = first.reviews.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r-3", "r-2"]);
    assert!(first.has_next_page);
    assert_eq!(first.reviews[1].labels.as_ref(), Some(&labels));
    let after = Cursor::decode(&first.reviews[1].cursor()).unwrap();
    let rest = reviews.page("p-1", 2, Some(&after)).await.unwrap();
    let ids: Vec<&str> = rest.reviews.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r-1"]);
    assert!(!rest.has_next_page);

    let found = reviews
        .get_many(&["r-4".into(), "r-1".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found["r-4"], docs[3]);
    assert_eq!(reviews.get("r-1").await.unwrap(), Some(docs[0].clone()));
    let count = db
        .collection::<mongodb::bson::Document>("reviews")
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap();
    assert_eq!(count, 4, "upserts by review id never duplicate");

    db.drop().await.unwrap();
}
