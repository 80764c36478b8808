//! The client's operation compiled once per prepared operation: fragments inlined, directives
//! kept as conditions, each field bound to its schema type (used by limits and projection).

use std::collections::HashMap;

use graphql_tools::parser::query::{
    Definition, Directive, Document, FragmentDefinition, OperationDefinition, Selection,
    SelectionSet, TypeCondition, Value as AstValue,
};

use crate::error::{GraphQLError, Location, RequestError};
use crate::schema::{SchemaIndex, TypeRef};

/// The kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// A query.
    Query,
    /// A mutation.
    Mutation,
    /// A subscription.
    Subscription,
}

/// A `@skip`/`@include` condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    /// Skip when the variable or literal is true.
    Skip(BoolSource),
    /// Include only when the variable or literal is true.
    Include(BoolSource),
}

/// A literal boolean or a variable name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BoolSource {
    /// Literal.
    Literal(bool),
    /// Variable.
    Variable(String),
}

/// A compiled selection.
#[derive(Debug, Clone)]
pub(crate) enum CompiledSelection {
    /// A field.
    Field(CompiledField),
    /// An inline fragment or an inlined fragment spread.
    Fragment(CompiledFragment),
}

/// A compiled field.
#[derive(Debug, Clone)]
pub(crate) struct CompiledField {
    /// Alias or name.
    pub(crate) response_key: String,
    /// Field name.
    pub(crate) name: String,
    /// The parent type it was selected on.
    pub(crate) parent_type: String,
    /// Output type (`String!` for `__typename`).
    pub(crate) ty: TypeRef,
    /// Where it appears in the text.
    pub(crate) location: Location,
    /// Directive conditions.
    pub(crate) conditions: Vec<Condition>,
    /// Literal integer of a `first`/`last`/`limit` argument (for cost).
    pub(crate) size_hint: Option<u64>,
    /// Sub-selections.
    pub(crate) selections: Vec<CompiledSelection>,
}

/// A compiled fragment.
#[derive(Debug, Clone)]
pub(crate) struct CompiledFragment {
    /// Type condition, when present.
    pub(crate) type_condition: Option<String>,
    /// Directive conditions.
    pub(crate) conditions: Vec<Condition>,
    /// Sub-selections.
    pub(crate) selections: Vec<CompiledSelection>,
}

/// Picks the operation to run: by name, or the only one.
pub(crate) fn select_operation<'d>(
    document: &'d Document<'static, String>,
    operation_name: Option<&str>,
) -> Result<&'d OperationDefinition<'static, String>, RequestError> {
    let mut operations = document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            Definition::Operation(operation) => Some(operation),
            Definition::Fragment(_) => None,
        });
    match operation_name {
        Some(name) => operations
            .find(|operation| operation_name_of(operation) == Some(name))
            .ok_or_else(|| {
                RequestError::OperationNotFound(format!("Unknown operation named \"{name}\"."))
            }),
        None => {
            let first = operations.next().ok_or_else(|| {
                RequestError::OperationNotFound("The document contains no operation.".to_owned())
            })?;
            if operations.next().is_some() {
                return Err(RequestError::OperationNotFound(
                    "Must provide operation name if query contains multiple operations.".to_owned(),
                ));
            }
            Ok(first)
        }
    }
}

/// The name of an operation, when it has one.
pub(crate) fn operation_name_of<'o>(
    operation: &'o OperationDefinition<'static, String>,
) -> Option<&'o str> {
    match operation {
        OperationDefinition::SelectionSet(_) => None,
        OperationDefinition::Query(q) => q.name.as_deref(),
        OperationDefinition::Mutation(m) => m.name.as_deref(),
        OperationDefinition::Subscription(s) => s.name.as_deref(),
    }
}

/// The kind, root selection set and directives of an operation.
pub(crate) fn operation_parts<'o>(
    operation: &'o OperationDefinition<'static, String>,
) -> (OperationKind, &'o SelectionSet<'static, String>) {
    match operation {
        OperationDefinition::SelectionSet(set) => (OperationKind::Query, set),
        OperationDefinition::Query(q) => (OperationKind::Query, &q.selection_set),
        OperationDefinition::Mutation(m) => (OperationKind::Mutation, &m.selection_set),
        OperationDefinition::Subscription(s) => (OperationKind::Subscription, &s.selection_set),
    }
}

/// Fragment definitions by name.
pub(crate) fn fragments_of<'d>(
    document: &'d Document<'static, String>,
) -> HashMap<&'d str, &'d FragmentDefinition<'static, String>> {
    document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            Definition::Fragment(fragment) => Some((fragment.name.as_str(), fragment)),
            Definition::Operation(_) => None,
        })
        .collect()
}

fn conditions_of(directives: &[Directive<'static, String>]) -> Vec<Condition> {
    directives
        .iter()
        .filter_map(|directive| {
            let value = directive
                .arguments
                .iter()
                .find(|(name, _)| name == "if")
                .map(|(_, value)| value)?;
            let source = match value {
                AstValue::Boolean(b) => BoolSource::Literal(*b),
                AstValue::Variable(v) => BoolSource::Variable(v.clone()),
                _ => return None,
            };
            match directive.name.as_str() {
                "skip" => Some(Condition::Skip(source)),
                "include" => Some(Condition::Include(source)),
                _ => None,
            }
        })
        .collect()
}

/// Compiles selection sets against the schema, with a cap on the number of compiled nodes.
pub(crate) struct Compiler<'a> {
    schema: &'a SchemaIndex,
    fragments: HashMap<&'a str, &'a FragmentDefinition<'static, String>>,
    budget: usize,
}

/// The compiled operation grew past its node budget (fragment explosion).
#[derive(Debug)]
pub(crate) struct TooLarge;

impl<'a> Compiler<'a> {
    /// A compiler for one document.
    pub(crate) fn new(
        schema: &'a SchemaIndex,
        document: &'a Document<'static, String>,
        budget: usize,
    ) -> Self {
        Self {
            schema,
            fragments: fragments_of(document),
            budget,
        }
    }

    /// Compiles a selection set on `parent_type`.
    pub(crate) fn compile(
        &mut self,
        set: &SelectionSet<'static, String>,
        parent_type: &str,
        depth: usize,
    ) -> Result<Vec<CompiledSelection>, TooLarge> {
        if depth > 256 {
            return Err(TooLarge);
        }
        let mut out = Vec::with_capacity(set.items.len());
        for item in &set.items {
            if self.budget == 0 {
                return Err(TooLarge);
            }
            self.budget -= 1;
            match item {
                Selection::Field(field) => {
                    let ty = if field.name == "__typename" {
                        TypeRef::NonNull(Box::new(TypeRef::Named("String".to_owned())))
                    } else {
                        match self.schema.field(parent_type, &field.name) {
                            Some(def) => def.ty.clone(),
                            None => continue,
                        }
                    };
                    let selections = if field.selection_set.items.is_empty() {
                        Vec::new()
                    } else {
                        let inner = ty.named().to_owned();
                        self.compile(&field.selection_set, &inner, depth + 1)?
                    };
                    let size_hint = field.arguments.iter().find_map(|(name, value)| {
                        match (name.as_str(), value) {
                            ("first" | "last" | "limit", AstValue::Int(n)) => {
                                n.as_i64().map(|n| n.max(0) as u64)
                            }
                            _ => None,
                        }
                    });
                    out.push(CompiledSelection::Field(CompiledField {
                        response_key: field.alias.clone().unwrap_or_else(|| field.name.clone()),
                        name: field.name.clone(),
                        parent_type: parent_type.to_owned(),
                        ty,
                        location: Location {
                            line: field.position.line,
                            column: field.position.column,
                        },
                        conditions: conditions_of(&field.directives),
                        size_hint,
                        selections,
                    }));
                }
                Selection::InlineFragment(fragment) => {
                    let type_condition = fragment
                        .type_condition
                        .as_ref()
                        .map(|TypeCondition::On(name)| name.clone());
                    let inner = type_condition
                        .clone()
                        .unwrap_or_else(|| parent_type.to_owned());
                    let selections = self.compile(&fragment.selection_set, &inner, depth + 1)?;
                    out.push(CompiledSelection::Fragment(CompiledFragment {
                        type_condition,
                        conditions: conditions_of(&fragment.directives),
                        selections,
                    }));
                }
                Selection::FragmentSpread(spread) => {
                    let Some(definition) =
                        self.fragments.get(spread.fragment_name.as_str()).copied()
                    else {
                        continue;
                    };
                    let TypeCondition::On(type_condition) = &definition.type_condition;
                    let mut conditions = conditions_of(&spread.directives);
                    conditions.extend(conditions_of(&definition.directives));
                    let selections =
                        self.compile(&definition.selection_set, type_condition, depth + 1)?;
                    out.push(CompiledSelection::Fragment(CompiledFragment {
                        type_condition: Some(type_condition.clone()),
                        conditions,
                        selections,
                    }));
                }
            }
        }
        Ok(out)
    }
}

/// Converts graphql-tools validation errors into client errors.
pub(crate) fn validation_errors(
    errors: Vec<graphql_tools::validation::utils::ValidationError>,
) -> Vec<GraphQLError> {
    errors
        .into_iter()
        .map(|error| {
            let mut out = GraphQLError::new(error.message, "GRAPHQL_VALIDATION_FAILED");
            out.locations = error
                .locations
                .iter()
                .map(|pos| Location {
                    line: pos.line,
                    column: pos.column,
                })
                .collect();
            out
        })
        .collect()
}
