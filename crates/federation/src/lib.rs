//! The Federation v2 engine behind the gateway: supergraph loading and composition, query
//! planning (behind the [`QueryPlanner`] trait) and plan execution against subgraphs.
//!
//! Layout: [`Supergraph`] parses a supergraph SDL; [`compose`] builds one from subgraph SDLs;
//! [`Engine::prepare`] parses, validates, checks limits and plans (cached);
//! [`Engine::execute`] runs the plan (fetches, `_entities` batching, merging) and projects the
//! response onto the client's operation; [`Engine::subscribe`] streams subscription events.
//! Subgraph requests go through a [`SubgraphTransport`]: [`HttpTransport`] in production, an
//! in-process one in tests and the `execute` benchmark.
//! The engine serves no HTTP itself: the gateway crate does.

mod composition;
mod engine;
mod error;
mod execution;
mod introspection;
mod limits;
mod operation;
mod planner;
mod prepare;
mod projection;
mod schema;
mod subscription;
mod supergraph;
mod variables;

pub use composition::{SubgraphSource, compose, fetch_subgraph_sdl};
pub use engine::{Engine, EngineConfig, RequestContext};
pub use error::{
    CompositionError, Data, EngineError, GraphQLError, Limit, Location, PathSegment, RequestError,
    Response, SupergraphError,
};
pub use execution::subgraph::{HttpTransport, SubgraphReply, SubgraphTransport, TransportError};
pub use limits::OperationLimits;
pub use operation::OperationKind;
pub use planner::{HivePlanner, PlanError, QueryPlanner};
pub use prepare::{FetchSummary, PreparedOperation};
pub use supergraph::{SubgraphInfo, Supergraph};
