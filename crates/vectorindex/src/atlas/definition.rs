//! The collection's schema, indexes and Atlas Vector Search index, as kept in `mongo/*.json`.

use crate::error::IndexError;
use mongodb::IndexModel;
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{SearchIndexModel, SearchIndexType};
use serde::Deserialize;

/// `$jsonSchema` validator of `review_vectors` documents.
pub const SCHEMA_JSON: &str = include_str!("../../mongo/review_vectors.schema.json");
/// Regular indexes of `review_vectors`.
pub const INDEXES_JSON: &str = include_str!("../../mongo/review_vectors.indexes.json");
/// The Atlas Vector Search index for 384-dimensional models.
pub const VECTOR_INDEX_JSON: &str = include_str!("../../mongo/review_vectors.vector-index.json");

fn parse<T: for<'de> Deserialize<'de>>(what: &str, json: &str) -> Result<T, IndexError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| IndexError::Corrupt(format!("{what}: {e}")))?;
    mongodb::bson::deserialize_from_bson(
        mongodb::bson::serialize_to_bson(&value)
            .map_err(|e| IndexError::Corrupt(format!("{what}: {e}")))?,
    )
    .map_err(|e| IndexError::Corrupt(format!("{what}: {e}")))
}

/// The collection validator (`{"$jsonSchema": ...}`).
pub fn validator() -> Result<Document, IndexError> {
    parse("review_vectors.schema.json", SCHEMA_JSON)
}

#[derive(Deserialize)]
struct IndexSpec {
    name: String,
    key: Document,
    #[serde(default)]
    unique: bool,
}

/// The regular indexes to create on the collection.
pub fn indexes() -> Result<Vec<IndexModel>, IndexError> {
    let specs: Vec<IndexSpec> = parse("review_vectors.indexes.json", INDEXES_JSON)?;
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

/// The vector search index name for models of `dimension`.
pub fn vector_index_name(prefix: &str, dimension: usize) -> String {
    format!("{prefix}_{dimension}")
}

/// The Atlas Vector Search index for models of `dimension`, derived from the checked-in file.
pub fn vector_index(prefix: &str, dimension: usize) -> Result<SearchIndexModel, IndexError> {
    let mut file: Document = parse("review_vectors.vector-index.json", VECTOR_INDEX_JSON)?;
    let mut definition = file
        .remove("definition")
        .and_then(|d| d.as_document().cloned())
        .ok_or_else(|| IndexError::Corrupt("vector index file lacks a definition".into()))?;
    if let Ok(fields) = definition.get_array_mut("fields") {
        for field in fields.iter_mut() {
            if let Some(f) = field.as_document_mut()
                && f.get_str("type").is_ok_and(|t| t == "vector")
            {
                f.insert("numDimensions", dimension as i64);
            }
        }
    }
    Ok(SearchIndexModel::builder()
        .name(vector_index_name(prefix, dimension))
        .index_type(SearchIndexType::VectorSearch)
        .definition(definition)
        .build())
}

/// The catalog document pointing at the model in use.
pub(crate) fn catalog_pointer(collection: &str, tag: &crate::ModelTag) -> Document {
    doc! {
        "_id": collection,
        "model": { "name": &tag.name, "version": &tag.version, "dimension": tag.dimension as i64 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_vector_index_is_384_cosine_with_the_three_filters() {
        let model = vector_index("review_vectors_embedding", 384).unwrap();
        assert_eq!(model.name.as_deref(), Some("review_vectors_embedding_384"));
        let file: serde_json::Value = serde_json::from_str(VECTOR_INDEX_JSON).unwrap();
        assert_eq!(file["name"], "review_vectors_embedding_384");
        let fields = model.definition.get_array("fields").unwrap();
        let vector = fields[0].as_document().unwrap();
        assert_eq!(vector.get_str("similarity").unwrap(), "cosine");
        assert_eq!(vector.get_i64("numDimensions").unwrap(), 384);
        let filters: Vec<&str> = fields[1..]
            .iter()
            .map(|f| f.as_document().unwrap().get_str("path").unwrap())
            .collect();
        assert_eq!(filters, ["model", "product_id", "category"]);
    }

    #[test]
    fn other_dimensions_get_their_own_index() {
        let model = vector_index("rv", 768).unwrap();
        assert_eq!(model.name.as_deref(), Some("rv_768"));
        let fields = model.definition.get_array("fields").unwrap();
        assert_eq!(
            fields[0]
                .as_document()
                .unwrap()
                .get_i64("numDimensions")
                .unwrap(),
            768
        );
    }

    #[test]
    fn schema_and_indexes_parse() {
        let validator = validator().unwrap();
        let required = validator
            .get_document("$jsonSchema")
            .unwrap()
            .get_array("required")
            .unwrap();
        assert!(required.iter().any(|f| f.as_str() == Some("model")));
        let indexes = indexes().unwrap();
        assert_eq!(indexes.len(), 2);
        assert_eq!(indexes[0].keys, doc! { "model": 1i64, "review_id": 1i64 });
    }
}
