//! Merging subgraph results into the response tree in place.

use serde_json::Value;

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

/// Deep-merges an entity result into the entity object.
pub(crate) fn merge_into_object(target: &mut serde_json::Map<String, Value>, source: Value) {
    if let Value::Object(source) = source {
        for (key, value) in source {
            match target.get_mut(&key) {
                Some(existing) => deep_merge(existing, value),
                None => {
                    target.insert(key, value);
                }
            }
        }
    }
}
