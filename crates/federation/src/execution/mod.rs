//! Plan execution: walks the executable plan, sends fetches (parallel where the plan says so),
//! batches entity representations into one request per step and merges results in place.

pub(crate) mod entities;
pub(crate) mod merge;
pub(crate) mod plan;
pub(crate) mod rewrites;
pub(crate) mod subgraph;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, join_all};
use http::HeaderMap;
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::error::{GraphQLError, PathSegment};
use crate::schema::SchemaIndex;
use plan::{EntityFetch, ExecNode, RootFetch};
use subgraph::{SubgraphError, SubgraphResponse};

/// One entity group's unique representations (JSON text) and, per representation, the
/// response paths of the entities it stands for.
type CollectedGroup = (Vec<String>, Vec<Vec<Vec<PathSegment>>>);

/// What every fetch of one request shares.
pub(crate) struct Fetcher<'a> {
    /// Pooled client.
    pub(crate) client: &'a reqwest::Client,
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
    pub(crate) data: Value,
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
        data: Value,
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
                    for node in nodes {
                        self.run(node).await;
                    }
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
                        self.run(branch).await;
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
            self.fetcher.client,
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
        // Per group: unique representations (as JSON text) and, per unique one, the entity paths.
        let mut groups: Vec<CollectedGroup> =
            Vec::with_capacity(fetch.groups.len());
        self.with_state(|state| {
            for group in &fetch.groups {
                let mut unique: Vec<String> = Vec::new();
                let mut targets: Vec<Vec<Vec<PathSegment>>> = Vec::new();
                let mut seen: HashMap<String, usize> = HashMap::new();
                let mut current = Vec::new();
                for path in &group.paths {
                    entities::collect(
                        self.schema,
                        &state.data,
                        path,
                        &mut current,
                        &mut |at, entity| {
                            let Some(representation) = entities::representation(
                                self.schema,
                                entity,
                                &group.requires.items,
                            ) else {
                                return;
                            };
                            let mut representation = Value::Object(representation);
                            rewrites::apply_all(
                                self.schema,
                                &group.input_rewrites,
                                &mut representation,
                            );
                            let text = representation.to_string();
                            let index = match seen.get(&text) {
                                Some(index) => *index,
                                None => {
                                    seen.insert(text.clone(), unique.len());
                                    unique.push(text);
                                    targets.push(Vec::new());
                                    unique.len() - 1
                                }
                            };
                            targets[index].push(at.to_vec());
                        },
                    );
                }
                groups.push((unique, targets));
            }
        });
        if groups.iter().all(|(unique, _)| unique.is_empty()) {
            return;
        }
        let mut body = Vec::with_capacity(
            fetch.query_json.len()
                + 64
                + groups
                    .iter()
                    .flat_map(|(u, _)| u.iter().map(|r| r.len() + 1))
                    .sum::<usize>(),
        );
        body.extend_from_slice(b"{\"query\":");
        body.extend_from_slice(fetch.query_json.as_bytes());
        body.extend_from_slice(b",\"variables\":{");
        let mut first = true;
        for (group, (unique, _)) in fetch.groups.iter().zip(&groups) {
            if !first {
                body.push(b',');
            }
            first = false;
            write_json_string(&mut body, &group.variable);
            body.extend_from_slice(b":[");
            for (index, representation) in unique.iter().enumerate() {
                if index > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(representation.as_bytes());
            }
            body.push(b']');
        }
        self.write_variables(&mut body, &fetch.variable_usages, &mut first);
        body.extend_from_slice(b"}}");
        let result = self.send(&fetch.service, body).await;
        self.with_state(|state| match result {
            Ok(SubgraphResponse { data, errors }) => {
                let mut data = match data {
                    Some(Value::Object(data)) => data,
                    _ => Map::new(),
                };
                // Entities that came back null, per group, for errors whose path lacks an index.
                let mut null_results: Vec<Vec<usize>> = vec![Vec::new(); fetch.groups.len()];
                for (group_index, (group, (_, targets))) in
                    fetch.groups.iter().zip(&groups).enumerate()
                {
                    let Some(Value::Array(results)) = data.remove(&group.result_key) else {
                        continue;
                    };
                    for (unique_index, (mut result, paths)) in
                        results.into_iter().zip(targets).enumerate()
                    {
                        if result.is_null() {
                            null_results[group_index].push(unique_index);
                        }
                        rewrites::apply_all(self.schema, &group.output_rewrites, &mut result);
                        let Some((last, rest)) = paths.split_last() else {
                            continue;
                        };
                        for path in rest {
                            if let Some(target) = merge::get_mut(&mut state.data, path) {
                                merge::deep_merge(target, result.clone());
                            }
                        }
                        if let Some(target) = merge::get_mut(&mut state.data, last) {
                            merge::deep_merge(target, result);
                        }
                    }
                }
                let mut unindexed = 0usize;
                for error in errors.into_iter().flatten() {
                    let path =
                        entity_error_path(&error, fetch, &groups, &null_results, &mut unindexed);
                    state
                        .errors
                        .push(into_client_error(error, &fetch.service, path));
                }
            }
            Err(()) => {
                let mut error = subgraph_failed(&fetch.service);
                if let Some(path) = groups
                    .iter()
                    .flat_map(|(_, targets)| targets.iter().flatten())
                    .next()
                {
                    error = error.with_path(path.clone());
                }
                state.errors.push(error);
            }
        });
    }
}

/// Re-roots an `_entities` error path onto the first entity it applies to. Paths without an
/// index (some subgraphs omit it) go to the entities that came back null, in order.
fn entity_error_path(
    error: &SubgraphError,
    fetch: &EntityFetch,
    groups: &[CollectedGroup],
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
    let entity_path = groups.get(group_index)?.1.get(index)?.first()?;
    let mut out = entity_path.clone();
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
