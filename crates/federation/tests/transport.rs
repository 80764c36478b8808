//! The engine over an in-process [`SubgraphTransport`]: canned subgraph answers, checked
//! request bodies, and the response text written straight from the merged data (escapes,
//! numbers, nulls cut back to the nearest nullable parent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use federation::{
    Engine, EngineConfig, RequestContext, SubgraphReply, SubgraphSource, SubgraphTransport,
    Supergraph, TransportError, compose,
};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use http::HeaderMap;
use serde_json::{Value, json};

const PRODUCTS: &str = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
type Query { products: [Product] }
type Product @key(fields: "upc") { upc: String! name: String price: Int }
"#;

const REVIEWS: &str = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
type Product @key(fields: "upc") { upc: String! reviews: [Review!]! }
type Review { body: String! stars: Float }
"#;

/// Answers each subgraph with a fixed body and keeps the request bodies.
struct Canned {
    answers: HashMap<&'static str, Value>,
    requests: Mutex<Vec<(String, Value)>>,
}

impl SubgraphTransport for Canned {
    fn post<'a>(
        &'a self,
        subgraph: &'a str,
        _url: &'a str,
        _headers: HeaderMap,
        body: Vec<u8>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<SubgraphReply, TransportError>> {
        let request: Value = serde_json::from_slice(&body).expect("request body is JSON");
        self.requests
            .lock()
            .unwrap()
            .push((subgraph.to_owned(), request));
        let reply = match self.answers.get(subgraph) {
            Some(answer) => Ok(SubgraphReply {
                status: 200,
                body: serde_json::to_vec(answer).unwrap().into(),
            }),
            None => Err(TransportError(format!("no answer for {subgraph}"))),
        };
        futures::future::ready(reply).boxed()
    }
}

fn engine(answers: HashMap<&'static str, Value>) -> (Engine, Arc<Canned>) {
    let sources =
        [("products", PRODUCTS), ("reviews", REVIEWS)].map(|(name, sdl)| SubgraphSource {
            name: name.to_owned(),
            url: format!("http://{name}.invalid/graphql"),
            sdl: sdl.to_owned(),
        });
    let supergraph = Supergraph::parse(&compose(&sources).expect("compose")).expect("parse");
    let canned = Arc::new(Canned {
        answers,
        requests: Mutex::new(Vec::new()),
    });
    let engine = Engine::with_transport(supergraph, EngineConfig::default(), canned.clone())
        .expect("engine");
    (engine, canned)
}

async fn run(engine: &Engine, query: &str) -> (federation::Response, String) {
    let prepared = engine.prepare(query, None).expect("prepare");
    let response = engine
        .execute(&prepared, Default::default(), &RequestContext::default())
        .await;
    let text = String::from_utf8(response.to_json().expect("json")).expect("utf-8");
    (response, text)
}

#[tokio::test]
async fn answers_are_merged_deduplicated_and_written_in_query_order() {
    let (engine, canned) = engine(HashMap::from([
        (
            "products",
            json!({"data": {"products": [
                {"__typename": "Product", "upc": "1", "name": "Cake \"Deluxe\"\n", "price": -3},
                {"__typename": "Product", "upc": "2", "name": "딸기 케이크 🍓", "price": 12345678901i64},
                {"__typename": "Product", "upc": "1", "name": "Cake again", "price": 0},
                null
            ]}}),
        ),
        (
            "reviews",
            json!({"data": {"_entities": [
                {"reviews": [{"body": "a\\b", "stars": 4.5}]},
                {"reviews": []}
            ]}}),
        ),
    ]));
    let (response, text) = run(
        &engine,
        "{ products { reviews { stars body } price name upc } }",
    )
    .await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let expected = json!({"data": {"products": [
        {"reviews": [{"stars": 4.5, "body": "a\\b"}], "price": -3, "name": "Cake \"Deluxe\"\n", "upc": "1"},
        {"reviews": [], "price": 12345678901i64, "name": "딸기 케이크 🍓", "upc": "2"},
        {"reviews": [{"stars": 4.5, "body": "a\\b"}], "price": 0, "name": "Cake again", "upc": "1"},
        null
    ]}});
    assert_eq!(text, serde_json::to_string(&expected).unwrap());
    assert_eq!(serde_json::to_value(&response).unwrap(), expected);

    let requests = canned.requests.lock().unwrap();
    let (_, entities) = requests
        .iter()
        .find(|(subgraph, _)| subgraph == "reviews")
        .expect("an entity fetch");
    assert_eq!(
        entities["variables"]["representations"],
        json!([{"__typename": "Product", "upc": "1"}, {"__typename": "Product", "upc": "2"}]),
        "one representation per distinct entity"
    );
}

#[tokio::test]
async fn a_null_in_a_non_null_position_nulls_the_nearest_nullable_parent() {
    let (engine, _) = engine(HashMap::from([
        (
            "products",
            json!({"data": {"products": [
                {"__typename": "Product", "upc": "1", "name": "first"},
                {"__typename": "Product", "upc": "2", "name": "second"}
            ]}}),
        ),
        (
            "reviews",
            json!({"data": {"_entities": [
                {"reviews": [{"body": "fine"}, {"body": null}]},
                {"reviews": [{"body": "ok"}]}
            ]}}),
        ),
    ]));
    let (response, text) = run(&engine, "{ products { name reviews { body } } }").await;
    // reviews: [Review!]! with a null body (String!): the review, then the list, then the
    // product (nullable) become null; the other product is untouched.
    assert_eq!(
        text,
        r#"{"data":{"products":[null,{"name":"second","reviews":[{"body":"ok"}]}]},"errors":[{"message":"Cannot return null for non-nullable field Review.body.","locations":[{"line":1,"column":29}],"path":["products",0,"reviews",1,"body"],"extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#
    );
    assert_eq!(response.errors.len(), 1);
}

/// Answers every request after a pause, counting requests and their headers.
struct Slow {
    calls: Mutex<Vec<Option<String>>>,
}

impl SubgraphTransport for Slow {
    fn post<'a>(
        &'a self,
        _subgraph: &'a str,
        _url: &'a str,
        headers: HeaderMap,
        body: Vec<u8>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<SubgraphReply, TransportError>> {
        let authorization = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        self.calls.lock().unwrap().push(authorization);
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let request: Value = serde_json::from_slice(&body).expect("request body is JSON");
            let query = request["query"].as_str().unwrap_or_default();
            let data = if query.starts_with("mutation") {
                json!({"bump": 1})
            } else {
                json!({"counter": 7})
            };
            Ok(SubgraphReply {
                status: 200,
                body: serde_json::to_vec(&json!({ "data": data })).unwrap().into(),
            })
        }
        .boxed()
    }
}

#[tokio::test]
async fn identical_queries_in_flight_share_one_request_but_mutations_never_do() {
    const COUNTER: &str = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
type Query { counter: Int }
type Mutation { bump: Int }
"#;
    let sources = [SubgraphSource {
        name: "counter".to_owned(),
        url: "http://counter.invalid/graphql".to_owned(),
        sdl: COUNTER.to_owned(),
    }];
    let supergraph = Supergraph::parse(&compose(&sources).expect("compose")).expect("parse");
    let build = |dedupe: bool| {
        let slow = Arc::new(Slow {
            calls: Mutex::new(Vec::new()),
        });
        let config = EngineConfig {
            dedupe_subgraph_requests: dedupe,
            ..EngineConfig::default()
        };
        let engine =
            Engine::with_transport(supergraph.clone(), config, slow.clone()).expect("engine");
        (engine, slow)
    };
    let context = |token: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", token.parse().unwrap());
        RequestContext { headers }
    };
    let run_all = |engine: Engine, query: &'static str, contexts: Vec<RequestContext>| async move {
        let prepared = engine.prepare(query, None).expect("prepare");
        let responses = futures::future::join_all(
            contexts
                .iter()
                .map(|context| engine.execute(&prepared, Default::default(), context)),
        )
        .await;
        responses
            .into_iter()
            .map(|response| serde_json::to_value(&response).unwrap())
            .collect::<Vec<_>>()
    };

    // Eight identical queries from one user: one subgraph request, eight full answers.
    let (engine, slow) = build(true);
    let answers = run_all(engine.clone(), "{ counter }", vec![context("Bearer a"); 8]).await;
    assert!(
        answers
            .iter()
            .all(|a| *a == json!({"data": {"counter": 7}})),
        "{answers:?}"
    );
    assert_eq!(slow.calls.lock().unwrap().len(), 1);

    // Another user's identical query is not answered with the first user's request.
    slow.calls.lock().unwrap().clear();
    let mixed = vec![
        context("Bearer a"),
        context("Bearer b"),
        context("Bearer a"),
    ];
    run_all(engine.clone(), "{ counter }", mixed).await;
    let mut calls = slow.calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(
        calls,
        [Some("Bearer a".to_owned()), Some("Bearer b".to_owned())]
    );

    // Identical mutations are each sent.
    slow.calls.lock().unwrap().clear();
    let answers = run_all(engine, "mutation { bump }", vec![context("Bearer a"); 5]).await;
    assert!(
        answers.iter().all(|a| *a == json!({"data": {"bump": 1}})),
        "{answers:?}"
    );
    assert_eq!(slow.calls.lock().unwrap().len(), 5);

    // Turned off, every query is sent.
    let (engine, slow) = build(false);
    run_all(engine, "{ counter }", vec![context("Bearer a"); 4]).await;
    assert_eq!(slow.calls.lock().unwrap().len(), 4);
}
