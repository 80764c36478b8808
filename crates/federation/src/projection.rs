//! Projects the merged subgraph data onto exactly the client's operation: field order, aliases,
//! `@skip`/`@include`, `__typename`, enum values, and null propagation with located errors.
//! It reads the merged response tree and writes the client's JSON text directly: a position
//! that must become null is cut back to where it started.

use std::collections::HashMap;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::error::{GraphQLError, PathSegment};
use crate::execution::tree::{NULL, Node, Object};
use crate::operation::{BoolSource, CompiledField, CompiledSelection, Condition};
use crate::schema::{SchemaIndex, TypeDef, TypeKind, TypeRef};

/// A non-null position got null: its parent must become null.
struct Propagate;

/// What a completed position wrote.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    /// `null`.
    Null,
    /// Anything else.
    Value,
}

/// One path step, borrowed while walking.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Memo key: the address and length of a list of selection lists, and of the runtime type name.
type MemoKey = (usize, usize, usize, usize);

/// Projection of one response, written as JSON text.
pub(crate) struct Projection<'a> {
    schema: &'a SchemaIndex,
    variables: &'a Map<String, Value>,
    /// Paths of errors already reported (a null under them needs no new error).
    known_error_paths: Vec<Vec<PathSegment>>,
    errors: Vec<GraphQLError>,
    path: Vec<Step<'a>>,
    /// Keyed by addresses and lengths (nothing from outside), so Fx hashing is safe and cheap.
    memo: FxHashMap<MemoKey, Rc<[Collected<'a>]>>,
}

/// One response key of an object with the fields selected under it.
struct Collected<'a> {
    key: &'a str,
    field: &'a CompiledField,
    /// The field's named type, looked up once.
    def: Option<&'a TypeDef>,
    sub: Vec<&'a [CompiledSelection]>,
}

impl<'a> Projection<'a> {
    /// Projects `data` (the merged root object) for `root_type` and returns the JSON text of
    /// the client's `data`, in a buffer of `size_hint` bytes to begin with.
    pub(crate) fn run(
        schema: &'a SchemaIndex,
        variables: &'a Map<String, Value>,
        root_type: &'a str,
        selections: &'a [CompiledSelection],
        data: &Node,
        errors: &mut Vec<GraphQLError>,
        size_hint: usize,
    ) -> String {
        let mut projection = Projection {
            schema,
            variables,
            known_error_paths: errors
                .iter()
                .filter_map(|error| error.path.clone())
                .collect(),
            errors: Vec::new(),
            path: Vec::new(),
            memo: HashMap::default(),
        };
        let empty = Object::default();
        let source = match data {
            Node::Object(object) => object,
            _ => &empty,
        };
        let lists = [selections];
        let mut out = Vec::with_capacity(size_hint.clamp(64, 16 << 20));
        if projection
            .object(root_type, &lists, source, &mut out)
            .is_err()
        {
            out.clear();
            out.extend_from_slice(b"null");
        }
        errors.append(&mut projection.errors);
        // Everything written is UTF-8: JSON punctuation, whole `&str`s and escapes.
        String::from_utf8(out).unwrap_or_else(|_| "null".to_owned())
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
        // Equal addresses mean equal contents: the lists live in the operation or in memo
        // entries, the type names in the schema or the operation, all for the whole run.
        let memo_key = (
            lists.as_ptr() as usize,
            lists.len(),
            runtime_type.as_ptr() as usize,
            runtime_type.len(),
        );
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
                def: self.schema.get(fields[0].ty.named()),
                sub: fields.iter().map(|f| f.selections.as_slice()).collect(),
            })
            .collect();
        self.memo.insert(memo_key, collected.clone());
        collected
    }

    /// Writes the object for `runtime_type`; on `Err` the caller discards what was written.
    fn object(
        &mut self,
        runtime_type: &'a str,
        lists: &[&'a [CompiledSelection]],
        source: &Object,
        out: &mut Vec<u8>,
    ) -> Result<(), Propagate> {
        let collected = self.collected(runtime_type, lists);
        out.push(b'{');
        for (index, entry) in collected.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let field = entry.field;
            let key = entry.key;
            // Response keys and type names are GraphQL names: nothing to escape.
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            if field.name == "__typename" {
                out.push(b'"');
                out.extend_from_slice(runtime_type.as_bytes());
                out.push(b'"');
                continue;
            }
            let value = source.get(key).unwrap_or(&NULL);
            self.path.push(Step::Key(key));
            let completed = self.complete(field, entry.def, &field.ty, &entry.sub, value, out);
            self.path.pop();
            completed?;
        }
        out.push(b'}');
        Ok(())
    }

    fn complete(
        &mut self,
        field: &'a CompiledField,
        def: Option<&'a TypeDef>,
        ty: &'a TypeRef,
        sub: &[&'a [CompiledSelection]],
        value: &Node,
        out: &mut Vec<u8>,
    ) -> Result<Written, Propagate> {
        match ty {
            TypeRef::NonNull(inner) => {
                let start = out.len();
                match self.complete(field, def, inner, sub, value, out) {
                    Ok(Written::Null) => {
                        out.truncate(start);
                        self.null_error(field);
                        Err(Propagate)
                    }
                    other => other,
                }
            }
            TypeRef::List(inner) => match value {
                Node::Null => Ok(write_null(out)),
                Node::Array(items) => {
                    let start = out.len();
                    out.push(b'[');
                    for (index, item) in items.iter().enumerate() {
                        if index > 0 {
                            out.push(b',');
                        }
                        self.path.push(Step::Index(index));
                        let completed = self.complete(field, def, inner, sub, item, out);
                        self.path.pop();
                        if completed.is_err() {
                            out.truncate(start);
                            return Ok(write_null(out));
                        }
                    }
                    out.push(b']');
                    Ok(Written::Value)
                }
                _ => Ok(self.type_error(field, "expected a list", out)),
            },
            TypeRef::Named(name) => {
                if value.is_null() {
                    return Ok(write_null(out));
                }
                let Some(def) = def else {
                    return Ok(write_null(out));
                };
                match def.kind {
                    TypeKind::Scalar | TypeKind::InputObject => {
                        value.write_json(out);
                        Ok(Written::Value)
                    }
                    TypeKind::Enum => match value.as_str() {
                        Some(text) if def.enum_values.contains(text) => {
                            value.write_json(out);
                            Ok(Written::Value)
                        }
                        _ => Ok(self.type_error(
                            field,
                            &format!("invalid value for enum \"{name}\""),
                            out,
                        )),
                    },
                    TypeKind::Object | TypeKind::Interface | TypeKind::Union => {
                        let Node::Object(object) = value else {
                            return Ok(self.type_error(field, "expected an object", out));
                        };
                        // An abstract value without a concrete `__typename` (the plan did not
                        // need one, or an @interfaceObject subgraph answered with an interface's
                        // name) is projected as the abstract type: its own fields and fragments
                        // on it apply, fragments on concrete types do not. A type the API schema
                        // lacks (@inaccessible) is an error.
                        let runtime: &'a str = if def.kind == TypeKind::Object {
                            name
                        } else {
                            match object.typename() {
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
                                            out,
                                        ));
                                    }
                                },
                            }
                        };
                        let start = out.len();
                        match self.object(runtime, sub, object, out) {
                            Ok(()) => Ok(Written::Value),
                            Err(Propagate) => {
                                out.truncate(start);
                                Ok(write_null(out))
                            }
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

    fn type_error(&mut self, field: &CompiledField, detail: &str, out: &mut Vec<u8>) -> Written {
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
        write_null(out)
    }
}

fn write_null(out: &mut Vec<u8>) -> Written {
    out.extend_from_slice(b"null");
    Written::Null
}
