//! Projects the merged subgraph data onto exactly the client's operation: field order, aliases,
//! `@skip`/`@include`, `__typename`, enum values, and null propagation with located errors.

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

    fn object(
        &mut self,
        runtime_type: &str,
        lists: &[&'a [CompiledSelection]],
        mut source: Map<String, Value>,
    ) -> Result<Map<String, Value>, Propagate> {
        let mut grouped = Vec::new();
        self.collect(runtime_type, lists, &mut grouped);
        let mut out = Map::with_capacity(grouped.len());
        for (key, fields) in grouped {
            let field = fields[0];
            if field.name == "__typename" {
                out.insert(key.to_owned(), Value::String(runtime_type.to_owned()));
                continue;
            }
            let value = source.remove(key).unwrap_or(Value::Null);
            let sub: Vec<&'a [CompiledSelection]> =
                fields.iter().map(|f| f.selections.as_slice()).collect();
            self.path.push(Step::Key(key));
            let completed = self.complete(field, &field.ty, &sub, value);
            self.path.pop();
            out.insert(key.to_owned(), completed?);
        }
        Ok(out)
    }

    fn complete(
        &mut self,
        field: &'a CompiledField,
        ty: &TypeRef,
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
                        let runtime = if def.kind == TypeKind::Object {
                            name.clone()
                        } else {
                            match object.get("__typename").and_then(Value::as_str) {
                                Some(typename) if def.possible_types.contains(typename) => {
                                    typename.to_owned()
                                }
                                _ => {
                                    return Ok(self.type_error(
                                        field,
                                        &format!(
                                            "could not resolve the concrete type of \"{name}\""
                                        ),
                                    ));
                                }
                            }
                        };
                        match self.object(&runtime, sub, object) {
                            Ok(object) => Ok(Value::Object(object)),
                            Err(Propagate) => Ok(Value::Null),
                        }
                    }
                }
            }
        }
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
