//! Composition of subgraph SDLs into a supergraph SDL (graphql-composition), post-processed so
//! root types carry the `@join__type` directives the planner needs.

use std::collections::BTreeSet;

use graphql_tools::parser::schema::{Definition, Document, TypeDefinition, Value as AstValue};
use serde::Deserialize;

use crate::error::CompositionError;

/// One subgraph to compose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphSource {
    /// Subgraph name.
    pub name: String,
    /// Its GraphQL endpoint.
    pub url: String,
    /// Its SDL (`_service { sdl }`).
    pub sdl: String,
}

/// Composes subgraphs into a Federation v2 supergraph SDL.
pub fn compose(subgraphs: &[SubgraphSource]) -> Result<String, CompositionError> {
    let mut input = graphql_composition::Subgraphs::default();
    for subgraph in subgraphs {
        input
            .ingest_str(&subgraph.sdl, &subgraph.name, Some(&subgraph.url))
            .map_err(|error| CompositionError::SubgraphSdl {
                name: subgraph.name.clone(),
                message: error.to_string(),
            })?;
    }
    let graph = graphql_composition::compose(&mut input)
        .into_result()
        .map_err(|diagnostics| {
            CompositionError::Composition(diagnostics.iter_errors().map(str::to_owned).collect())
        })?;
    let sdl = graphql_composition::render_federated_sdl(&graph)
        .map_err(|error| CompositionError::Composition(vec![error.to_string()]))?;
    add_root_join_types(&sdl)
}

/// Adds `@join__type(graph: X)` to root types for every subgraph defining their fields.
fn add_root_join_types(sdl: &str) -> Result<String, CompositionError> {
    let document: Document<'static, String> = graphql_tools::parser::parse_schema::<String>(sdl)
        .map_err(|error| {
            CompositionError::Composition(vec![format!("composed SDL does not parse: {error}")])
        })?
        .into_static();
    let graphs: Vec<String> = document
        .definitions
        .iter()
        .find_map(|definition| match definition {
            Definition::TypeDefinition(TypeDefinition::Enum(e)) if e.name == "join__Graph" => {
                Some(e.values.iter().map(|value| value.name.clone()).collect())
            }
            _ => None,
        })
        .unwrap_or_default();
    let mut insertions: Vec<(String, BTreeSet<String>)> = Vec::new();
    for definition in &document.definitions {
        let Definition::TypeDefinition(TypeDefinition::Object(object)) = definition else {
            continue;
        };
        if !matches!(object.name.as_str(), "Query" | "Mutation" | "Subscription") {
            continue;
        }
        if object
            .directives
            .iter()
            .any(|directive| directive.name == "join__type")
        {
            continue;
        }
        let mut owners = BTreeSet::new();
        for field in &object.fields {
            let field_graphs: Vec<String> = field
                .directives
                .iter()
                .filter(|directive| directive.name == "join__field")
                .filter_map(|directive| {
                    directive.arguments.iter().find_map(|(name, value)| {
                        match (name.as_str(), value) {
                            ("graph", AstValue::Enum(graph)) => Some(graph.clone()),
                            _ => None,
                        }
                    })
                })
                .collect();
            if field_graphs.is_empty() {
                owners.extend(graphs.iter().cloned());
            } else {
                owners.extend(field_graphs);
            }
        }
        insertions.push((object.name.clone(), owners));
    }
    let mut out = sdl.to_owned();
    for (type_name, owners) in insertions {
        let directives: String = owners
            .iter()
            .map(|graph| format!(" @join__type(graph: {graph})"))
            .collect();
        let needle = format!("type {type_name}");
        let Some(start) = find_type_header(&out, &needle) else {
            continue;
        };
        let insert_at = start + needle.len();
        out.insert_str(insert_at, &directives);
    }
    Ok(out)
}

/// Finds `type Name` at a line start followed by a non-name character.
fn find_type_header(sdl: &str, needle: &str) -> Option<usize> {
    let mut offset = 0;
    while let Some(found) = sdl[offset..].find(needle) {
        let start = offset + found;
        let at_line_start = start == 0 || sdl.as_bytes().get(start - 1) == Some(&b'\n');
        let next = sdl.as_bytes().get(start + needle.len()).copied();
        let ends_name = next.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == b'_'));
        if at_line_start && ends_name {
            return Some(start);
        }
        offset = start + needle.len();
    }
    None
}

#[derive(Deserialize)]
struct SdlResponse {
    data: Option<SdlData>,
}

#[derive(Deserialize)]
struct SdlData {
    #[serde(rename = "_service")]
    service: SdlService,
}

#[derive(Deserialize)]
struct SdlService {
    sdl: String,
}

/// Fetches a subgraph's SDL with `{ _service { sdl } }`.
pub async fn fetch_subgraph_sdl(
    client: &reqwest::Client,
    url: &str,
) -> Result<String, CompositionError> {
    let failure = |message: String| CompositionError::Fetch {
        url: url.to_owned(),
        message,
    };
    let response = client
        .post(url)
        .json(&serde_json::json!({ "query": "{ _service { sdl } }" }))
        .send()
        .await
        .map_err(|error| failure(error.to_string()))?;
    if !response.status().is_success() {
        return Err(failure(format!("status {}", response.status())));
    }
    let body: SdlResponse = response
        .json()
        .await
        .map_err(|error| failure(error.to_string()))?;
    body.data
        .map(|data| data.service.sdl)
        .ok_or_else(|| failure("no data in the response".to_owned()))
}
