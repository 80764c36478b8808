//! The `reviews` collection's schema and indexes, as kept in `subgraphs/review/mongo/*.json`.

use mongodb::IndexModel;
use mongodb::bson::Document;
use mongodb::options::IndexOptions;
use serde::Deserialize;

use crate::documents::DocumentsError;

/// `$jsonSchema` validator of `reviews` documents.
pub const SCHEMA_JSON: &str = include_str!("../../mongo/reviews.schema.json");
/// Regular indexes of `reviews`.
pub const INDEXES_JSON: &str = include_str!("../../mongo/reviews.indexes.json");

/// Parses a checked-in file straight into BSON, keeping key order (a compound index's keys are
/// ordered; a `serde_json::Value` detour would sort them).
fn parse<T: for<'de> Deserialize<'de>>(what: &str, json: &str) -> Result<T, DocumentsError> {
    serde_json::from_str(json).map_err(|e| DocumentsError::Decode(format!("{what}: {e}")))
}

/// The collection validator (`{"$jsonSchema": ...}`).
pub fn validator() -> Result<Document, DocumentsError> {
    parse("reviews.schema.json", SCHEMA_JSON)
}

#[derive(Deserialize)]
struct IndexSpec {
    name: String,
    key: Document,
    #[serde(default)]
    unique: bool,
}

/// The regular indexes of the collection (created idempotently: same name, same keys).
pub fn indexes() -> Result<Vec<IndexModel>, DocumentsError> {
    let specs: Vec<IndexSpec> = parse("reviews.indexes.json", INDEXES_JSON)?;
    Ok(specs
        .into_iter()
        .map(|s| {
            IndexModel::builder()
                .keys(s.key)
                .options(
                    IndexOptions::builder()
                        .name(s.name)
                        .unique(s.unique)
                        .build(),
                )
                .build()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_files_parse() {
        let validator = validator().unwrap();
        let schema = validator.get_document("$jsonSchema").unwrap();
        let required: Vec<&str> = schema
            .get_array("required")
            .unwrap()
            .iter()
            .filter_map(|b| b.as_str())
            .collect();
        assert!(required.contains(&"_id") && required.contains(&"created_at"));
        let properties = schema.get_document("properties").unwrap();
        // No personal data of the author beyond their id.
        for key in properties.keys() {
            assert!(
                !key.starts_with("author_") || key == "author_id",
                "{key} would store personal data"
            );
        }
        let names: Vec<String> = indexes()
            .unwrap()
            .into_iter()
            .filter_map(|i| i.options.and_then(|o| o.name))
            .collect();
        assert_eq!(names, ["product_created", "content_hash"]);
    }

    #[test]
    fn the_page_index_serves_the_page_sort() {
        let page = indexes()
            .unwrap()
            .into_iter()
            .find(|i| i.options.as_ref().and_then(|o| o.name.as_deref()) == Some("product_created"))
            .unwrap();
        let directions = |d: &Document| -> Vec<(String, i64)> {
            d.iter()
                .map(|(k, v)| (k.clone(), v.as_i64().or(v.as_i32().map(i64::from)).unwrap()))
                .collect()
        };
        // Equality on product_id first, then the sort keys in order and direction.
        let mut expected = vec![("product_id".to_owned(), 1)];
        expected.extend(directions(&crate::mongo_reviews::pipeline::page_sort()));
        assert_eq!(directions(&page.keys), expected);
    }
}
