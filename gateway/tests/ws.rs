//! GraphQL over WebSocket (graphql-transport-ws) through the gateway to a real subgraph.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Ws, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_queries_and_ping_over_a_websocket() {
    let stack = start(|_| {}).await;
    let token = stack.token("sora");
    let mut ws = Ws::connect(&stack.ws()).await;
    ws.init(Some(&token)).await;

    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.recv().await.unwrap()["type"], "pong");

    ws.subscribe("t", "subscription { ticks(count: 3, intervalMs: 5) }")
        .await;
    for n in 0..3 {
        let next = ws.recv().await.unwrap();
        assert_eq!(
            (next["type"].as_str(), next["id"].as_str()),
            (Some("next"), Some("t"))
        );
        assert_eq!(next["payload"]["data"]["ticks"], n);
    }
    assert_eq!(
        ws.recv().await.unwrap(),
        json!({ "type": "complete", "id": "t" })
    );

    // The subgraph's subscription connection carries the verified identity.
    ws.subscribe("w", "subscription { whoami }").await;
    let next = ws.recv().await.unwrap();
    assert_eq!(next["payload"]["data"]["whoami"], "sora", "{next}");
    assert_eq!(ws.recv().await.unwrap()["type"], "complete");

    // Queries and mutations over the same socket.
    ws.subscribe("q", "{ menu { name } }").await;
    let next = ws.recv().await.unwrap();
    assert_eq!(next["payload"]["data"]["menu"][1]["name"], "Macaron");
    assert_eq!(
        ws.recv().await.unwrap(),
        json!({ "type": "complete", "id": "q" })
    );

    // A refused operation is an `error` for its id; the connection stays open.
    ws.subscribe("bad", "{ nope }").await;
    let error = ws.recv().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["id"], "bad");
    assert_eq!(
        error["payload"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.recv().await.unwrap()["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_complete_and_disconnect_stop_the_upstream() {
    let stack = start(|_| {}).await;
    let seen = stack.subgraph.seen.clone();
    let mut ws = Ws::connect(&stack.ws()).await;
    ws.init(None).await;
    ws.subscribe(
        "long",
        "subscription { ticks(count: 1000000, intervalMs: 20) }",
    )
    .await;
    let next = ws.recv().await.unwrap();
    assert_eq!(next["type"], "next");
    assert_eq!(seen.open_streams.load(Ordering::SeqCst), 1);
    ws.send(json!({ "type": "complete", "id": "long" })).await;
    let closed = testkit::eventually(Duration::from_secs(10), || async {
        seen.open_streams.load(Ordering::SeqCst) == 0
            && seen.open_sockets.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(
        closed,
        "the subgraph subscription ended after the client's complete"
    );
    // The same id can be used again once completed.
    ws.subscribe(
        "long",
        "subscription { ticks(count: 1000000, intervalMs: 20) }",
    )
    .await;
    loop {
        let message = ws.recv().await.unwrap();
        if message["type"] == "next" && message["payload"]["data"]["ticks"] == 0 {
            break;
        }
    }
    drop(ws);
    let closed = testkit::eventually(Duration::from_secs(10), || async {
        seen.open_streams.load(Ordering::SeqCst) == 0
            && seen.open_sockets.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(
        closed,
        "the subgraph subscription ended when the client went away"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_their_codes() {
    let stack = start(|config| config.ws_init_timeout = Duration::from_millis(300)).await;

    let mut ws = Ws::connect(&stack.ws()).await;
    assert_eq!(
        ws.recv().await,
        Err(Some(4408)),
        "no connection_init in time"
    );

    let mut ws = Ws::connect(&stack.ws()).await;
    ws.send(json!({ "type": "connection_init", "payload": { "Authorization": "Bearer nope" } }))
        .await;
    assert_eq!(ws.recv().await, Err(Some(4401)), "bad token");

    let mut ws = Ws::connect(&stack.ws()).await;
    ws.subscribe("early", "{ menu { id } }").await;
    assert_eq!(ws.recv().await, Err(Some(4401)), "subscribe before init");

    let mut ws = Ws::connect(&stack.ws()).await;
    ws.init(None).await;
    ws.send(json!({ "type": "connection_init" })).await;
    assert_eq!(ws.recv().await, Err(Some(4429)), "second init");

    let mut ws = Ws::connect(&stack.ws()).await;
    ws.init(None).await;
    ws.subscribe("dup", "subscription { ticks(count: 100, intervalMs: 50) }")
        .await;
    ws.subscribe("dup", "subscription { ticks(count: 100, intervalMs: 50) }")
        .await;
    let mut code = None;
    while code.is_none() {
        if let Err(closed) = ws.recv().await {
            code = Some(closed);
        }
    }
    assert_eq!(code, Some(Some(4409)), "duplicate id");

    let mut ws = Ws::connect(&stack.ws()).await;
    ws.send(json!({ "type": "subscribe" })).await;
    assert_eq!(ws.recv().await, Err(Some(4400)), "invalid message");

    let mut ws = Ws::connect_without_protocol(&stack.ws()).await;
    assert_eq!(
        ws.recv().await,
        Err(Some(4406)),
        "no graphql-transport-ws offered"
    );

    // Lower-case `authorization` in the payload works too.
    let token = stack.token("lower");
    let mut ws = Ws::connect(&stack.ws()).await;
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }))
        .await;
    assert_eq!(ws.recv().await.unwrap()["type"], "connection_ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_limited_per_user() {
    let stack = start(|config| config.max_ws_connections_per_user = 2).await;
    let token = stack.token("busy");
    let mut first = Ws::connect(&stack.ws()).await;
    first.init(Some(&token)).await;
    let mut second = Ws::connect(&stack.ws()).await;
    second.init(Some(&token)).await;
    let mut third = Ws::connect(&stack.ws()).await;
    third
        .send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
        .await;
    assert_eq!(third.recv().await, Err(Some(4429)));

    // Another user is not affected.
    let mut other = Ws::connect(&stack.ws()).await;
    other.init(Some(&stack.token("calm"))).await;

    drop(first);
    let mut retried: Option<Value> = None;
    for _ in 0..50 {
        let mut again = Ws::connect(&stack.ws()).await;
        again
            .send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
            .await;
        if let Ok(ack) = again.recv().await {
            retried = Some(ack);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        retried.unwrap()["type"],
        "connection_ack",
        "a slot frees when a connection closes"
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_disconnected_and_frees_its_slot() {
    let keepalive = Duration::from_millis(200);
    let stack = start(|config| {
        config.max_ws_connections_per_user = 1;
        config.ws_keepalive = keepalive;
    })
    .await;

    // A client that reads answers the pings by itself and stays, though it sends nothing.
    let mut lively = Ws::connect(&stack.ws()).await;
    lively.init(Some(&stack.token("lively"))).await;
    let pings = lively.idle(keepalive * 8).await;
    assert!(
        matches!(pings, Ok(n) if n >= 4),
        "pinged about every interval and kept open: {pings:?}"
    );
    lively.send(json!({ "type": "ping" })).await;
    assert_eq!(lively.recv().await.unwrap()["type"], "pong");

    // A client that vanished without closing (it never reads, so never answers) is dropped,
    // and its slot is free again.
    let token = stack.token("vanished");
    let mut vanished = Ws::connect(&stack.ws()).await;
    vanished.init(Some(&token)).await;
    let started = std::time::Instant::now();
    let mut freed = false;
    while started.elapsed() < Duration::from_secs(10) {
        let mut again = Ws::connect(&stack.ws()).await;
        again
            .send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
            .await;
        match again.recv().await {
            Ok(ack) => {
                assert_eq!(ack["type"], "connection_ack", "{ack}");
                freed = true;
                break;
            }
            Err(code) => assert_eq!(code, Some(4429), "refused only for the held slot"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = started.elapsed();
    assert!(freed, "the silent connection still holds its slot");
    assert!(
        waited >= keepalive * 2,
        "dropped only after two silent intervals, not after {waited:?}"
    );
    drop(vanished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_closes_its_connection_and_valid_ones_keep_working() {
    // No leeway, so the token stops verifying one second past its `exp` (the verifier counts
    // whole seconds): two to three seconds after minting.
    let stack = start(|config| {
        if let Some(cognito) = config.cognito.as_mut() {
            cognito.leeway = Duration::ZERO;
        }
    })
    .await;
    let seen = stack.subgraph.seen.clone();
    let minted = std::time::Instant::now();
    let short = stack.short_token("brief", 2);
    let mut expiring = Ws::connect(&stack.ws()).await;
    expiring.init(Some(&short)).await;
    let mut lasting = Ws::connect(&stack.ws()).await;
    lasting.init(Some(&stack.token("steady"))).await;
    let mut anonymous = Ws::connect(&stack.ws()).await;
    anonymous.init(None).await;

    expiring
        .subscribe(
            "long",
            "subscription { ticks(count: 1000000, intervalMs: 50) }",
        )
        .await;
    let mut ticks = 0;
    let closed = loop {
        match expiring.recv().await {
            Ok(message) => {
                assert_eq!(message["type"], "next", "{message}");
                ticks += 1;
                assert!(
                    minted.elapsed() < Duration::from_secs(15),
                    "still streaming long after the token expired"
                );
            }
            Err(code) => break code,
        }
    };
    let lived = minted.elapsed();
    assert_eq!(closed, Some(4403), "closed as Forbidden at expiry");
    assert!(ticks > 0, "it streamed while the token was valid");
    assert!(
        lived >= Duration::from_millis(1_900) && lived < Duration::from_secs(10),
        "closed at the token's exp, after {lived:?}"
    );
    let stopped = testkit::eventually(Duration::from_secs(10), || async {
        seen.open_streams.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(
        stopped,
        "the upstream subscription ended with the connection"
    );

    // The connection with a valid token, and the anonymous one, are unaffected.
    for (ws, name) in [(&mut lasting, "steady"), (&mut anonymous, "anonymous")] {
        ws.subscribe("w", "subscription { whoami }").await;
        let next = ws.recv().await.unwrap();
        assert_eq!(next["payload"]["data"]["whoami"], name, "{next}");
        assert_eq!(ws.recv().await.unwrap()["type"], "complete");
    }

    // The token stopped verifying when its connection closed: it cannot open a new one.
    let mut late = Ws::connect(&stack.ws()).await;
    late.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {short}") } }))
        .await;
    assert_eq!(late.recv().await, Err(Some(4401)));
}
