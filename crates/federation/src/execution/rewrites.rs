//! Input and output rewrites the planner attaches to fetches (`ValueSetter`, `KeyRenamer`).

use hive_router_query_planner::planner::plan_nodes::{FetchNodePathSegment, FetchRewrite};
use serde_json::Value;

use crate::schema::SchemaIndex;

/// Applies every rewrite to `value` in order.
pub(crate) fn apply_all(schema: &SchemaIndex, rewrites: &[FetchRewrite], value: &mut Value) {
    for rewrite in rewrites {
        match rewrite {
            FetchRewrite::ValueSetter(setter) => {
                set_value(schema, &setter.path, &setter.set_value_to, value)
            }
            FetchRewrite::KeyRenamer(renamer) => {
                rename_key(schema, &renamer.path, &renamer.rename_key_to, value)
            }
        }
    }
}

fn typename_matches(
    schema: &SchemaIndex,
    object: &serde_json::Map<String, Value>,
    conditions: &std::collections::BTreeSet<String>,
) -> bool {
    match object.get("__typename").and_then(Value::as_str) {
        Some(typename) => conditions
            .iter()
            .any(|condition| schema.satisfies(typename, condition)),
        None => true,
    }
}

fn set_value(schema: &SchemaIndex, path: &[FetchNodePathSegment], to: &str, value: &mut Value) {
    let Some((segment, rest)) = path.split_first() else {
        *value = Value::String(to.to_owned());
        return;
    };
    match value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| set_value(schema, path, to, item)),
        Value::Object(object) => match segment {
            FetchNodePathSegment::TypenameEquals(conditions) => {
                if typename_matches(schema, object, conditions) {
                    set_value(schema, rest, to, value);
                }
            }
            FetchNodePathSegment::Key(key) => {
                if let Some(inner) = object.get_mut(key) {
                    set_value(schema, rest, to, inner);
                }
            }
        },
        _ => {}
    }
}

fn rename_key(schema: &SchemaIndex, path: &[FetchNodePathSegment], to: &str, value: &mut Value) {
    let Some((segment, rest)) = path.split_first() else {
        return;
    };
    match value {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rename_key(schema, path, to, item)),
        Value::Object(object) => match segment {
            FetchNodePathSegment::TypenameEquals(conditions) => {
                if typename_matches(schema, object, conditions) {
                    rename_key(schema, rest, to, value);
                }
            }
            FetchNodePathSegment::Key(key) => {
                if rest.is_empty() {
                    if key != to
                        && let Some(moved) = object.remove(key)
                    {
                        object.insert(to.to_owned(), moved);
                    }
                } else if let Some(inner) = object.get_mut(key) {
                    rename_key(schema, rest, to, inner);
                }
            }
        },
        _ => {}
    }
}
