//! Merging subgraph results into the response tree in place.

use serde_json::Value;

use crate::error::PathSegment;

/// Deep-merges `source` into `target`: objects field by field, equal-length lists item by item.
pub(crate) fn deep_merge(target: &mut Value, source: Value) {
    match (target, source) {
        (Value::Object(target), Value::Object(source)) => {
            for (key, value) in source {
                match target.get_mut(&key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(target), Value::Array(source)) if target.len() == source.len() => {
            for (existing, value) in target.iter_mut().zip(source) {
                deep_merge(existing, value);
            }
        }
        (target, Value::Null) if !target.is_null() => {}
        (target, source) => *target = source,
    }
}

/// The value at a concrete response path.
pub(crate) fn get_mut<'v>(root: &'v mut Value, path: &[PathSegment]) -> Option<&'v mut Value> {
    let mut current = root;
    for segment in path {
        current = match (segment, current) {
            (PathSegment::Key(key), Value::Object(object)) => object.get_mut(key)?,
            (PathSegment::Index(index), Value::Array(items)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(current)
}
