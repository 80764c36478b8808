//! Bearer tokens through the gateway, end to end with the dev issuer: a valid token becomes
//! the identity header on subgraph requests; an invalid or expired one is a 401 with no
//! subgraph call; a client-supplied identity header never reaches a subgraph.

mod support;

use auth::{Group, MintRequest};
use serde_json::{Value, json};
use support::{code, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_reaches_subgraphs_as_the_identity_header() {
    let stack = start(|_| {}).await;
    let token = stack.token("mina");
    let (status, body) = stack
        .query("{ me seenIdentity seenAuthorization }", Some(&token))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["me"], "mina");
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        auth::IDENTITY_HEADER,
        body["data"]["seenIdentity"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    let identity = auth::Identity::from_headers(&headers).unwrap().unwrap();
    assert_eq!(identity.sub, auth::dev_issuer::dev_user_sub("mina"));
    assert_eq!(identity.groups, vec![Group::Customers]);
    assert_eq!(body["data"]["seenAuthorization"], format!("Bearer {token}"));

    // An id token works too.
    let id_token = stack
        .issuer
        .mint(&MintRequest::id("mina", &[Group::Staff]))
        .unwrap();
    let (_, body) = stack.query("{ me }", Some(&id_token)).await;
    assert_eq!(body["data"]["me"], "mina");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_expired_tokens_are_401_without_a_subgraph_call() {
    let stack = start(|_| {}).await;
    let before = stack.subgraph.requests();

    let mut claims = stack
        .issuer
        .claims(&MintRequest::access("late", &[Group::Customers]))
        .unwrap();
    let past = claims["iat"].as_i64().unwrap() - 7_200;
    claims["exp"] = json!(past);
    let expired = stack.issuer.sign(&claims).unwrap();
    let valid = stack.token("tamper");
    let tampered = format!("{}x", &valid[..valid.len() - 1]);

    for (name, token) in [
        ("expired", expired.as_str()),
        ("tampered", tampered.as_str()),
        ("garbage", "not-a-jwt"),
    ] {
        let response = stack
            .http
            .post(stack.graphql())
            .bearer_auth(token)
            .json(&json!({ "query": "{ menu { id } }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{name}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{name}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "UNAUTHENTICATED", "{name}: {body}");
        assert!(body.get("data").is_none(), "{name}");
    }
    let response = stack
        .http
        .post(stack.graphql())
        .header("authorization", "Basic dXNlcjpwYXNz")
        .json(&json!({ "query": "{ menu { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        stack.subgraph.requests(),
        before,
        "no refused request reached the subgraph"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_supplied_identity_headers_are_stripped() {
    let stack = start(|_| {}).await;
    let forged = auth::Identity::staff("boss").to_header_value();

    // Anonymous with a forged header: the subgraph sees no identity at all.
    let response = stack
        .http
        .post(stack.graphql())
        .header(auth::IDENTITY_HEADER, &forged)
        .json(&json!({ "query": "{ seenIdentity menu { id } }" }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(body["data"]["seenIdentity"].is_null(), "{body}");
    assert_eq!(
        body["data"]["menu"][0]["id"], "p1",
        "public fields still work"
    );

    // Signed in with a forged header: the subgraph sees the verified identity only.
    let token = stack.token("honest");
    let response = stack
        .http
        .post(stack.graphql())
        .bearer_auth(&token)
        .header(auth::IDENTITY_HEADER, &forged)
        .json(&json!({ "query": "{ seenIdentity me }" }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_ne!(body["data"]["seenIdentity"], json!(forged));
    assert_eq!(body["data"]["me"], "honest");

    // Anonymous callers get the subgraph's own refusal for private fields, passed through.
    let (status, body) = stack.query("{ me }", None).await;
    assert_eq!(status, 200);
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cognito_every_request_is_anonymous() {
    let stack = start(|config| config.cognito = None).await;
    let token = stack.token("nobody");
    let (status, body) = stack
        .query(
            "{ seenIdentity seenAuthorization menu { id } }",
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    assert!(body["data"]["seenIdentity"].is_null());
    assert!(body["data"]["seenAuthorization"].is_null());
    assert_eq!(body["data"]["menu"][0]["id"], "p1");
}
