//! Finding entities in the response along a flatten path and projecting their representations.

use super::tree::{Node, Object, Text, write_str};
use crate::error::PathSegment;
use crate::schema::SchemaIndex;
use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::planner::plan_nodes::FlattenNodePathSegment;

/// Calls `found` with every entity object at `path`, in response order.
pub(crate) fn visit<'v>(
    schema: &SchemaIndex,
    value: &'v Node,
    path: &[FlattenNodePathSegment],
    found: &mut dyn FnMut(&'v Object),
) {
    match value {
        Node::Array(items) => {
            let next = match path.first() {
                Some(FlattenNodePathSegment::List) => &path[1..],
                _ => path,
            };
            for item in items {
                visit(schema, item, next, found);
            }
        }
        Node::Object(object) => match path.split_first() {
            None => found(object),
            Some((FlattenNodePathSegment::Field(key), rest)) => {
                if let Some(inner) = object.get(key) {
                    visit(schema, inner, rest, found);
                }
            }
            Some((FlattenNodePathSegment::TypeCondition(types), rest)) => {
                if typename_matches(schema, object, types) {
                    visit(schema, value, rest, found);
                }
            }
            Some((FlattenNodePathSegment::List, _)) => {}
        },
        _ => {}
    }
}

/// Like [`visit`], with mutable access; visits the same entities in the same order.
pub(crate) fn visit_mut(
    schema: &SchemaIndex,
    value: &mut Node,
    path: &[FlattenNodePathSegment],
    found: &mut dyn FnMut(&mut Object),
) {
    match value {
        Node::Array(items) => {
            let next = match path.first() {
                Some(FlattenNodePathSegment::List) => &path[1..],
                _ => path,
            };
            for item in items {
                visit_mut(schema, item, next, found);
            }
        }
        Node::Object(object) => match path.split_first() {
            None => found(object),
            Some((FlattenNodePathSegment::Field(key), rest)) => {
                if let Some(inner) = object.get_mut(key) {
                    visit_mut(schema, inner, rest, found);
                }
            }
            Some((FlattenNodePathSegment::TypeCondition(types), rest)) => {
                if typename_matches(schema, object, types) {
                    visit_mut(schema, value, rest, found);
                }
            }
            Some((FlattenNodePathSegment::List, _)) => {}
        },
        _ => {}
    }
}

fn typename_matches(
    schema: &SchemaIndex,
    object: &Object,
    types: &std::collections::BTreeSet<String>,
) -> bool {
    match object.typename() {
        Some(typename) => types
            .iter()
            .any(|condition| schema.satisfies(typename, condition)),
        None => true,
    }
}

/// Writes the representation of an entity (its `requires` projection) as JSON into `out`;
/// false when nothing applies to it.
pub(crate) fn write_representation(
    schema: &SchemaIndex,
    entity: &Object,
    requires: &[SelectionItem],
    out: &mut Vec<u8>,
) -> bool {
    let typename = entity.typename();
    out.push(b'{');
    let mut first = true;
    if let Some(typename) = typename {
        out.extend_from_slice(b"\"__typename\":");
        write_str(out, typename);
        first = false;
    }
    let mut wrote_field = false;
    write_fields(
        schema,
        entity,
        typename,
        requires,
        out,
        &mut first,
        &mut wrote_field,
    );
    out.push(b'}');
    let only_typename = requires.iter().all(|item| {
        matches!(item, SelectionItem::Field(field) if field.selection_identifier() == "__typename")
    });
    wrote_field || only_typename
}

fn write_fields(
    schema: &SchemaIndex,
    entity: &Object,
    typename: Option<&str>,
    selections: &[SelectionItem],
    out: &mut Vec<u8>,
    first: &mut bool,
    wrote_field: &mut bool,
) {
    for item in selections {
        match item {
            SelectionItem::Field(field) => {
                let key = field.selection_identifier();
                if key == "__typename" {
                    continue;
                }
                let Some(original) = entity.get(&field.name).or_else(|| entity.get(key)) else {
                    continue;
                };
                if !*first {
                    out.push(b',');
                }
                *first = false;
                *wrote_field = true;
                write_str(out, key);
                out.push(b':');
                if field.selections.items.is_empty() {
                    original.write_json(out);
                } else {
                    write_nested(schema, original, &field.selections.items, out);
                }
            }
            SelectionItem::InlineFragment(fragment) => {
                let applies = typename
                    .is_none_or(|typename| schema.satisfies(typename, &fragment.type_condition));
                if applies {
                    write_fields(
                        schema,
                        entity,
                        typename,
                        &fragment.selections.items,
                        out,
                        first,
                        wrote_field,
                    );
                }
            }
            SelectionItem::FragmentSpread(_) => {}
        }
    }
}

fn write_nested(
    schema: &SchemaIndex,
    value: &Node,
    selections: &[SelectionItem],
    out: &mut Vec<u8>,
) {
    match value {
        Node::Object(object) => {
            let typename = object.typename();
            out.push(b'{');
            let mut first = true;
            if let Some(typename) = typename {
                out.extend_from_slice(b"\"__typename\":");
                write_str(out, typename);
                first = false;
            }
            let mut wrote_field = false;
            write_fields(
                schema,
                object,
                typename,
                selections,
                out,
                &mut first,
                &mut wrote_field,
            );
            out.push(b'}');
        }
        Node::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_nested(schema, item, selections, out);
            }
            out.push(b']');
        }
        other => other.write_json(out),
    }
}

/// Receives each entity found: its concrete response path and its object.
pub(crate) type EntityVisitor<'f, 'v> = dyn FnMut(&[PathSegment], &'v Object) + 'f;

/// Calls `found` with the concrete path and object of every entity at `path`.
pub(crate) fn collect<'v>(
    schema: &SchemaIndex,
    value: &'v Node,
    path: &[FlattenNodePathSegment],
    current: &mut Vec<PathSegment>,
    found: &mut EntityVisitor<'_, 'v>,
) {
    let Some((segment, rest)) = path.split_first() else {
        match value {
            Node::Object(object) => found(current, object),
            Node::Array(items) => {
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
        (FlattenNodePathSegment::Field(key), Node::Object(object)) => {
            if let Some(inner) = object.get(key) {
                current.push(PathSegment::Key(key.clone()));
                collect(schema, inner, rest, current, found);
                current.pop();
            }
        }
        (FlattenNodePathSegment::List | FlattenNodePathSegment::Field(_), Node::Array(items)) => {
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
        (FlattenNodePathSegment::TypeCondition(types), Node::Object(object)) => {
            let matches = match object.typename() {
                Some(typename) => types
                    .iter()
                    .any(|condition| schema.satisfies(typename, condition)),
                None => true,
            };
            if matches {
                collect(schema, value, rest, current, found);
            }
        }
        (FlattenNodePathSegment::TypeCondition(_), Node::Array(items)) => {
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
    entity: &Object,
    requires: &[SelectionItem],
) -> Option<Object> {
    let typename = entity.typename();
    let mut out = Object::default();
    project_into(schema, entity, typename, requires, &mut out);
    let has_fields = out.iter().any(|(key, _)| key != "__typename");
    let only_typename = requires.iter().all(|item| {
        matches!(item, SelectionItem::Field(field) if field.selection_identifier() == "__typename")
    });
    if !has_fields && !only_typename {
        return None;
    }
    if let Some(typename) = typename
        && !out.contains_key("__typename")
    {
        let mut with_typename = Object::with_capacity(out.len() + 1);
        with_typename.push(Text::new("__typename"), Node::string(typename));
        for (key, value) in out {
            with_typename.push(key, value);
        }
        out = with_typename;
    }
    Some(out)
}

fn project_into(
    schema: &SchemaIndex,
    entity: &Object,
    typename: Option<&str>,
    selections: &[SelectionItem],
    out: &mut Object,
) {
    for item in selections {
        match item {
            SelectionItem::Field(field) => {
                let key = field.selection_identifier();
                if key == "__typename" {
                    if let Some(typename) = typename {
                        out.insert(Text::new("__typename"), Node::string(typename));
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
                out.insert(Text::new(key), projected);
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

fn project_value(schema: &SchemaIndex, value: &Node, selections: &[SelectionItem]) -> Node {
    match value {
        Node::Object(object) => {
            let typename = object.typename();
            let mut out = Object::default();
            if let Some(typename) = typename {
                out.push(Text::new("__typename"), Node::string(typename));
            }
            project_into(schema, object, typename, selections, &mut out);
            Node::Object(out)
        }
        Node::Array(items) => Node::Array(
            items
                .iter()
                .map(|item| project_value(schema, item, selections))
                .collect(),
        ),
        other => other.clone(),
    }
}
