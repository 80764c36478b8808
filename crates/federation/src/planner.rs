//! Query planning behind a small trait, with the Hive Router planner as its implementation.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use graphql_tools::parser::query::Document;
use hive_router_query_planner::ast::normalization::normalize_operation;
use hive_router_query_planner::graph::PlannerOverrideContext;
use hive_router_query_planner::planner::plan_nodes::QueryPlan;
use hive_router_query_planner::planner::{Planner, QueryPlannerOptions};
use hive_router_query_planner::state::supergraph_state::SupergraphState;
use hive_router_query_planner::utils::cancellation::CancellationToken;

/// Why planning an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The planner rejected the operation.
    #[error("query planning failed: {0}")]
    Failed(String),
    /// The planner panicked (caught).
    #[error("query planning failed unexpectedly")]
    Panicked,
}

/// Turns a validated operation into a query plan.
pub trait QueryPlanner: Send + Sync {
    /// Plans the selected operation of a validated document.
    fn plan(
        &self,
        document: &Document<'static, String>,
        operation_name: Option<&str>,
    ) -> Result<QueryPlan, PlanError>;
}

/// The Hive Router query planner.
pub struct HivePlanner {
    planner: Planner,
    timeout: Duration,
}

impl HivePlanner {
    /// Builds the planner for a parsed supergraph (panics inside the planner become errors).
    pub fn new(
        supergraph: &graphql_tools::parser::schema::Document<'static, String>,
    ) -> Result<Self, PlanError> {
        let built = catch_unwind(AssertUnwindSafe(|| {
            Planner::new_from_supergraph(supergraph, QueryPlannerOptions::default())
        }))
        .map_err(|_| PlanError::Panicked)?;
        let planner = built.map_err(|error| PlanError::Failed(error.to_string()))?;
        Ok(Self {
            planner,
            timeout: Duration::from_secs(10),
        })
    }

    /// The planner's view of the supergraph.
    pub fn supergraph_state(&self) -> &SupergraphState {
        &self.planner.supergraph
    }

    /// The API schema document (with introspection types) the planner derived.
    pub fn consumer_schema(&self) -> &graphql_tools::static_graphql::schema::Document {
        &self.planner.consumer_schema.document
    }
}

impl QueryPlanner for HivePlanner {
    fn plan(
        &self,
        document: &Document<'static, String>,
        operation_name: Option<&str>,
    ) -> Result<QueryPlan, PlanError> {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let normalized =
                normalize_operation(&self.planner.supergraph, document, operation_name)
                    .map_err(|error| PlanError::Failed(error.to_string()))?;
            let token = CancellationToken::with_timeout(self.timeout);
            self.planner
                .plan_from_normalized_operation(
                    normalized.executable_operation(),
                    PlannerOverrideContext::default(),
                    &token,
                )
                .map_err(|error| PlanError::Failed(error.to_string()))
        }));
        result.map_err(|_| PlanError::Panicked)?
    }
}
