//! Pure construction of `review_vectors` documents and `$vectorSearch` pipelines.

use crate::model::ModelTag;
use crate::record::{Hit, SearchFilter, VectorRecord};
use mongodb::bson::{Bson, Document, doc};

/// Atlas caps `numCandidates` (and so `limit`) at this value.
pub const MAX_CANDIDATES: usize = 10_000;

/// The `_id` of a record's document under a model: `{model}/{review_id}`.
pub fn document_id(model: &ModelTag, review_id: &str) -> String {
    format!("{}/{}", model.key(), review_id)
}

fn vector_bson(vector: &[f32]) -> Bson {
    Bson::Array(vector.iter().map(|x| Bson::Double(f64::from(*x))).collect())
}

/// The stored document for `record` with its unit-length `vector`.
pub fn record_document(model: &ModelTag, record: &VectorRecord, vector: &[f32]) -> Document {
    doc! {
        "_id": document_id(model, &record.id),
        "review_id": &record.id,
        "product_id": &record.product_id,
        "category": &record.category,
        "model": model.key(),
        "embedding": vector_bson(vector),
    }
}

/// The `$vectorSearch` filter: always the model, plus the caller's product/category.
pub fn search_filter(model: &ModelTag, filter: &SearchFilter) -> Document {
    let mut clauses = vec![Bson::Document(doc! { "model": { "$eq": model.key() } })];
    if let Some(product) = &filter.product_id {
        clauses.push(Bson::Document(doc! { "product_id": { "$eq": product } }));
    }
    if let Some(category) = &filter.category {
        clauses.push(Bson::Document(doc! { "category": { "$eq": category } }));
    }
    doc! { "$and": clauses }
}

/// The aggregation pipeline returning the `k` nearest documents of `model` passing `filter`.
///
/// A product filter selects a handful of reviews, so it runs exact (ENN) search, which returns
/// exactly `min(k, matching)` hits; other searches run ANN with `candidates_per_result * k`
/// candidates (capped by Atlas's limit).
pub fn search_pipeline(
    index_name: &str,
    model: &ModelTag,
    query: &[f32],
    filter: &SearchFilter,
    k: usize,
    candidates_per_result: usize,
) -> Vec<Document> {
    let limit = k.clamp(1, MAX_CANDIDATES);
    let mut stage = doc! {
        "index": index_name,
        "path": "embedding",
        "queryVector": vector_bson(query),
        "filter": search_filter(model, filter),
        "limit": limit as i64,
    };
    if filter.product_id.is_some() {
        stage.insert("exact", true);
    } else {
        let candidates = limit
            .saturating_mul(candidates_per_result.max(1))
            .clamp(limit, MAX_CANDIDATES);
        stage.insert("numCandidates", candidates as i64);
    }
    vec![
        doc! { "$vectorSearch": stage },
        doc! { "$project": {
            "_id": 0,
            "review_id": 1,
            "product_id": 1,
            "score": { "$meta": "vectorSearchScore" },
        } },
    ]
}

/// A hit from one pipeline result; Atlas reports cosine as `(1 + cos) / 2`, mapped back here.
pub fn hit_from(document: &Document) -> Option<Hit> {
    let score = document.get_f64("score").ok()?;
    Some(Hit {
        id: document.get_str("review_id").ok()?.to_owned(),
        product_id: document.get_str("product_id").ok()?.to_owned(),
        score: (2.0 * score - 1.0) as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tag() -> ModelTag {
        ModelTag::new("e5-small", "v2", 3)
    }

    fn as_json(pipeline: &[Document]) -> serde_json::Value {
        serde_json::to_value(pipeline).unwrap()
    }

    #[test]
    fn unfiltered_search_is_ann_on_the_model() {
        let pipeline = search_pipeline(
            "rv_3",
            &tag(),
            &[0.5, 0.25, 1.0],
            &SearchFilter::none(),
            10,
            20,
        );
        assert_eq!(
            as_json(&pipeline),
            json!([
                { "$vectorSearch": {
                    "index": "rv_3",
                    "path": "embedding",
                    "queryVector": [0.5, 0.25, 1.0],
                    "filter": { "$and": [ { "model": { "$eq": "e5-small@v2" } } ] },
                    "limit": 10,
                    "numCandidates": 200
                } },
                { "$project": {
                    "_id": 0, "review_id": 1, "product_id": 1,
                    "score": { "$meta": "vectorSearchScore" }
                } }
            ])
        );
    }

    #[test]
    fn product_filter_runs_exact_search_with_all_clauses() {
        let filter = SearchFilter {
            product_id: Some("cake-1".into()),
            category: Some("cake".into()),
        };
        let pipeline = search_pipeline("rv_3", &tag(), &[1.0, 0.0, 0.0], &filter, 5, 20);
        assert_eq!(
            as_json(&pipeline)[0],
            json!({ "$vectorSearch": {
                "index": "rv_3",
                "path": "embedding",
                "queryVector": [1.0, 0.0, 0.0],
                "filter": { "$and": [
                    { "model": { "$eq": "e5-small@v2" } },
                    { "product_id": { "$eq": "cake-1" } },
                    { "category": { "$eq": "cake" } }
                ] },
                "limit": 5,
                "exact": true
            } })
        );
    }

    #[test]
    fn candidates_and_limit_stay_within_atlas_bounds() {
        let big = search_pipeline(
            "i",
            &tag(),
            &[1.0, 0.0, 0.0],
            &SearchFilter::category("c"),
            50_000,
            20,
        );
        let stage = big[0].get_document("$vectorSearch").unwrap();
        assert_eq!(stage.get_i64("limit").unwrap(), 10_000);
        assert_eq!(stage.get_i64("numCandidates").unwrap(), 10_000);
    }

    #[test]
    fn documents_carry_model_and_scores_map_back_to_cosine() {
        let record = VectorRecord {
            id: "r1".into(),
            product_id: "p1".into(),
            category: "cake".into(),
            vector: vec![1.0, 0.0, 0.0],
        };
        let document = record_document(&tag(), &record, &record.vector);
        assert_eq!(
            serde_json::to_value(&document).unwrap(),
            json!({
                "_id": "e5-small@v2/r1", "review_id": "r1", "product_id": "p1",
                "category": "cake", "model": "e5-small@v2", "embedding": [1.0, 0.0, 0.0]
            })
        );
        let hit = hit_from(&doc! { "review_id": "r1", "product_id": "p1", "score": 0.75 }).unwrap();
        assert_eq!(hit.score, 0.5);
        assert!(hit_from(&doc! { "review_id": "r1" }).is_none());
    }
}
