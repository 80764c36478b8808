//! Merging subgraph results into the response tree in place.

use super::tree::{Node, Object};

/// Deep-merges `source` into `target`: objects field by field, equal-length lists item by item.
pub(crate) fn deep_merge(target: &mut Node, source: Node) {
    match (target, source) {
        (Node::Object(target), Node::Object(source)) => merge_objects(target, source),
        (Node::Array(target), Node::Array(source)) if target.len() == source.len() => {
            for (existing, value) in target.iter_mut().zip(source) {
                deep_merge(existing, value);
            }
        }
        (target, Node::Null) if !target.is_null() => {}
        (target, source) => *target = source,
    }
}

/// Deep-merges an entity result into the entity object.
pub(crate) fn merge_into_object(target: &mut Object, source: Node) {
    if let Node::Object(source) = source {
        merge_objects(target, source);
    }
}

fn merge_objects(target: &mut Object, source: Object) {
    for (key, value) in source {
        match target.get_mut(key.as_str()) {
            Some(existing) => deep_merge(existing, value),
            None => target.push(key, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(value: serde_json::Value) -> Node {
        Node::from_value(value)
    }

    #[test]
    fn merges_objects_and_equal_lists_deeply() {
        let mut target = node(json!({"a": {"x": 1}, "l": [{"id": 1}, {"id": 2}], "n": 5}));
        deep_merge(
            &mut target,
            node(json!({"a": {"y": 2}, "l": [{"v": "a"}, {"v": "b"}], "n": null, "new": true})),
        );
        assert_eq!(
            target.to_value(),
            json!({"a": {"x": 1, "y": 2}, "l": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], "n": 5, "new": true})
        );
    }

    #[test]
    fn lists_of_other_lengths_are_replaced() {
        let mut target = node(json!({"l": [1, 2]}));
        deep_merge(&mut target, node(json!({"l": [3]})));
        assert_eq!(target.to_value(), json!({"l": [3]}));
    }
}
