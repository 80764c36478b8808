//! The executable form of a query plan, built once per prepared operation: each fetch's
//! operation text is JSON-escaped here so requests never re-print it.

use std::sync::Arc;

use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::ast::selection_set::SelectionSet;
use hive_router_query_planner::planner::plan_nodes::{
    FetchNode, FetchRewrite, FlattenNodePathSegment, PlanNode, QueryPlan,
};

/// A node of the executable plan.
#[derive(Debug)]
pub(crate) enum ExecNode {
    /// A fetch from the root of a subgraph.
    Fetch(Arc<RootFetch>),
    /// An `_entities` fetch for objects already in the response.
    Entities(Arc<EntityFetch>),
    /// Children one after another.
    Sequence(Vec<ExecNode>),
    /// Children concurrently.
    Parallel(Vec<ExecNode>),
    /// Branch on a boolean variable.
    Condition {
        /// Variable name.
        variable: String,
        /// Run when true.
        if_clause: Option<Box<ExecNode>>,
        /// Run when false.
        else_clause: Option<Box<ExecNode>>,
    },
    /// The primary fetch of a subscription.
    Subscription(Arc<RootFetch>),
}

/// A root-level fetch.
#[derive(Debug)]
pub(crate) struct RootFetch {
    /// Subgraph name.
    pub(crate) service: String,
    /// The operation text.
    pub(crate) query: String,
    /// The operation text as a JSON string literal.
    pub(crate) query_json: String,
    /// Variables this fetch uses.
    pub(crate) variable_usages: Vec<String>,
    /// Top-level response keys it fills (to locate errors).
    pub(crate) root_keys: Vec<String>,
    /// Rewrites of the result before merging.
    pub(crate) output_rewrites: Vec<FetchRewrite>,
}

/// One set of entities in an entity fetch (one `_entities` field or one batch alias).
#[derive(Debug)]
pub(crate) struct EntityGroup {
    /// Key of the results in the subgraph's `data`.
    pub(crate) result_key: String,
    /// Name of the representations variable.
    pub(crate) variable: String,
    /// Where the entities sit in the response.
    pub(crate) paths: Vec<Vec<FlattenNodePathSegment>>,
    /// Fields each representation carries.
    pub(crate) requires: SelectionSet,
    /// Rewrites of each representation.
    pub(crate) input_rewrites: Vec<FetchRewrite>,
    /// Rewrites of each result before merging.
    pub(crate) output_rewrites: Vec<FetchRewrite>,
}

/// An entity fetch with one or more groups in one request.
#[derive(Debug)]
pub(crate) struct EntityFetch {
    /// Subgraph name.
    pub(crate) service: String,
    /// The operation text.
    pub(crate) query: String,
    /// The operation text as a JSON string literal.
    pub(crate) query_json: String,
    /// Variables this fetch uses besides the representations.
    pub(crate) variable_usages: Vec<String>,
    /// Entity groups.
    pub(crate) groups: Vec<EntityGroup>,
}

/// Why a plan cannot be executed.
#[derive(Debug, thiserror::Error)]
#[error("unsupported plan: {0}")]
pub(crate) struct UnsupportedPlan(pub(crate) String);

/// Builds the executable plan.
pub(crate) fn build(plan: &QueryPlan) -> Result<Option<ExecNode>, UnsupportedPlan> {
    plan.node.as_ref().map(convert).transpose()
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn root_fetch(fetch: &FetchNode) -> RootFetch {
    let query = fetch.operation.document_str.clone();
    RootFetch {
        service: fetch.service_name.clone(),
        query_json: json_string(&query),
        query,
        variable_usages: fetch.variable_usages.iter().flatten().cloned().collect(),
        root_keys: fetch
            .operation
            .document
            .operation
            .selection_set
            .items
            .iter()
            .filter_map(|item| match item {
                SelectionItem::Field(field) => Some(field.selection_identifier().to_owned()),
                _ => None,
            })
            .collect(),
        output_rewrites: fetch.output_rewrites.clone().unwrap_or_default(),
    }
}

fn convert(node: &PlanNode) -> Result<ExecNode, UnsupportedPlan> {
    Ok(match node {
        PlanNode::Fetch(fetch) => ExecNode::Fetch(Arc::new(root_fetch(fetch))),
        PlanNode::Subscription(subscription) => {
            ExecNode::Subscription(Arc::new(root_fetch(&subscription.primary)))
        }
        PlanNode::Flatten(flatten) => {
            let PlanNode::Fetch(fetch) = flatten.node.as_ref() else {
                return Err(UnsupportedPlan(
                    "flatten around a non-fetch node".to_owned(),
                ));
            };
            let query = fetch.operation.document_str.clone();
            ExecNode::Entities(Arc::new(EntityFetch {
                service: fetch.service_name.clone(),
                query_json: json_string(&query),
                query,
                variable_usages: fetch
                    .variable_usages
                    .iter()
                    .flatten()
                    .filter(|name| name.as_str() != "representations")
                    .cloned()
                    .collect(),
                groups: vec![EntityGroup {
                    result_key: "_entities".to_owned(),
                    variable: "representations".to_owned(),
                    paths: vec![flatten.path.as_slice().to_vec()],
                    requires: fetch.requires.clone().unwrap_or_default(),
                    input_rewrites: fetch.input_rewrites.clone().unwrap_or_default(),
                    output_rewrites: fetch.output_rewrites.clone().unwrap_or_default(),
                }],
            }))
        }
        PlanNode::BatchFetch(batch) => {
            let query = batch.operation.document_str.clone();
            let variables: Vec<&str> = batch
                .entity_batch
                .aliases
                .iter()
                .map(|alias| alias.representations_variable_name.as_str())
                .collect();
            ExecNode::Entities(Arc::new(EntityFetch {
                service: batch.service_name.clone(),
                query_json: json_string(&query),
                query,
                variable_usages: batch
                    .variable_usages
                    .iter()
                    .flatten()
                    .filter(|name| !variables.contains(&name.as_str()))
                    .cloned()
                    .collect(),
                groups: batch
                    .entity_batch
                    .aliases
                    .iter()
                    .map(|alias| EntityGroup {
                        result_key: alias.alias.clone(),
                        variable: alias.representations_variable_name.clone(),
                        paths: alias
                            .merge_paths
                            .iter()
                            .map(|path| path.as_slice().to_vec())
                            .collect(),
                        requires: alias.requires.clone(),
                        input_rewrites: alias.input_rewrites.clone().unwrap_or_default(),
                        output_rewrites: alias.output_rewrites.clone().unwrap_or_default(),
                    })
                    .collect(),
            }))
        }
        PlanNode::Sequence(sequence) => ExecNode::Sequence(
            sequence
                .nodes
                .iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
        ),
        PlanNode::Parallel(parallel) => ExecNode::Parallel(
            parallel
                .nodes
                .iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
        ),
        PlanNode::Condition(condition) => ExecNode::Condition {
            variable: condition.condition.clone(),
            if_clause: condition
                .if_clause
                .as_deref()
                .map(convert)
                .transpose()?
                .map(Box::new),
            else_clause: condition
                .else_clause
                .as_deref()
                .map(convert)
                .transpose()?
                .map(Box::new),
        },
        PlanNode::Defer(_) => return Err(UnsupportedPlan("@defer is not supported".to_owned())),
    })
}
