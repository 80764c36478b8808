//! Operation limits: depth, aliases, root fields, tokens and an estimated cost.

use std::collections::HashMap;

use graphql_tools::parser::query::{FragmentDefinition, Selection, SelectionSet};

use crate::error::{GraphQLError, Limit, RequestError};
use crate::operation::{CompiledField, CompiledSelection, OperationKind};
use crate::schema::{SchemaIndex, TypeKind};

/// Bounds on an operation's shape and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationLimits {
    /// Deepest field nesting.
    pub max_depth: usize,
    /// Aliased fields in the whole operation.
    pub max_aliases: usize,
    /// Fields directly in the root selection set.
    pub max_root_fields: usize,
    /// Lexical tokens in the document.
    pub max_tokens: usize,
    /// Estimated cost: objects resolved, with lists of unknown size assumed to hold 10 items
    /// (the IBM GraphQL Cost Directive specification's default weights).
    pub max_cost: u64,
}

impl Default for OperationLimits {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_aliases: 30,
            max_root_fields: 20,
            max_tokens: 10_000,
            max_cost: 50_000,
        }
    }
}

struct ShapeWalk<'a> {
    fragments: &'a HashMap<&'a str, &'a FragmentDefinition<'static, String>>,
    aliases: usize,
    max_depth: usize,
    visits: usize,
    limits: OperationLimits,
    spreading: Vec<&'a str>,
}

impl ShapeWalk<'_> {
    fn walk(
        &mut self,
        set: &SelectionSet<'static, String>,
        depth: usize,
    ) -> Result<(), RequestError> {
        for item in &set.items {
            self.visits += 1;
            if self.visits > 200_000 {
                return Err(exceeded(
                    Limit::Cost,
                    "The operation is too large.".to_owned(),
                ));
            }
            match item {
                Selection::Field(field) => {
                    if field.alias.is_some() {
                        self.aliases += 1;
                        if self.aliases > self.limits.max_aliases {
                            return Err(exceeded(
                                Limit::Aliases,
                                format!(
                                    "The operation uses more than {} aliases.",
                                    self.limits.max_aliases
                                ),
                            ));
                        }
                    }
                    let field_depth = depth + 1;
                    if field_depth > self.limits.max_depth {
                        return Err(exceeded(
                            Limit::Depth,
                            format!(
                                "The operation is deeper than {} levels.",
                                self.limits.max_depth
                            ),
                        ));
                    }
                    self.max_depth = self.max_depth.max(field_depth);
                    self.walk(&field.selection_set, field_depth)?;
                }
                Selection::InlineFragment(fragment) => self.walk(&fragment.selection_set, depth)?,
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    if let Some((key, definition)) = self.fragments.get_key_value(name) {
                        if self.spreading.contains(key) {
                            return Err(RequestError::Validation(vec![GraphQLError::new(
                                format!("Cannot spread fragment \"{name}\" within itself."),
                                "GRAPHQL_VALIDATION_FAILED",
                            )]));
                        }
                        self.spreading.push(key);
                        self.walk(&definition.selection_set, depth)?;
                        self.spreading.pop();
                    }
                }
            }
        }
        Ok(())
    }
}

fn exceeded(limit: Limit, message: String) -> RequestError {
    RequestError::LimitExceeded { limit, message }
}

/// Checks depth, aliases and root fields on the parsed operation (fragments expanded).
pub(crate) fn check_shape<'a>(
    root: &'a SelectionSet<'static, String>,
    fragments: &'a HashMap<&'a str, &'a FragmentDefinition<'static, String>>,
    limits: OperationLimits,
) -> Result<(), RequestError> {
    let root_fields = count_root_fields(root, fragments, 0);
    if root_fields > limits.max_root_fields {
        return Err(exceeded(
            Limit::RootFields,
            format!(
                "The operation selects more than {} root fields.",
                limits.max_root_fields
            ),
        ));
    }
    let mut walk = ShapeWalk {
        fragments,
        aliases: 0,
        max_depth: 0,
        visits: 0,
        limits,
        spreading: Vec::new(),
    };
    walk.walk(root, 0)
}

fn count_root_fields(
    set: &SelectionSet<'static, String>,
    fragments: &HashMap<&str, &FragmentDefinition<'static, String>>,
    nesting: usize,
) -> usize {
    if nesting > 8 {
        return 0;
    }
    set.items
        .iter()
        .map(|item| match item {
            Selection::Field(_) => 1,
            Selection::InlineFragment(fragment) => {
                count_root_fields(&fragment.selection_set, fragments, nesting + 1)
            }
            Selection::FragmentSpread(spread) => fragments
                .get(spread.fragment_name.as_str())
                .map_or(0, |definition| {
                    count_root_fields(&definition.selection_set, fragments, nesting + 1)
                }),
        })
        .sum()
}

/// Cost weights and list-size assumption of the estimate.
///
/// The defaults of the IBM GraphQL Cost Directive specification, which Apollo's demand control
/// and Hive Router implement: a field of composite type (object, interface, union) costs 1, a
/// scalar or enum field (and `__typename`) 0, a root mutation field 10. A list multiplies its
/// items' cost by its slicing argument (a literal `first`, `last` or `limit`), else by an
/// assumed size of 10 (the list size of Apollo's demand-control examples). Fragments on
/// different concrete types of an abstract field are alternatives: the costliest type counts.
const COMPOSITE_FIELD_WEIGHT: u64 = 1;
const MUTATION_FIELD_WEIGHT: u64 = 10;
const DEFAULT_LIST_SIZE: u64 = 10;

/// Estimated cost of an operation's compiled root selections on `root_type`.
pub(crate) fn cost(
    schema: &SchemaIndex,
    root_type: &str,
    kind: OperationKind,
    selections: &[CompiledSelection],
) -> u64 {
    let root_weight = match kind {
        OperationKind::Mutation => Some(MUTATION_FIELD_WEIGHT),
        OperationKind::Query | OperationKind::Subscription => None,
    };
    set_cost(schema, root_type, selections, root_weight)
}

/// The costliest runtime type of `parent` for `selections`.
fn set_cost(
    schema: &SchemaIndex,
    parent: &str,
    selections: &[CompiledSelection],
    field_weight: Option<u64>,
) -> u64 {
    // Each field's cost once, with the type conditions it sits under.
    let mut entries: Vec<(Vec<&str>, u64)> = Vec::new();
    flatten(
        schema,
        selections,
        &mut Vec::new(),
        field_weight,
        &mut entries,
    );
    if entries.iter().all(|(conditions, _)| conditions.is_empty()) {
        return entries
            .iter()
            .fold(0u64, |sum, (_, cost)| sum.saturating_add(*cost));
    }
    let runtime_types: Vec<&str> = match schema.get(parent) {
        Some(def) if !def.possible_types.is_empty() => {
            def.possible_types.iter().map(String::as_str).collect()
        }
        _ => vec![parent],
    };
    runtime_types
        .into_iter()
        .map(|runtime| {
            entries
                .iter()
                .filter(|(conditions, _)| {
                    conditions
                        .iter()
                        .all(|condition| schema.satisfies(runtime, condition))
                })
                .fold(0u64, |sum, (_, cost)| sum.saturating_add(*cost))
        })
        .max()
        .unwrap_or(0)
}

fn flatten<'s>(
    schema: &SchemaIndex,
    selections: &'s [CompiledSelection],
    conditions: &mut Vec<&'s str>,
    field_weight: Option<u64>,
    out: &mut Vec<(Vec<&'s str>, u64)>,
) {
    for selection in selections {
        match selection {
            CompiledSelection::Field(field) => {
                out.push((conditions.clone(), field_cost(schema, field, field_weight)));
            }
            CompiledSelection::Fragment(fragment) => match fragment.type_condition.as_deref() {
                Some(condition) => {
                    conditions.push(condition);
                    flatten(schema, &fragment.selections, conditions, field_weight, out);
                    conditions.pop();
                }
                None => flatten(schema, &fragment.selections, conditions, field_weight, out),
            },
        }
    }
}

fn field_cost(schema: &SchemaIndex, field: &CompiledField, weight: Option<u64>) -> u64 {
    let named = field.ty.named();
    let composite = schema.get(named).is_some_and(|def| {
        matches!(
            def.kind,
            TypeKind::Object | TypeKind::Interface | TypeKind::Union
        )
    });
    let own = match weight {
        Some(weight) => weight,
        None if composite && field.name != "__typename" => COMPOSITE_FIELD_WEIGHT,
        None => 0,
    };
    let item = own.saturating_add(set_cost(schema, named, &field.selections, None));
    if field.ty.is_list() {
        item.saturating_mul(field.size_hint.unwrap_or(DEFAULT_LIST_SIZE))
    } else {
        item
    }
}

/// Checks the cost estimate.
pub(crate) fn check_cost(
    schema: &SchemaIndex,
    root_type: &str,
    kind: OperationKind,
    selections: &[CompiledSelection],
    limits: OperationLimits,
) -> Result<(), RequestError> {
    let estimated = cost(schema, root_type, kind, selections);
    if estimated > limits.max_cost {
        return Err(exceeded(
            Limit::Cost,
            format!(
                "The operation's estimated cost {estimated} exceeds {}.",
                limits.max_cost
            ),
        ));
    }
    Ok(())
}

/// The node budget handed to the [`Compiler`].
pub(crate) const COMPILE_BUDGET: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Compiler;

    const SDL: &str = "
        type Query { accounts: [Account] me: User page(first: Int): [User] tags: [String] }
        type Mutation { rename(name: String): User }
        interface Account { id: ID! similar: [Account] }
        type User implements Account { id: ID! name: String similar: [Account] friends: [User] }
        type Admin implements Account { id: ID! name: String similar: [Account] }
    ";

    fn estimate(query: &str) -> u64 {
        let schema_document = graphql_tools::parser::parse_schema::<String>(SDL)
            .unwrap()
            .into_static();
        let schema = SchemaIndex::new(&schema_document);
        let document = graphql_tools::parser::parse_query::<String>(query)
            .unwrap()
            .into_static();
        let operation = crate::operation::select_operation(&document, None).unwrap();
        let (kind, set) = crate::operation::operation_parts(operation);
        let root = match kind {
            OperationKind::Mutation => "Mutation",
            _ => "Query",
        };
        let selections = Compiler::new(&schema, &document, COMPILE_BUDGET)
            .compile(set, root, 0)
            .unwrap();
        cost(&schema, root, kind, &selections)
    }

    #[test]
    fn objects_cost_one_and_leaves_nothing() {
        assert_eq!(estimate("{ me { id name __typename } }"), 1);
        assert_eq!(estimate("{ tags }"), 0);
    }

    #[test]
    fn lists_multiply_by_their_slicing_argument_or_ten() {
        assert_eq!(estimate("{ page(first: 3) { id } }"), 3);
        assert_eq!(estimate("{ accounts { id } }"), 10);
        // 10 users, each 1 + 10 friends.
        assert_eq!(estimate("{ page { friends { id } } }"), 110);
    }

    #[test]
    fn fragments_on_different_types_are_alternatives_not_a_sum() {
        let one_level =
            "{ accounts { ... on User { name friends { id } } ... on Admin { name } } }";
        // User: 1 + 10 friends; Admin: 1. The costlier, not both, for each of 10 accounts.
        assert_eq!(estimate(one_level), 110);
        let nested = "{ accounts { ... on User { similar { ... on User { id } ... on Admin { id } } }
                                   ... on Admin { similar { ... on User { id } ... on Admin { id } } } } }";
        assert_eq!(estimate(nested), 10 * (1 + 10));
    }

    #[test]
    fn mutation_fields_cost_ten() {
        assert_eq!(estimate("mutation { rename(name: \"x\") { id } }"), 10);
    }
}
