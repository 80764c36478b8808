//! Projects the merged subgraph data onto exactly the client's operation: field order, aliases,
//! `@skip`/`@include`, `__typename`, enum values, and null propagation with located errors.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::error::{GraphQLError, PathSegment};
use crate::operation::{BoolSource, CompiledField, CompiledSelection, Condition};
use crate::schema::{SchemaIndex, TypeKind, TypeRef};

/// A non-null position got null: its parent must become null.
struct Propagate;

/// One path step, borrowed while walking.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Projection of one response.
pub(crate) struct Projection<'a> {
    schema: &'a SchemaIndex,
    variables: &'a Map<String, Value>,
    /// Paths of errors already reported (a null under them needs no new error).
    known_error_paths: Vec<Vec<PathSegment>>,
    errors: Vec<GraphQLError>,
    path: Vec<Step<'a>>,
    memo: HashMap<(usize, usize, &'a str), Rc<[Collected<'a>]>>,
}

/// One response key of an object with the fields selected under it.
struct Collected<'a> {
    key: &'a str,
    field: &'a CompiledField,
    sub: Vec<&'a [CompiledSelection]>,
}

impl<'a> Projection<'a> {
    /// Projects `data` (the merged root object) for `root_type`.
    pub(crate) fn run(
        schema: &'a SchemaIndex,
        variables: &'a Map<String, Value>,
        root_type: &'a str,
        selections: &'a [CompiledSelection],
        data: Value,
        errors: &mut Vec<GraphQLError>,
    ) -> Value {
        let mut projection = Projection {
            schema,
            variables,
            known_error_paths: errors
                .iter()
                .filter_map(|error| error.path.clone())
                .collect(),
            errors: Vec::new(),
            path: Vec::new(),
            memo: HashMap::new(),
        };
        let source = match data {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let lists = [selections];
        let out = match projection.object(root_type, &lists, source) {
            Ok(object) => Value::Object(object),
            Err(Propagate) => Value::Null,
        };
        errors.append(&mut projection.errors);
        out
    }

    fn condition_holds(&self, conditions: &[Condition]) -> bool {
        conditions.iter().all(|condition| {
            let (source, wanted) = match condition {
                Condition::Skip(source) => (source, false),
                Condition::Include(source) => (source, true),
            };
            let value = match source {
                BoolSource::Literal(value) => *value,
                BoolSource::Variable(name) => self
                    .variables
                    .get(name)
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            };
            value == wanted
        })
    }

    /// CollectFields: response keys in first-appearance order with every field selected under them.
    fn collect(
        &self,
        runtime_type: &str,
        lists: &[&'a [CompiledSelection]],
        out: &mut Vec<(&'a str, Vec<&'a CompiledField>)>,
    ) {
        for list in lists {
            self.collect_list(runtime_type, list, out);
        }
    }

    fn collect_list(
        &self,
        runtime_type: &str,
        list: &'a [CompiledSelection],
        out: &mut Vec<(&'a str, Vec<&'a CompiledField>)>,
    ) {
        for selection in list {
            match selection {
                CompiledSelection::Field(field) => {
                    if !self.condition_holds(&field.conditions) {
                        continue;
                    }
                    match out.iter_mut().find(|(key, _)| *key == field.response_key) {
                        Some((_, fields)) => fields.push(field),
                        None => out.push((&field.response_key, vec![field])),
                    }
                }
                CompiledSelection::Fragment(fragment) => {
                    if !self.condition_holds(&fragment.conditions) {
                        continue;
                    }
                    if let Some(condition) = &fragment.type_condition
                        && !self.schema.satisfies(runtime_type, condition)
                    {
                        continue;
                    }
                    self.collect_list(runtime_type, &fragment.selections, out);
                }
            }
        }
    }

    /// The collected fields of `lists` for `runtime_type`, computed once per run.
    fn collected(
        &mut self,
        runtime_type: &'a str,
        lists: &[&'a [CompiledSelection]],
    ) -> Rc<[Collected<'a>]> {
        let memo_key = (lists.as_ptr() as usize, lists.len(), runtime_type);
        if let Some(hit) = self.memo.get(&memo_key) {
            return hit.clone();
        }
        let mut grouped = Vec::new();
        self.collect(runtime_type, lists, &mut grouped);
        let collected: Rc<[Collected<'a>]> = grouped
            .into_iter()
            .map(|(key, fields)| Collected {
                key,
                field: fields[0],
                sub: fields.iter().map(|f| f.selections.as_slice()).collect(),
            })
            .collect();
        // Keys are addresses of slices that live as long as the memo (operation or memo entries).
        self.memo.insert(memo_key, collected.clone());
        collected
    }

    fn object(
        &mut self,
        runtime_type: &'a str,
        lists: &[&'a [CompiledSelection]],
        mut source: Map<String, Value>,
    ) -> Result<Map<String, Value>, Propagate> {
        let collected = self.collected(runtime_type, lists);
        let mut out = Map::with_capacity(collected.len());
        for entry in collected.iter() {
            let field = entry.field;
            let key = entry.key;
            if field.name == "__typename" {
                out.insert(key.to_owned(), Value::String(runtime_type.to_owned()));
                continue;
            }
            let (owned_key, value) = source
                .remove_entry(key)
                .unwrap_or_else(|| (key.to_owned(), Value::Null));
            self.path.push(Step::Key(key));
            let completed = self.complete(field, &field.ty, &entry.sub, value);
            self.path.pop();
            out.insert(owned_key, completed?);
        }
        Ok(out)
    }

    fn complete(
        &mut self,
        field: &'a CompiledField,
        ty: &'a TypeRef,
        sub: &[&'a [CompiledSelection]],
        value: Value,
    ) -> Result<Value, Propagate> {
        match ty {
            TypeRef::NonNull(inner) => match self.complete(field, inner, sub, value) {
                Ok(Value::Null) => {
                    self.null_error(field);
                    Err(Propagate)
                }
                other => other,
            },
            TypeRef::List(inner) => match value {
                Value::Null => Ok(Value::Null),
                Value::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for (index, item) in items.into_iter().enumerate() {
                        self.path.push(Step::Index(index));
                        let completed = self.complete(field, inner, sub, item);
                        self.path.pop();
                        match completed {
                            Ok(value) => out.push(value),
                            Err(Propagate) => return Ok(Value::Null),
                        }
                    }
                    Ok(Value::Array(out))
                }
                _ => Ok(self.type_error(field, "expected a list")),
            },
            TypeRef::Named(name) => {
                if value.is_null() {
                    return Ok(Value::Null);
                }
                let Some(def) = self.schema.get(name) else {
                    return Ok(Value::Null);
                };
                match def.kind {
                    TypeKind::Scalar | TypeKind::InputObject => Ok(value),
                    TypeKind::Enum => {
                        match value.as_str() {
                            Some(text) if def.enum_values.contains(text) => Ok(value),
                            _ => Ok(self
                                .type_error(field, &format!("invalid value for enum \"{name}\""))),
                        }
                    }
                    TypeKind::Object | TypeKind::Interface | TypeKind::Union => {
                        let Value::Object(object) = value else {
                            return Ok(self.type_error(field, "expected an object"));
                        };
                        // An abstract value without a concrete `__typename` (the plan did not
                        // need one, or an @interfaceObject subgraph answered with an interface's
                        // name) is projected as the abstract type: its own fields and fragments
                        // on it apply, fragments on concrete types do not. A type the API schema
                        // lacks (@inaccessible) is an error.
                        let runtime: &'a str = if def.kind == TypeKind::Object {
                            name
                        } else {
                            match object.get("__typename").and_then(Value::as_str) {
                                None => name,
                                Some(typename) => match def.possible_types.get(typename) {
                                    Some(concrete) => concrete,
                                    None if self.is_abstract(typename) => name,
                                    None => {
                                        return Ok(self.type_error(
                                            field,
                                            &format!(
                                                "could not resolve the concrete type of \"{name}\""
                                            ),
                                        ));
                                    }
                                },
                            }
                        };
                        match self.object(runtime, sub, object) {
                            Ok(object) => Ok(Value::Object(object)),
                            Err(Propagate) => Ok(Value::Null),
                        }
                    }
                }
            }
        }
    }

    fn is_abstract(&self, typename: &str) -> bool {
        self.schema
            .get(typename)
            .is_some_and(|def| matches!(def.kind, TypeKind::Interface | TypeKind::Union))
    }

    fn current_path(&self) -> Vec<PathSegment> {
        self.path
            .iter()
            .map(|step| match step {
                Step::Key(key) => PathSegment::Key((*key).to_owned()),
                Step::Index(index) => PathSegment::Index(*index),
            })
            .collect()
    }

    fn covered_by_known_error(&self, path: &[PathSegment]) -> bool {
        self.known_error_paths
            .iter()
            .any(|known| path.starts_with(known) || known.starts_with(path))
    }

    fn null_error(&mut self, field: &CompiledField) {
        let path = self.current_path();
        if self.covered_by_known_error(&path) {
            return;
        }
        self.known_error_paths.push(path.clone());
        self.errors.push(
            GraphQLError::new(
                format!(
                    "Cannot return null for non-nullable field {}.{}.",
                    field.parent_type, field.name
                ),
                "INTERNAL_SERVER_ERROR",
            )
            .with_path(path)
            .with_location(field.location),
        );
    }

    fn type_error(&mut self, field: &CompiledField, detail: &str) -> Value {
        let path = self.current_path();
        self.known_error_paths.push(path.clone());
        self.errors.push(
            GraphQLError::new(
                format!(
                    "Invalid value for {}.{}: {detail}.",
                    field.parent_type, field.name
                ),
                "INTERNAL_SERVER_ERROR",
            )
            .with_path(path)
            .with_location(field.location),
        );
        Value::Null
    }
}
