//! GraphQL over HTTP through the gateway: POST, GET, Accept negotiation, SSE, limits, APQ,
//! rate limits, health and metrics, against a real subgraph.

mod support;

use std::num::NonZeroU32;

use gateway::apq::sha256_hex;
use serde_json::{Value, json};
use support::{code, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_and_get_serve_queries_and_get_refuses_mutations() {
    let stack = start(|_| {}).await;
    let (status, body) = stack.query("{ menu { id name price } }", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["menu"][0]["name"], "Strawberry cake");

    let response = stack
        .http
        .get(stack.graphql())
        .query(&[
            ("query", "query Menu { menu { id } }"),
            ("operationName", "Menu"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The body goes out in pieces; it still has an exact length, not chunked encoding.
    assert!(response.headers().get("transfer-encoding").is_none());
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len(), length);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["data"]["menu"][1]["id"], "p2");

    let before = stack
        .subgraph
        .seen
        .bumps
        .load(std::sync::atomic::Ordering::SeqCst);
    let response = stack
        .http
        .get(stack.graphql())
        .query(&[("query", "mutation { bump }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "METHOD_NOT_ALLOWED");
    let (status, body) = stack.query("mutation { bump }", None).await;
    assert_eq!((status, &body["data"]["bump"]), (200, &json!(before + 1)));
    assert_eq!(
        stack
            .subgraph
            .seen
            .bumps
            .load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "the GET mutation never ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiates_the_response_format() {
    let stack = start(|_| {}).await;
    let send = |accept: &'static str, query: &'static str| {
        stack
            .http
            .post(stack.graphql())
            .header("accept", accept)
            .json(&json!({ "query": query }))
            .send()
    };
    let response = send("application/graphql-response+json", "{ menu { id } }")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/graphql-response+json")
    );
    // A request error is 400 in the new format, 200 in the legacy one.
    let response = send("application/graphql-response+json", "{ nope }")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED");
    let response = send("application/json", "{ nope }").await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let response = send("text/plain", "{ menu { id } }").await.unwrap();
    assert_eq!(response.status(), 406);

    // A browser gets GraphiQL (turned off here: a clear 404).
    let response = stack
        .http
        .get(stack.graphql())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_stream_subscriptions_and_single_results() {
    let stack = start(|_| {}).await;
    let response = stack
        .http
        .post(stack.graphql())
        .header("accept", "text/event-stream")
        .json(&json!({ "query": "subscription { ticks(count: 3, intervalMs: 5) }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.unwrap();
    let events = sse_events(&text);
    let nexts: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| e == "next")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(nexts.len(), 3, "{text}");
    assert_eq!(nexts[2]["data"]["ticks"], 2);
    assert_eq!(
        events.last().map(|(e, _)| e.as_str()),
        Some("complete"),
        "{text}"
    );

    let response = stack
        .http
        .post(stack.graphql())
        .header("accept", "text/event-stream")
        .json(&json!({ "query": "{ menu { id } }" }))
        .send()
        .await
        .unwrap();
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].1["data"]["menu"][0]["id"], "p1");
    assert_eq!(events[1].0, "complete");

    // A subscription over plain JSON is refused with a pointer to the right transports.
    let (status, body) = stack.query("subscription { ticks(count: 1) }", None).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "BAD_REQUEST");
}

/// `(event, data)` pairs of an SSE body.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = Some(e.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            let event = event?;
            Some((event, serde_json::from_str(&data).unwrap_or(Value::Null)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_before_any_subgraph_call() {
    let stack = start(|config| {
        config.body_limit = 4 * 1024;
        config.limits.max_depth = 3;
        config.limits.max_aliases = 5;
    })
    .await;
    let before = stack.subgraph.requests();

    let (status, _) = stack.query("{ menu { id } a: menu { id } }", None).await;
    assert_eq!(status, 200, "two shallow fields pass");
    let after_ok = stack.subgraph.requests();
    assert!(after_ok > before);

    let deep = "{ menu { similar { similar { similar { id } } } } }";
    let (_, body) = stack.query(deep, None).await;
    assert_eq!(code(&body), "MAX_DEPTH_EXCEEDED", "{body}");

    let bomb = format!(
        "{{ menu {{ {} }} }}",
        (0..50)
            .map(|i| format!("a{i}: id"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (_, body) = stack.query(&bomb, None).await;
    assert_eq!(code(&body), "MAX_ALIASES_EXCEEDED", "{body}");

    let huge = format!("{{ menu {{ id }} }} # {}", "x".repeat(8 * 1024));
    let (status, body) = stack.query(&huge, None).await;
    assert_eq!(status, 413);
    assert_eq!(code(&body), "REQUEST_TOO_LARGE");

    // Without Content-Length (chunked), the limit still holds. 6 KiB: over the 4 KiB limit and
    // within what the gateway drains before answering (another limit's worth), so the client
    // reads the 413 rather than racing a closed connection with its last chunks.
    let chunks =
        futures::stream::iter((0..6).map(|_| Ok::<_, std::io::Error>(bytes_of(&"y".repeat(1024)))));
    let response = stack
        .http
        .post(stack.graphql())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    let (status, body) = stack.post(json!({"query": 12}), None).await;
    assert_eq!((status, code(&body)), (400, "BAD_REQUEST"));
    assert_eq!(
        stack.subgraph.requests(),
        after_ok,
        "no refused request reached the subgraph"
    );
}

fn bytes_of(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_persisted_queries() {
    let stack = start(|config| config.apq_cache_size = 10).await;
    let query = "query Persisted { menu { name } }";
    let hash = sha256_hex(query);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    let (status, body) = stack.post(json!({ "extensions": ext }), None).await;
    assert_eq!(status, 200);
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND");

    let (_, body) = stack
        .post(
            json!({ "query": "{ menu { id } }", "extensions": ext }),
            None,
        )
        .await;
    assert_eq!(code(&body), "PERSISTED_QUERY_HASH_MISMATCH");

    let (_, body) = stack
        .post(json!({ "query": query, "extensions": ext }), None)
        .await;
    assert_eq!(body["data"]["menu"][0]["name"], "Strawberry cake");

    let (_, body) = stack.post(json!({ "extensions": ext }), None).await;
    assert_eq!(body["data"]["menu"][1]["name"], "Macaron", "{body}");

    // Over GET too.
    let response = stack
        .http
        .get(stack.graphql())
        .query(&[("extensions", ext.to_string())])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["menu"][0]["name"], "Strawberry cake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_ip_and_per_user() {
    let stack = start(|config| {
        config.rate_limits = gateway::RateLimits {
            per_user_per_second: NonZeroU32::MIN,
            per_user_burst: NonZeroU32::new(3).unwrap(),
            per_ip_per_second: NonZeroU32::MIN,
            per_ip_burst: NonZeroU32::new(5).unwrap(),
        };
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(stack.query("{ menu { id } }", None).await.0);
    }
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    let response = stack
        .http
        .post(stack.graphql())
        .json(&json!({ "query": "{ menu { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED");

    // A signed-in user has their own bucket, not the IP's.
    let token = stack.token("rita");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(stack.query("{ menu { id } }", Some(&token)).await.0);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subgraph_errors_are_partial_data_not_500() {
    let stack = start(|_| {}).await;
    let (status, body) = stack.query("{ menu { id } broken }", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["menu"][0]["id"], "p1");
    assert!(body["data"]["broken"].is_null());
    assert_eq!(code(&body), "OVEN_COLD", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_operation_metrics() {
    let stack = start(|_| {}).await;
    for path in ["/healthz", "/readyz"] {
        let response = stack
            .http
            .get(format!("{}{path}", stack.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let (status, _) = stack
        .post(
            json!({"query": "query MetricsMenu { menu { id } }", "operationName": "MetricsMenu"}),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let metrics = stack
        .http
        .get(format!("{}/metrics", stack.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = metrics.lines().any(|line| {
        line.starts_with("gateway_operations_total")
            && line.contains("operation=\"MetricsMenu\"")
            && line.contains("kind=\"query\"")
            && line.contains("outcome=\"success\"")
    });
    assert!(counted, "{metrics}");
    assert!(
        metrics.contains("gateway_operation_duration_seconds"),
        "{metrics}"
    );
}
