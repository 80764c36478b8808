//! The gateway benchmark's `TestQuery` (seven subgraph fetches, ~88 KB) over the benchmark
//! subgraphs: the response must equal the expected one exactly.

#[path = "support/bench_supergraph.rs"]
mod bench_supergraph;

use std::net::{IpAddr, Ipv4Addr};

use bench_subgraphs::{TEST_QUERY, expected_response};
use federation::{Engine, EngineConfig, RequestContext};

async fn engine(running: &bench_subgraphs::RunningSubgraphs) -> Engine {
    let supergraph = bench_supergraph::supergraph(running);
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
