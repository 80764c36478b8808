//! A parsed and checked Federation v2 supergraph: its subgraphs, its planner and its API schema.

use std::sync::Arc;

use graphql_tools::parser::schema::{Definition, Document, TypeDefinition};

use crate::error::SupergraphError;
use crate::planner::HivePlanner;
use crate::schema::SchemaIndex;

/// A subgraph named in the supergraph (`join__Graph`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphInfo {
    /// Subgraph name as the plan refers to it.
    pub name: String,
    /// Its GraphQL endpoint.
    pub url: String,
}

/// A parsed and checked supergraph.
#[derive(Clone)]
pub struct Supergraph {
    sdl: Arc<str>,
    subgraphs: Vec<SubgraphInfo>,
    pub(crate) planner: Arc<HivePlanner>,
    pub(crate) schema: Arc<SchemaIndex>,
    api_sdl: Arc<str>,
}

impl std::fmt::Debug for Supergraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supergraph")
            .field("subgraphs", &self.subgraphs)
            .finish_non_exhaustive()
    }
}

const BUILTIN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];
const BUILTIN_DIRECTIVES: [&str; 5] = ["skip", "include", "deprecated", "specifiedBy", "oneOf"];

impl Supergraph {
    /// Parses a supergraph SDL and builds its planner.
    pub fn parse(sdl: &str) -> Result<Supergraph, SupergraphError> {
        let document: Document<'static, String> =
            graphql_tools::parser::parse_schema::<String>(sdl)
                .map_err(|error| SupergraphError::Parse(error.to_string()))?
                .into_static();
        let has_join_graph = document.definitions.iter().any(|definition| {
            matches!(definition, Definition::TypeDefinition(TypeDefinition::Enum(e)) if e.name == "join__Graph")
        });
        if !has_join_graph {
            return Err(SupergraphError::Invalid(
                "no join__Graph enum: not a Federation v2 supergraph".to_owned(),
            ));
        }
        let has_query = document.definitions.iter().any(|definition| {
            matches!(definition, Definition::TypeDefinition(TypeDefinition::Object(o)) if o.name == "Query")
                || matches!(definition, Definition::SchemaDefinition(s) if s.query.is_some())
        });
        if !has_query {
            return Err(SupergraphError::Invalid("no Query type".to_owned()));
        }
        let planner = HivePlanner::new(&document)
            .map_err(|error| SupergraphError::Invalid(error.to_string()))?;
        let state = planner.supergraph_state();
        let mut subgraphs: Vec<SubgraphInfo> = state
            .known_subgraphs
            .values()
            .map(|name| SubgraphInfo {
                name: name.clone(),
                url: state
                    .subgraph_endpoint_map
                    .get(name)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        subgraphs.sort_by(|a, b| a.name.cmp(&b.name));
        let consumer = planner.consumer_schema();
        let schema = SchemaIndex::new(consumer);
        let api_sdl = print_api_schema(consumer);
        Ok(Supergraph {
            sdl: Arc::from(sdl),
            subgraphs,
            planner: Arc::new(planner),
            schema: Arc::new(schema),
            api_sdl: Arc::from(api_sdl),
        })
    }

    /// The subgraphs and their URLs as the supergraph names them.
    pub fn subgraphs(&self) -> &[SubgraphInfo] {
        &self.subgraphs
    }

    /// The public schema clients see (no `join__` internals, no inaccessible parts).
    pub fn api_schema_sdl(&self) -> String {
        self.api_sdl.to_string()
    }

    /// The supergraph SDL as given.
    pub fn sdl(&self) -> &str {
        &self.sdl
    }
}

/// Prints the API schema without the introspection types and built-ins the planner adds.
fn print_api_schema(consumer: &Document<'static, String>) -> String {
    let mut document = consumer.clone();
    document.definitions.retain(|definition| match definition {
        Definition::TypeDefinition(TypeDefinition::Scalar(scalar)) => {
            !BUILTIN_SCALARS.contains(&scalar.name.as_str())
        }
        Definition::TypeDefinition(TypeDefinition::Object(object)) => {
            !object.name.starts_with("__")
        }
        Definition::TypeDefinition(TypeDefinition::Enum(enumeration)) => {
            !enumeration.name.starts_with("__")
        }
        Definition::DirectiveDefinition(directive) => {
            !BUILTIN_DIRECTIVES.contains(&directive.name.as_str())
        }
        _ => true,
    });
    for definition in &mut document.definitions {
        if let Definition::TypeDefinition(TypeDefinition::Object(object)) = definition {
            object.fields.retain(|field| !field.name.starts_with("__"));
        }
    }
    document.to_string()
}
