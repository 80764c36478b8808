//! Finding entities in the response along a flatten path and projecting their representations.

use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::planner::plan_nodes::FlattenNodePathSegment;
use serde_json::{Map, Value};

use crate::error::PathSegment;
use crate::schema::SchemaIndex;

/// Receives each entity found: its concrete response path and its object.
pub(crate) type EntityVisitor<'f, 'v> = dyn FnMut(&[PathSegment], &'v Map<String, Value>) + 'f;

/// Calls `found` with the concrete path and object of every entity at `path`.
pub(crate) fn collect<'v>(
    schema: &SchemaIndex,
    value: &'v Value,
    path: &[FlattenNodePathSegment],
    current: &mut Vec<PathSegment>,
    found: &mut EntityVisitor<'_, 'v>,
) {
    let Some((segment, rest)) = path.split_first() else {
        match value {
            Value::Object(object) => found(current, object),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    current.push(PathSegment::Index(index));
                    collect(schema, item, path, current, found);
                    current.pop();
                }
            }
            _ => {}
        }
        return;
    };
    match (segment, value) {
        (FlattenNodePathSegment::Field(key), Value::Object(object)) => {
            if let Some(inner) = object.get(key) {
                current.push(PathSegment::Key(key.clone()));
                collect(schema, inner, rest, current, found);
                current.pop();
            }
        }
        (FlattenNodePathSegment::List | FlattenNodePathSegment::Field(_), Value::Array(items)) => {
            // A list segment, or a field reached through a list the path did not mark.
            let next = if matches!(segment, FlattenNodePathSegment::List) {
                rest
            } else {
                path
            };
            for (index, item) in items.iter().enumerate() {
                current.push(PathSegment::Index(index));
                collect(schema, item, next, current, found);
                current.pop();
            }
        }
        (FlattenNodePathSegment::TypeCondition(types), Value::Object(object)) => {
            let matches = match object.get("__typename").and_then(Value::as_str) {
                Some(typename) => types
                    .iter()
                    .any(|condition| schema.satisfies(typename, condition)),
                None => true,
            };
            if matches {
                collect(schema, value, rest, current, found);
            }
        }
        (FlattenNodePathSegment::TypeCondition(_), Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                current.push(PathSegment::Index(index));
                collect(schema, item, path, current, found);
                current.pop();
            }
        }
        _ => {}
    }
}

/// Projects an entity onto the `requires` selections; `None` when nothing applies to it.
pub(crate) fn representation(
    schema: &SchemaIndex,
    entity: &Map<String, Value>,
    requires: &[SelectionItem],
) -> Option<Map<String, Value>> {
    let typename = entity.get("__typename").and_then(Value::as_str);
    let mut out = Map::new();
    project_into(schema, entity, typename, requires, &mut out);
    let has_fields = out.keys().any(|key| key != "__typename");
    let only_typename = requires.iter().all(|item| {
        matches!(item, SelectionItem::Field(field) if field.selection_identifier() == "__typename")
    });
    if !has_fields && !only_typename {
        return None;
    }
    if let Some(typename) = typename
        && !out.contains_key("__typename")
    {
        let mut with_typename = Map::with_capacity(out.len() + 1);
        with_typename.insert("__typename".to_owned(), Value::String(typename.to_owned()));
        with_typename.extend(out);
        out = with_typename;
    }
    Some(out)
}

fn project_into(
    schema: &SchemaIndex,
    entity: &Map<String, Value>,
    typename: Option<&str>,
    selections: &[SelectionItem],
    out: &mut Map<String, Value>,
) {
    for item in selections {
        match item {
            SelectionItem::Field(field) => {
                let key = field.selection_identifier();
                if key == "__typename" {
                    if let Some(typename) = typename {
                        out.insert("__typename".to_owned(), Value::String(typename.to_owned()));
                    }
                    continue;
                }
                let Some(original) = entity.get(&field.name).or_else(|| entity.get(key)) else {
                    continue;
                };
                let projected = if field.selections.items.is_empty() {
                    original.clone()
                } else {
                    project_value(schema, original, &field.selections.items)
                };
                out.insert(key.to_owned(), projected);
            }
            SelectionItem::InlineFragment(fragment) => {
                let applies = typename
                    .is_none_or(|typename| schema.satisfies(typename, &fragment.type_condition));
                if applies {
                    project_into(schema, entity, typename, &fragment.selections.items, out);
                }
            }
            SelectionItem::FragmentSpread(_) => {}
        }
    }
}

fn project_value(schema: &SchemaIndex, value: &Value, selections: &[SelectionItem]) -> Value {
    match value {
        Value::Object(object) => {
            let typename = object.get("__typename").and_then(Value::as_str);
            let mut out = Map::new();
            if let Some(typename) = typename {
                out.insert("__typename".to_owned(), Value::String(typename.to_owned()));
            }
            project_into(schema, object, typename, selections, &mut out);
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| project_value(schema, item, selections))
                .collect(),
        ),
        other => other.clone(),
    }
}
