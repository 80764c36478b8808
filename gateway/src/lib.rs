//! The federated GraphQL gateway: one endpoint over the order, inventory, payment and review
//! subgraphs.
//!
//! It will own supergraph loading and composition, query planning (behind a small trait) and
//! plan execution, Cognito JWT authentication, subscriptions (graphql-transport-ws and SSE),
//! request limits, and GraphiQL. It must never hold business rules or talk to a database:
//! everything it serves comes from the subgraphs. Built in the gateway issue; empty until then.
