//! Per-request cost of executing the gateway benchmark's `TestQuery` (seven subgraph fetches,
//! ~87 KB response), without the network: the subgraphs' answers are recorded once over HTTP
//! from `bench-subgraphs` in this process, then replayed in process, so what is timed is the
//! engine alone (cached preparation, fetch bodies, parsing the subgraph responses, entity
//! batching and merging, projection) plus serialising the response as the gateway does.
//!
//! `cargo bench -p federation --bench execute -- [ITERATIONS]` (default 2000) prints the mean
//! time per request. For a figure independent of machine load, count instructions instead:
//! `valgrind --tool=callgrind --toggle-collect='*execute::measure*' BENCH_BINARY 200` and divide
//! the total by the iterations.

#[path = "../tests/support/bench_supergraph.rs"]
mod bench_supergraph;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_subgraphs::{TEST_QUERY, expected_response};
use federation::{
    Engine, EngineConfig, HttpTransport, RequestContext, SubgraphReply, SubgraphTransport,
    TransportError,
};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::HeaderMap;

type Recorded = HashMap<(String, Vec<u8>), SubgraphReply>;

/// Forwards over HTTP and keeps every answer by subgraph and request body.
struct Recorder {
    http: HttpTransport,
    replies: Mutex<Recorded>,
}

impl SubgraphTransport for Recorder {
    fn post<'a>(
        &'a self,
        subgraph: &'a str,
        url: &'a str,
        headers: HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SubgraphReply, TransportError>> {
        async move {
            let reply = self
                .http
                .post(subgraph, url, headers, body.clone(), timeout)
                .await?;
            self.replies
                .lock()
                .expect("recorder lock")
                .insert((subgraph.to_owned(), body), reply.clone());
            Ok(reply)
        }
        .boxed()
    }
}

/// Answers each request with the recorded reply to the same body.
struct Replay {
    replies: Recorded,
}

impl SubgraphTransport for Replay {
    fn post<'a>(
        &'a self,
        subgraph: &'a str,
        _url: &'a str,
        _headers: HeaderMap,
        body: Vec<u8>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<SubgraphReply, TransportError>> {
        let reply = self
            .replies
            .get(&(subgraph.to_owned(), body))
            .cloned()
            .ok_or_else(|| TransportError(format!("no recorded reply from {subgraph}")));
        futures::future::ready(reply).boxed()
    }
}

/// One request as the gateway serves it: prepare (a cache hit), execute, serialise (`to_json`).
async fn request(engine: &Engine) -> Vec<u8> {
    let prepared = engine
        .prepare(TEST_QUERY, Some("TestQuery"))
        .expect("prepare");
    let response = engine
        .execute(&prepared, Default::default(), &RequestContext::default())
        .await;
    response.to_json().expect("serialise")
}

/// The measured loop (callgrind collects inside this function only).
#[inline(never)]
fn measure(runtime: &tokio::runtime::Runtime, engine: &Engine, iterations: usize) -> usize {
    runtime.block_on(async {
        let mut bytes = 0;
        for _ in 0..iterations {
            bytes += std::hint::black_box(request(engine).await).len();
        }
        bytes
    })
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map(|arg| arg.parse().expect("ITERATIONS is a number"))
        .unwrap_or(2000);
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (supergraph, replies) = runtime.block_on(async {
        let running = bench_subgraphs::start(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
            .await
            .expect("subgraphs");
        let recorder = Arc::new(Recorder {
            http: HttpTransport::new(reqwest::Client::new()),
            replies: Mutex::new(HashMap::new()),
        });
        let engine = Engine::with_transport(
            bench_supergraph::supergraph(&running),
            EngineConfig::default(),
            recorder.clone(),
        )
        .expect("engine");
        request(&engine).await;
        running.shutdown().await.expect("shutdown");
        let replies = std::mem::take(&mut *recorder.replies.lock().expect("recorder lock"));
        (engine.supergraph().clone(), replies)
    });
    let engine = Engine::with_transport(
        supergraph,
        EngineConfig::default(),
        Arc::new(Replay { replies }),
    )
    .expect("engine");
    let first = runtime.block_on(request(&engine));
    let actual: serde_json::Value = serde_json::from_slice(&first).expect("json");
    assert_eq!(
        actual["data"],
        expected_response()["data"],
        "wrong response"
    );
    assert_eq!(
        first,
        serde_json::to_vec(&expected_response()).expect("json"),
        "response text differs"
    );

    let started = Instant::now();
    let bytes = measure(&runtime, &engine, iterations);
    let elapsed = started.elapsed();
    let per_request = elapsed.as_secs_f64() / iterations.max(1) as f64;
    println!(
        "execute TestQuery: {iterations} requests in {:.3} s, {:.1} us/request, {:.0} requests/s on one thread ({} bytes each)",
        elapsed.as_secs_f64(),
        per_request * 1e6,
        1.0 / per_request,
        bytes / iterations.max(1),
    );
}
