//! Operation limits: depth, aliases, root fields, tokens and an estimated cost.

use std::collections::HashMap;

use graphql_tools::parser::query::{FragmentDefinition, Selection, SelectionSet};

use crate::error::{GraphQLError, Limit, RequestError};
use crate::operation::CompiledSelection;

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
    /// Estimated cost (1 per field; list fields multiply their subtree by `first`/`last`/`limit` or 10).
    pub max_cost: u64,
}

impl Default for OperationLimits {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_aliases: 30,
            max_root_fields: 20,
            max_tokens: 10_000,
            max_cost: 5_000,
        }
    }
}

/// Default multiplier of a list field without a size argument.
const DEFAULT_LIST_SIZE: u64 = 10;

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

/// Estimated cost of compiled selections.
pub(crate) fn cost(selections: &[CompiledSelection]) -> u64 {
    selections
        .iter()
        .map(|selection| match selection {
            CompiledSelection::Field(field) => {
                let subtree = 1u64.saturating_add(cost(&field.selections));
                if field.ty.is_list() {
                    subtree.saturating_mul(field.size_hint.unwrap_or(DEFAULT_LIST_SIZE).max(1))
                } else {
                    subtree
                }
            }
            CompiledSelection::Fragment(fragment) => cost(&fragment.selections),
        })
        .fold(0u64, u64::saturating_add)
}

/// Checks the cost estimate.
pub(crate) fn check_cost(
    selections: &[CompiledSelection],
    limits: OperationLimits,
) -> Result<(), RequestError> {
    let estimated = cost(selections);
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
