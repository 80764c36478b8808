//! Preparing an operation: parse (token limit first), shape limits, validation against the API
//! schema, compilation, cost, planning. The result is cached by the engine.

use std::sync::atomic::AtomicUsize;

use graphql_tools::parser::query::{Definition, Document, OperationDefinition, Selection};
use graphql_tools::validation::rules::default_rules_validation_plan;
use graphql_tools::validation::validate::validate;
use hive_router_query_planner::planner::plan_nodes::QueryPlan;

use crate::error::{Limit, RequestError};
use crate::execution::plan::{self, ExecNode};
use crate::limits::{self, COMPILE_BUDGET, OperationLimits};
use crate::operation::{self, CompiledSelection, Compiler, OperationKind};
use crate::planner::QueryPlanner;
use crate::schema::TypeRef;
use crate::supergraph::Supergraph;
use crate::variables::{VariableDefinition, ast_to_json};

/// An operation parsed, validated, checked against limits and planned; reused across requests.
#[derive(Debug)]
pub struct PreparedOperation {
    pub(crate) query: String,
    pub(crate) kind: OperationKind,
    pub(crate) name: Option<String>,
    pub(crate) root_type: String,
    pub(crate) selections: Vec<CompiledSelection>,
    pub(crate) variables: Vec<VariableDefinition>,
    pub(crate) plan: QueryPlan,
    pub(crate) exec: Option<ExecNode>,
    /// The operation text for the introspection engine, when it selects `__schema`/`__type`.
    pub(crate) introspection: Option<String>,
    /// Size of the last response's data, to size the next one's buffer.
    pub(crate) response_size: AtomicUsize,
}

/// One subgraph fetch of a plan (for tests and diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSummary {
    /// Subgraph name.
    pub subgraph: String,
    /// Whether it is an `_entities` fetch.
    pub entities: bool,
    /// The operation text sent.
    pub operation: String,
}

impl PreparedOperation {
    /// Query, mutation or subscription.
    pub fn kind(&self) -> OperationKind {
        self.kind
    }

    /// The operation's name, when it has one.
    pub fn operation_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The query plan as JSON (stable, for snapshots).
    pub fn plan_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.plan).unwrap_or(serde_json::Value::Null)
    }

    /// The query plan in the planner's readable text form.
    pub fn plan_text(&self) -> String {
        self.plan.to_string()
    }

    /// Every subgraph fetch the plan may run, in plan order.
    pub fn fetches(&self) -> Vec<FetchSummary> {
        fn walk(node: &ExecNode, out: &mut Vec<FetchSummary>) {
            match node {
                ExecNode::Fetch(fetch) | ExecNode::Subscription(fetch) => out.push(FetchSummary {
                    subgraph: fetch.service.clone(),
                    entities: false,
                    operation: fetch.query.clone(),
                }),
                ExecNode::Entities(fetch) => out.push(FetchSummary {
                    subgraph: fetch.service.clone(),
                    entities: true,
                    operation: fetch.query.clone(),
                }),
                ExecNode::Sequence(nodes) | ExecNode::Parallel(nodes) => {
                    nodes.iter().for_each(|n| walk(n, out))
                }
                ExecNode::Condition {
                    if_clause,
                    else_clause,
                    ..
                } => {
                    if let Some(node) = if_clause {
                        walk(node, out);
                    }
                    if let Some(node) = else_clause {
                        walk(node, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        if let Some(node) = &self.exec {
            walk(node, &mut out);
        }
        out
    }
}

/// Runs the whole preparation pipeline.
pub(crate) fn prepare(
    supergraph: &Supergraph,
    limits: OperationLimits,
    introspection_enabled: bool,
    query: &str,
    operation_name: Option<&str>,
) -> Result<PreparedOperation, RequestError> {
    let document: Document<'static, String> =
        match graphql_tools::parser::parse_query_with_token_limit::<String>(
            query,
            limits.max_tokens,
        ) {
            Ok(document) => document.into_static(),
            Err(error) => {
                let message = error.to_string();
                if message.contains("Token limit exceeded") {
                    return Err(RequestError::LimitExceeded {
                        limit: Limit::Tokens,
                        message: format!(
                            "The operation has more than {} tokens.",
                            limits.max_tokens
                        ),
                    });
                }
                if message.contains("Recursion limit exceeded") {
                    return Err(RequestError::LimitExceeded {
                        limit: Limit::Depth,
                        message: format!(
                            "The operation is deeper than {} levels.",
                            limits.max_depth
                        ),
                    });
                }
                return Err(RequestError::Parse(message.trim().to_owned()));
            }
        };
    let selected = operation::select_operation(&document, operation_name)?;
    let name = operation::operation_name_of(selected).map(str::to_owned);
    let (kind, root_set) = operation::operation_parts(selected);
    let fragments = operation::fragments_of(&document);
    limits::check_shape(root_set, &fragments, limits)?;

    let schema = &supergraph.schema;
    let root_type = match kind {
        OperationKind::Query => Some(schema.query_type.clone()),
        OperationKind::Mutation => schema.mutation_type.clone(),
        OperationKind::Subscription => schema.subscription_type.clone(),
    };
    let errors = validate(
        supergraph.planner.consumer_schema(),
        &document,
        &default_rules_validation_plan(),
    );
    if !errors.is_empty() {
        return Err(RequestError::Validation(operation::validation_errors(
            errors,
        )));
    }
    let Some(root_type) = root_type else {
        return Err(RequestError::Validation(vec![
            crate::error::GraphQLError::new(
                "The schema does not support this operation type.",
                "GRAPHQL_VALIDATION_FAILED",
            ),
        ]));
    };

    let mut compiler = Compiler::new(schema, &document, COMPILE_BUDGET);
    let selections =
        compiler
            .compile(root_set, &root_type, 0)
            .map_err(|_| RequestError::LimitExceeded {
                limit: Limit::Cost,
                message: "The operation is too large.".to_owned(),
            })?;
    limits::check_cost(schema, &root_type, kind, &selections, limits)?;

    let variables = variable_definitions(selected);
    let uses_introspection = selects_introspection(root_set, &fragments);
    if uses_introspection && !introspection_enabled {
        return Err(RequestError::Validation(vec![
            crate::error::GraphQLError::new(
                "Introspection is disabled.",
                "GRAPHQL_VALIDATION_FAILED",
            ),
        ]));
    }
    let planning_document = if uses_introspection {
        without_introspection(&document, selected)
    } else {
        None
    };
    let plan = match &planning_document {
        Some(None) => QueryPlan {
            kind: "QueryPlan",
            node: None,
        },
        Some(Some(stripped)) => plan_document(supergraph, stripped, operation_name)?,
        None => plan_document(supergraph, &document, operation_name)?,
    };
    let exec = plan::build(&plan).map_err(|error| RequestError::Planning(error.to_string()))?;
    Ok(PreparedOperation {
        query: query.to_owned(),
        kind,
        name,
        root_type,
        selections,
        variables,
        plan,
        exec,
        introspection: uses_introspection.then(|| introspection_only(&document, selected)),
        response_size: AtomicUsize::new(0),
    })
}

fn plan_document(
    supergraph: &Supergraph,
    document: &Document<'static, String>,
    operation_name: Option<&str>,
) -> Result<QueryPlan, RequestError> {
    supergraph
        .planner
        .plan(document, operation_name)
        .map_err(|error| RequestError::Planning(error.to_string()))
}

fn variable_definitions(
    operation: &OperationDefinition<'static, String>,
) -> Vec<VariableDefinition> {
    let definitions = match operation {
        OperationDefinition::SelectionSet(_) => return Vec::new(),
        OperationDefinition::Query(q) => &q.variable_definitions,
        OperationDefinition::Mutation(m) => &m.variable_definitions,
        OperationDefinition::Subscription(s) => &s.variable_definitions,
    };
    definitions
        .iter()
        .map(|definition| VariableDefinition {
            name: definition.name.clone(),
            ty: TypeRef::from_ast(&definition.var_type),
            default: definition.default_value.as_ref().map(ast_to_json),
        })
        .collect()
}

fn is_introspection_field(name: &str) -> bool {
    name == "__schema" || name == "__type"
}

fn selects_introspection(
    set: &graphql_tools::parser::query::SelectionSet<'static, String>,
    fragments: &std::collections::HashMap<
        &str,
        &graphql_tools::parser::query::FragmentDefinition<'static, String>,
    >,
) -> bool {
    set.items.iter().any(|item| match item {
        Selection::Field(field) => is_introspection_field(&field.name),
        Selection::InlineFragment(fragment) => {
            selects_introspection(&fragment.selection_set, fragments)
        }
        Selection::FragmentSpread(spread) => fragments
            .get(spread.fragment_name.as_str())
            .is_some_and(|definition| selects_introspection(&definition.selection_set, fragments)),
    })
}

/// The document without root `__schema`/`__type` fields (`Some(None)`: nothing left to plan).
fn without_introspection(
    document: &Document<'static, String>,
    selected: &OperationDefinition<'static, String>,
) -> Option<Option<Document<'static, String>>> {
    let mut copy = document.clone();
    let mut remaining = 0usize;
    for definition in &mut copy.definitions {
        if let Definition::Operation(operation) = definition {
            if operation::operation_name_of(operation) != operation::operation_name_of(selected) {
                continue;
            }
            let set = match operation {
                OperationDefinition::SelectionSet(set) => set,
                OperationDefinition::Query(q) => &mut q.selection_set,
                OperationDefinition::Mutation(m) => &mut m.selection_set,
                OperationDefinition::Subscription(s) => &mut s.selection_set,
            };
            strip(set);
            remaining = set.items.len();
        }
    }
    Some(if remaining == 0 { None } else { Some(copy) })
}

fn strip(set: &mut graphql_tools::parser::query::SelectionSet<'static, String>) {
    set.items.retain_mut(|item| match item {
        Selection::Field(field) => !is_introspection_field(&field.name),
        Selection::InlineFragment(fragment) => {
            strip(&mut fragment.selection_set);
            !fragment.selection_set.items.is_empty()
        }
        Selection::FragmentSpread(_) => true,
    });
}

/// The operation reduced to its root introspection fields, printed for the introspection engine.
fn introspection_only(
    document: &Document<'static, String>,
    selected: &OperationDefinition<'static, String>,
) -> String {
    let mut copy = document.clone();
    copy.definitions.retain(|definition| match definition {
        Definition::Operation(operation) => {
            operation::operation_name_of(operation) == operation::operation_name_of(selected)
        }
        Definition::Fragment(_) => true,
    });
    for definition in &mut copy.definitions {
        if let Definition::Operation(operation) = definition {
            let set = match operation {
                OperationDefinition::SelectionSet(set) => set,
                OperationDefinition::Query(q) => &mut q.selection_set,
                OperationDefinition::Mutation(m) => &mut m.selection_set,
                OperationDefinition::Subscription(s) => &mut s.selection_set,
            };
            set.items.retain(
                |item| matches!(item, Selection::Field(field) if is_introspection_field(&field.name) || field.name == "__typename"),
            );
        }
    }
    // Drop fragments and variables the reduced operation no longer uses.
    loop {
        let text = copy.to_string();
        let before = copy.definitions.len();
        copy.definitions.retain(|definition| match definition {
            Definition::Fragment(fragment) => uses_name(&text, &format!("...{}", fragment.name)),
            Definition::Operation(_) => true,
        });
        if copy.definitions.len() == before {
            break;
        }
    }
    let text = copy.to_string();
    for definition in &mut copy.definitions {
        if let Definition::Operation(OperationDefinition::Query(q)) = definition {
            q.variable_definitions
                .retain(|variable| text.matches(&format!("${}", variable.name)).count() > 1);
        }
    }
    copy.to_string()
}

fn uses_name(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(start, _)| {
        text.as_bytes()
            .get(start + needle.len())
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
    })
}

/// A cache key: the query text's hash plus the operation name.
pub(crate) fn cache_key(query: &str, operation_name: Option<&str>) -> (u64, Option<String>) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    query.hash(&mut hasher);
    (hasher.finish(), operation_name.map(str::to_owned))
}
