//! Plan execution: walks the executable plan, sends fetches (parallel where the plan says so),
//! batches entity representations into one request per step and merges results in place.

pub(crate) mod entities;
pub(crate) mod inflight;
pub(crate) mod merge;
pub(crate) mod plan;
pub(crate) mod rewrites;
pub mod subgraph;
pub(crate) mod tree;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, join_all};
use http::HeaderMap;
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::error::{GraphQLError, PathSegment};
use crate::schema::SchemaIndex;
use plan::{EntityFetch, EntityGroup, ExecNode, RootFetch};
use subgraph::{SubgraphError, SubgraphResponse};
use tree::{Node, Object};

/// What every fetch of one request shares.
pub(crate) struct Fetcher<'a> {
    /// How requests reach subgraphs.
    pub(crate) transport: &'a std::sync::Arc<dyn subgraph::SubgraphTransport>,
    /// Where identical requests in flight are shared; `None` for mutations.
    pub(crate) inflight: Option<&'a inflight::Inflight<subgraph::SharedAnswer>>,
    /// Subgraph URLs by name.
    pub(crate) urls: &'a HashMap<String, String>,
    /// Headers for every subgraph request.
    pub(crate) headers: HeaderMap,
    /// Per-request timeout.
    pub(crate) timeout: Duration,
}

/// The response being built and the errors collected so far.
pub(crate) struct ResponseState {
    /// The merged `data`.
    pub(crate) data: Node,
    /// Errors in response order of arrival.
    pub(crate) errors: Vec<GraphQLError>,
}

/// One run of a plan.
pub(crate) struct Execution<'a> {
    /// API schema index.
    pub(crate) schema: &'a SchemaIndex,
    /// Coerced variables.
    pub(crate) variables: &'a Map<String, Value>,
    /// Subgraph access.
    pub(crate) fetcher: Fetcher<'a>,
    /// Response under construction (locked only between awaits).
    pub(crate) state: Mutex<ResponseState>,
}

/// The error clients see when a subgraph could not be reached or answered nonsense.
pub(crate) fn subgraph_failed(service: &str) -> GraphQLError {
    let mut error = GraphQLError::new(
        format!("Failed to fetch from subgraph \"{service}\"."),
        "SUBGRAPH_REQUEST_FAILED",
    );
    if let Some(extensions) = error.extensions.as_mut() {
        extensions.insert("serviceName".to_owned(), Value::String(service.to_owned()));
    }
    error
}

impl<'a> Execution<'a> {
    /// A run starting from `data`.
    pub(crate) fn new(
        schema: &'a SchemaIndex,
        variables: &'a Map<String, Value>,
        fetcher: Fetcher<'a>,
        data: Node,
    ) -> Self {
        Self {
            schema,
            variables,
            fetcher,
            state: Mutex::new(ResponseState {
                data,
                errors: Vec::new(),
            }),
        }
    }

    /// Ends the run, handing back the data and errors.
    pub(crate) fn finish(self) -> ResponseState {
        self.state
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut ResponseState) -> R) -> R {
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Runs a plan node.
    pub(crate) fn run<'n>(&'n self, node: &'n ExecNode) -> BoxFuture<'n, ()> {
        async move {
            match node {
                ExecNode::Fetch(fetch) | ExecNode::Subscription(fetch) => {
                    self.root_fetch(fetch)
                        .instrument(tracing::debug_span!("plan_fetch", subgraph = %fetch.service))
                        .await
                }
                ExecNode::Entities(fetch) => {
                    self.entity_fetch(fetch)
                        .instrument(tracing::debug_span!("plan_flatten", subgraph = %fetch.service))
                        .await
                }
                ExecNode::Sequence(nodes) => {
                    let span = tracing::debug_span!("plan_sequence", nodes = nodes.len());
                    async {
                        for node in nodes {
                            self.run(node).await;
                        }
                    }
                    .instrument(span)
                    .await
                }
                ExecNode::Parallel(nodes) => {
                    join_all(nodes.iter().map(|node| self.run(node)))
                        .instrument(tracing::debug_span!("plan_parallel", nodes = nodes.len()))
                        .await;
                }
                ExecNode::Condition {
                    variable,
                    if_clause,
                    else_clause,
                } => {
                    let value = self
                        .variables
                        .get(variable)
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let branch = if value { if_clause } else { else_clause };
                    if let Some(branch) = branch {
                        self.run(branch)
                            .instrument(
                                tracing::debug_span!("plan_condition", variable = %variable, value),
                            )
                            .await;
                    }
                }
            }
        }
        .boxed()
    }

    fn write_variables(&self, body: &mut Vec<u8>, usages: &[String], first: &mut bool) {
        for name in usages {
            if let Some(value) = self.variables.get(name) {
                if !*first {
                    body.push(b',');
                }
                *first = false;
                write_json_string(body, name);
                body.push(b':');
                let _ = serde_json::to_writer(&mut *body, value);
            }
        }
    }

    async fn root_fetch(&self, fetch: &RootFetch) {
        let mut body = Vec::with_capacity(fetch.query_json.len() + 64);
        body.extend_from_slice(b"{\"query\":");
        body.extend_from_slice(fetch.query_json.as_bytes());
        body.extend_from_slice(b",\"variables\":{");
        let mut first = true;
        self.write_variables(&mut body, &fetch.variable_usages, &mut first);
        body.extend_from_slice(b"}}");
        let result = self.send(&fetch.service, body).await;
        match result {
            Ok(response) => {
                let SubgraphResponse { data, errors } = response;
                self.with_state(|state| {
                    if let Some(mut data) = data {
                        rewrites::apply_all(self.schema, &fetch.output_rewrites, &mut data);
                        merge::deep_merge(&mut state.data, data);
                    }
                    for error in errors.into_iter().flatten() {
                        let path = error.path.as_ref().map(|path| convert_path(path));
                        state
                            .errors
                            .push(into_client_error(error, &fetch.service, path));
                    }
                });
            }
            Err(()) => self.with_state(|state| {
                let mut error = subgraph_failed(&fetch.service);
                if let Some(key) = fetch.root_keys.first() {
                    error = error.with_path(vec![PathSegment::Key(key.clone())]);
                }
                state.errors.push(error);
            }),
        }
    }

    async fn send(&self, service: &str, body: Vec<u8>) -> Result<SubgraphResponse, ()> {
        let Some(url) = self.fetcher.urls.get(service) else {
            tracing::warn!(subgraph = %service, "no url for subgraph");
            return Err(());
        };
        subgraph::send(
            self.fetcher.transport,
            self.fetcher.inflight,
            service,
            url,
            &self.fetcher.headers,
            body,
            self.fetcher.timeout,
        )
        .await
        .map_err(|_| ())
    }

    async fn entity_fetch(&self, fetch: &EntityFetch) {
        let batches: Vec<GroupBatch> = self.with_state(|state| {
            fetch
                .groups
                .iter()
                .map(|group| self.collect_group(&state.data, group))
                .collect()
        });
        if batches.iter().all(|batch| batch.unique_count == 0) {
            return;
        }
        let mut body = Vec::with_capacity(
            fetch.query_json.len()
                + 64
                + batches
                    .iter()
                    .map(|batch| batch.representations.len() + 2)
                    .sum::<usize>(),
        );
        body.extend_from_slice(b"{\"query\":");
        body.extend_from_slice(fetch.query_json.as_bytes());
        body.extend_from_slice(b",\"variables\":{");
        let mut first = true;
        for (group, batch) in fetch.groups.iter().zip(&batches) {
            if !first {
                body.push(b',');
            }
            first = false;
            write_json_string(&mut body, &group.variable);
            body.push(b':');
            body.push(b'[');
            body.extend_from_slice(&batch.representations);
            body.push(b']');
        }
        self.write_variables(&mut body, &fetch.variable_usages, &mut first);
        body.extend_from_slice(b"}}");
        let result = self.send(&fetch.service, body).await;
        self.with_state(|state| match result {
            Ok(SubgraphResponse { data, errors }) => {
                let mut data = match data {
                    Some(Node::Object(data)) => data,
                    _ => Object::default(),
                };
                // Entities that came back null, per group, for errors whose path lacks an index.
                let mut null_results: Vec<Vec<usize>> = vec![Vec::new(); fetch.groups.len()];
                for (group_index, (group, batch)) in fetch.groups.iter().zip(&batches).enumerate() {
                    let Some(Node::Array(mut results)) = data.remove(&group.result_key) else {
                        continue;
                    };
                    for (index, result) in results.iter_mut().enumerate() {
                        if result.is_null() {
                            null_results[group_index].push(index);
                        } else if !group.output_rewrites.is_empty() {
                            rewrites::apply_all(self.schema, &group.output_rewrites, result);
                        }
                    }
                    self.merge_group(&mut state.data, group, batch, results);
                }
                let mut unindexed = 0usize;
                for error in errors.into_iter().flatten() {
                    let path = entity_error_path(
                        self.schema,
                        &state.data,
                        &error,
                        fetch,
                        &batches,
                        &null_results,
                        &mut unindexed,
                    );
                    state
                        .errors
                        .push(into_client_error(error, &fetch.service, path));
                }
            }
            Err(()) => {
                let mut error = subgraph_failed(&fetch.service);
                let first = fetch
                    .groups
                    .iter()
                    .zip(&batches)
                    .find_map(|(group, batch)| {
                        let position = batch.entity_unique.iter().position(|u| *u != SKIPPED)?;
                        entity_path(self.schema, &state.data, group, position)
                    });
                if let Some(path) = first {
                    error = error.with_path(path);
                }
                state.errors.push(error);
            }
        });
    }

    /// Finds the group's entities and writes their deduplicated representations.
    fn collect_group(&self, data: &Node, group: &EntityGroup) -> GroupBatch {
        let mut batch = GroupBatch::default();
        let mut seen: rustc_hash::FxHashMap<Vec<u8>, u32> = rustc_hash::FxHashMap::default();
        let mut scratch = Vec::with_capacity(128);
        for path in &group.paths {
            entities::visit(self.schema, data, path, &mut |entity| {
                scratch.clear();
                let written = if group.input_rewrites.is_empty() {
                    entities::write_representation(
                        self.schema,
                        entity,
                        &group.requires.items,
                        &mut scratch,
                    )
                } else {
                    match entities::representation(self.schema, entity, &group.requires.items) {
                        Some(representation) => {
                            let mut representation = Node::Object(representation);
                            rewrites::apply_all(
                                self.schema,
                                &group.input_rewrites,
                                &mut representation,
                            );
                            representation.write_json(&mut scratch);
                            true
                        }
                        None => false,
                    }
                };
                if !written {
                    batch.entity_unique.push(SKIPPED);
                    return;
                }
                let index = match seen.get(scratch.as_slice()) {
                    Some(index) => *index,
                    None => {
                        let index = batch.unique_count;
                        if index > 0 {
                            batch.representations.push(b',');
                        }
                        batch.representations.extend_from_slice(&scratch);
                        seen.insert(scratch.clone(), index);
                        batch.unique_count += 1;
                        index
                    }
                };
                batch.entity_unique.push(index);
            });
        }
        batch
    }

    /// Merges each result into every entity it answers, in place (moved into the last one).
    fn merge_group(
        &self,
        data: &mut Node,
        group: &EntityGroup,
        batch: &GroupBatch,
        mut results: Vec<Node>,
    ) {
        let mut remaining = vec![0u32; results.len()];
        for unique in &batch.entity_unique {
            if let Some(count) = remaining.get_mut(*unique as usize) {
                *count += 1;
            }
        }
        let mut position = 0usize;
        for path in &group.paths {
            entities::visit_mut(self.schema, data, path, &mut |entity| {
                let unique = batch
                    .entity_unique
                    .get(position)
                    .copied()
                    .unwrap_or(SKIPPED) as usize;
                position += 1;
                let (Some(slot), Some(count)) =
                    (results.get_mut(unique), remaining.get_mut(unique))
                else {
                    return;
                };
                *count -= 1;
                let result = if *count == 0 {
                    std::mem::take(slot)
                } else {
                    slot.clone()
                };
                merge::merge_into_object(entity, result);
            });
        }
    }
}

/// Marks an entity that got no representation.
const SKIPPED: u32 = u32::MAX;

/// One entity group's representations, deduplicated, and which one each entity uses.
#[derive(Default)]
struct GroupBatch {
    /// The unique representations as JSON, comma-separated.
    representations: Vec<u8>,
    /// How many unique representations there are.
    unique_count: u32,
    /// Per entity found (in response order): its representation's index, or [`SKIPPED`].
    entity_unique: Vec<u32>,
}

/// The response path of the `position`-th entity found along the group's paths.
fn entity_path(
    schema: &SchemaIndex,
    data: &Node,
    group: &EntityGroup,
    position: usize,
) -> Option<Vec<PathSegment>> {
    let mut seen = 0usize;
    let mut found = None;
    let mut current = Vec::new();
    for path in &group.paths {
        entities::collect(schema, data, path, &mut current, &mut |at, _| {
            if seen == position && found.is_none() {
                found = Some(at.to_vec());
            }
            seen += 1;
        });
        if found.is_some() {
            break;
        }
    }
    found
}

/// Re-roots an `_entities` error path onto the first entity it applies to. Paths without an
/// index (some subgraphs omit it) go to the entities that came back null, in order.
fn entity_error_path(
    schema: &SchemaIndex,
    data: &Node,
    error: &SubgraphError,
    fetch: &EntityFetch,
    batches: &[GroupBatch],
    null_results: &[Vec<usize>],
    unindexed: &mut usize,
) -> Option<Vec<PathSegment>> {
    let path = error.path.as_ref()?;
    let key = path.first()?.as_str()?;
    let group_index = fetch
        .groups
        .iter()
        .position(|group| group.result_key == key)?;
    let (index, rest) = match path.get(1).and_then(Value::as_u64) {
        Some(index) => (index as usize, &path[2..]),
        None => {
            let nulls = null_results.get(group_index)?;
            let index = *nulls.get(*unindexed).or_else(|| nulls.last())?;
            *unindexed += 1;
            (index, &path[1..])
        }
    };
    let batch = batches.get(group_index)?;
    let position = batch
        .entity_unique
        .iter()
        .position(|u| *u as usize == index)?;
    let mut out = entity_path(schema, data, fetch.groups.get(group_index)?, position)?;
    out.extend(convert_path(rest));
    Some(out)
}

fn convert_path(path: &[Value]) -> Vec<PathSegment> {
    path.iter()
        .filter_map(|segment| match segment {
            Value::String(key) => Some(PathSegment::Key(key.clone())),
            Value::Number(n) => n.as_u64().map(|n| PathSegment::Index(n as usize)),
            _ => None,
        })
        .collect()
}

/// A subgraph error as the client sees it: message, re-rooted path, extensions kept.
fn into_client_error(
    error: SubgraphError,
    service: &str,
    path: Option<Vec<PathSegment>>,
) -> GraphQLError {
    let mut extensions = error.extensions.unwrap_or_default();
    extensions
        .entry("serviceName")
        .or_insert_with(|| Value::String(service.to_owned()));
    extensions
        .entry("code")
        .or_insert_with(|| Value::String("DOWNSTREAM_SERVICE_ERROR".to_owned()));
    GraphQLError {
        message: error.message,
        locations: Vec::new(),
        path,
        extensions: Some(extensions),
    }
}

fn write_json_string(body: &mut Vec<u8>, text: &str) {
    let _ = serde_json::to_writer(&mut *body, text);
}
