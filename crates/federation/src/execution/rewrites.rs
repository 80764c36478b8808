//! Input and output rewrites the planner attaches to fetches (`ValueSetter`, `KeyRenamer`).

use hive_router_query_planner::planner::plan_nodes::{FetchNodePathSegment, FetchRewrite};

use super::tree::{Node, Object, Text};
use crate::schema::SchemaIndex;

/// Applies every rewrite to `value` in order.
pub(crate) fn apply_all(schema: &SchemaIndex, rewrites: &[FetchRewrite], value: &mut Node) {
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
    object: &Object,
    conditions: &std::collections::BTreeSet<String>,
) -> bool {
    match object.typename() {
        Some(typename) => conditions
            .iter()
            .any(|condition| schema.satisfies(typename, condition)),
        None => true,
    }
}

fn set_value(schema: &SchemaIndex, path: &[FetchNodePathSegment], to: &str, value: &mut Node) {
    let Some((segment, rest)) = path.split_first() else {
        *value = Node::string(to);
        return;
    };
    match value {
        Node::Array(items) => items
            .iter_mut()
            .for_each(|item| set_value(schema, path, to, item)),
        Node::Object(object) => match segment {
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

fn rename_key(schema: &SchemaIndex, path: &[FetchNodePathSegment], to: &str, value: &mut Node) {
    let Some((segment, rest)) = path.split_first() else {
        return;
    };
    match value {
        Node::Array(items) => items
            .iter_mut()
            .for_each(|item| rename_key(schema, path, to, item)),
        Node::Object(object) => match segment {
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
                        object.insert(Text::new(to), moved);
                    }
                } else if let Some(inner) = object.get_mut(key) {
                    rename_key(schema, rest, to, inner);
                }
            }
        },
        _ => {}
    }
}
