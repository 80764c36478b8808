//! What goes into a vector index and what comes out of it.

use crate::error::IndexError;
use crate::model::ModelTag;

/// One review's embedding with the fields searches filter on.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorRecord {
    /// Review id (unique within an index).
    pub id: String,
    /// Product the review is about.
    pub product_id: String,
    /// Category of that product.
    pub category: String,
    /// The embedding, of the model's dimension.
    pub vector: Vec<f32>,
}

/// Restricts a search to one product and/or one category.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    /// Only reviews of this product.
    pub product_id: Option<String>,
    /// Only reviews of products in this category.
    pub category: Option<String>,
}

impl SearchFilter {
    /// A filter matching every record.
    pub fn none() -> Self {
        Self::default()
    }

    /// A filter on one product.
    pub fn product(product_id: impl Into<String>) -> Self {
        Self {
            product_id: Some(product_id.into()),
            category: None,
        }
    }

    /// A filter on one category.
    pub fn category(category: impl Into<String>) -> Self {
        Self {
            product_id: None,
            category: Some(category.into()),
        }
    }

    /// Whether this filter restricts anything.
    pub fn is_empty(&self) -> bool {
        self.product_id.is_none() && self.category.is_none()
    }

    /// Whether a record with these fields passes the filter.
    pub fn matches(&self, product_id: &str, category: &str) -> bool {
        self.product_id.as_deref().is_none_or(|p| p == product_id)
            && self.category.as_deref().is_none_or(|c| c == category)
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Review id.
    pub id: String,
    /// Product the review is about.
    pub product_id: String,
    /// Cosine similarity to the query, in [-1, 1].
    pub score: f32,
}

/// Checks a vector against the model and returns it scaled to unit length.
pub(crate) fn normalized(
    model: &ModelTag,
    id: &str,
    vector: &[f32],
) -> Result<Vec<f32>, IndexError> {
    if vector.len() != model.dimension {
        return Err(IndexError::DimensionMismatch {
            id: id.to_owned(),
            expected: model.dimension,
            actual: vector.len(),
            model: model.key(),
        });
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(IndexError::InvalidVector {
            id: id.to_owned(),
            reason: "contains NaN or infinite values",
        });
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(IndexError::InvalidVector {
            id: id.to_owned(),
            reason: "has zero or unrepresentable length",
        });
    }
    Ok(vector.iter().map(|x| x / norm).collect())
}

/// Checks a record's fields and returns its unit-length vector.
pub(crate) fn validated(model: &ModelTag, record: &VectorRecord) -> Result<Vec<f32>, IndexError> {
    if record.id.is_empty() {
        return Err(IndexError::InvalidRecord("empty id".into()));
    }
    if record.product_id.is_empty() {
        return Err(IndexError::InvalidRecord(format!(
            "record {:?} has an empty product_id",
            record.id
        )));
    }
    normalized(model, &record.id, &record.vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag() -> ModelTag {
        ModelTag::new("m", "1", 3)
    }

    #[test]
    fn normalizes_to_unit_length() {
        let v = normalized(&tag(), "a", &[3.0, 0.0, 4.0]).unwrap();
        assert_eq!(v, vec![0.6, 0.0, 0.8]);
    }

    #[test]
    fn refuses_wrong_dimension_nan_and_zero() {
        assert!(matches!(
            normalized(&tag(), "a", &[1.0, 2.0]),
            Err(IndexError::DimensionMismatch {
                expected: 3,
                actual: 2,
                ..
            })
        ));
        assert!(matches!(
            normalized(&tag(), "a", &[f32::NAN, 0.0, 1.0]),
            Err(IndexError::InvalidVector { .. })
        ));
        assert!(matches!(
            normalized(&tag(), "a", &[0.0, 0.0, 0.0]),
            Err(IndexError::InvalidVector { .. })
        ));
    }

    #[test]
    fn filter_matches_on_both_fields() {
        let f = SearchFilter {
            product_id: Some("p".into()),
            category: Some("c".into()),
        };
        assert!(f.matches("p", "c"));
        assert!(!f.matches("p", "d"));
        assert!(!f.matches("q", "c"));
        assert!(SearchFilter::none().matches("x", "y"));
    }
}
