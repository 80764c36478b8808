//! The supergraph of the gateway benchmark's four subgraphs, composed from their SDL with the
//! URLs they run at. Shared by `tests/benchmark_query.rs` and `benches/execute.rs`.

use bench_subgraphs::{RunningSubgraphs, Subgraph};
use federation::{SubgraphSource, Supergraph, compose};

/// Composes the benchmark subgraphs running at `running` into a supergraph.
pub fn supergraph(running: &RunningSubgraphs) -> Supergraph {
    let sources: Vec<SubgraphSource> = Subgraph::ALL
        .iter()
        .map(|subgraph| SubgraphSource {
            name: subgraph.name().to_owned(),
            url: running.url(*subgraph).expect("url"),
            sdl: subgraph.sdl(),
        })
        .collect();
    Supergraph::parse(&compose(&sources).expect("compose")).expect("supergraph")
}
