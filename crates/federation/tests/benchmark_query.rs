//! The gateway benchmark's `TestQuery` (seven subgraph fetches, ~88 KB) over the benchmark
//! subgraphs: the response must equal the expected one exactly.

use std::net::{IpAddr, Ipv4Addr};

use bench_subgraphs::{Subgraph, TEST_QUERY, expected_response};
use federation::{Engine, EngineConfig, RequestContext, SubgraphSource, Supergraph, compose};

async fn engine(running: &bench_subgraphs::RunningSubgraphs) -> Engine {
    let sources: Vec<SubgraphSource> = Subgraph::ALL
        .iter()
        .map(|subgraph| SubgraphSource {
            name: subgraph.name().to_owned(),
            url: running.url(*subgraph).expect("url"),
            sdl: subgraph.sdl(),
        })
        .collect();
    let supergraph = Supergraph::parse(&compose(&sources).expect("compose")).expect("supergraph");
    // Default limits: TestQuery must be accepted as it is.
    Engine::new(supergraph, EngineConfig::default()).expect("engine")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_query_matches_the_expected_response() {
    let running = bench_subgraphs::start(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
        .await
        .expect("subgraphs");
    let engine = engine(&running).await;
    let prepared = engine
        .prepare(TEST_QUERY, Some("TestQuery"))
        .expect("prepare");
    assert_eq!(prepared.fetches().len(), 7, "{}", prepared.plan_text());
    let response = engine
        .execute(&prepared, Default::default(), &RequestContext::default())
        .await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let actual = serde_json::to_value(&response).expect("json");
    assert_eq!(actual, expected_response());
    // Field order follows the operation.
    let text = serde_json::to_string(&response).expect("json");
    assert_eq!(
        text,
        serde_json::to_string(&expected_response()).expect("json")
    );

    running.shutdown().await.expect("shutdown");
}
