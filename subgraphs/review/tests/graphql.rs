//! The review subgraph over real HTTP (served by `review::run` on port 0), on Postgres and
//! SQLite: `writeReview` and its typed errors, `Product.reviews` page by page, `rating`,
//! `reviewSummary` once labelled, and federation entities.

mod support;

use std::collections::HashSet;

use auth::{IDENTITY_HEADER, Identity};
use eventstore::Metadata;
use review::{Aspect, AspectLabel, Labels, ReviewState, Sentiment};
use serde_json::{Value, json};
use support::{Backend, Stack};
use tokio::sync::watch;

const WRITE: &str = "mutation($o: ID!, $p: ID!, $r: Int!, $t: String!) {
    writeReview(orderId: $o, productId: $p, rating: $r, text: $t) {
        id rating text createdAt product { id } order { id } author { id } labels { sentiment }
    }
}";

/// The subgraph on a random port over a test's stores.
struct Server {
    url: String,
    client: reqwest::Client,
    state: ReviewState,
    stop: watch::Sender<bool>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    stack: Stack,
}

impl Server {
    async fn start(backend: Backend) -> Self {
        // reqwest builds its TLS config up front, even for plain http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let stack = Stack::new(backend).await;
        let state = ReviewState::new(stack.store.clone(), stack.models.clone())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, _) = watch::channel(false);
        let mut stopped = stop.subscribe();
        let served = tokio::spawn(review::run(listener, state.clone(), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Self {
            url: format!("http://{address}/graphql"),
            client: reqwest::Client::new(),
            state,
            stop,
            served,
            stack,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.served.await.unwrap().unwrap();
    }

    /// Posts a GraphQL request as `who` (anonymous when `None`).
    async fn gql(&self, who: Option<&Identity>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(who) = who {
            request = request.header(IDENTITY_HEADER, who.to_header_value());
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    async fn write(
        &self,
        who: Option<&Identity>,
        order: &str,
        product: &str,
        rating: i32,
        text: &str,
    ) -> Value {
        self.gql(
            who,
            WRITE,
            json!({ "o": order, "p": product, "r": rating, "t": text }),
        )
        .await
    }
}

/// The `extensions.code` of the first error.
fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {response}"))
}

async fn write_review_rules(backend: Backend) {
    let server = Server::start(backend).await;
    let stack = &server.stack;
    let me = Identity::customer("customer-1");
    let other = Identity::customer("customer-2");
    stack.product("p1", "딸기 생크림 케이크", "cake").await;
    stack.product("p2", "바스크 치즈케이크", "cake").await;
    stack.product("p3", "마카롱 세트", "macaron").await;
    let order = stack.order(&me.sub, &["p1", "p2"], true).await;
    let open_order = stack.order(&me.sub, &["p1"], false).await;
    stack.project().await;

    let done = server
        .write(
            Some(&me),
            &order,
            "p1",
            5,
            "<p>정말   맛있어요&amp;또 살게요</p>\u{7}",
        )
        .await;
    assert!(done["errors"].is_null(), "{done}");
    let written = &done["data"]["writeReview"];
    assert_eq!(written["rating"], 5);
    assert_eq!(written["text"], "정말 맛있어요&또 살게요");
    assert_eq!(written["product"]["id"], "p1");
    assert_eq!(written["order"]["id"], order.as_str());
    assert_eq!(written["author"]["id"], "customer-1");
    assert!(written["labels"].is_null());

    let twice = server.write(Some(&me), &order, "p1", 4, "다시 써요").await;
    assert_eq!(code(&twice), "ALREADY_REVIEWED", "{twice}");
    let forbidden = server
        .write(Some(&other), &order, "p2", 4, "남의 주문")
        .await;
    assert_eq!(code(&forbidden), "FORBIDDEN", "{forbidden}");
    let not_in_order = server.write(Some(&me), &order, "p3", 4, "안 산 상품").await;
    assert_eq!(
        code(&not_in_order),
        "PRODUCT_NOT_IN_ORDER",
        "{not_in_order}"
    );
    let open = server
        .write(Some(&me), &open_order, "p1", 4, "아직 안 받음")
        .await;
    assert_eq!(code(&open), "ORDER_NOT_COMPLETED", "{open}");
    let anonymous = server.write(None, &order, "p2", 4, "익명").await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    let unknown = server
        .write(
            Some(&me),
            "00000000-0000-0000-0000-000000000000",
            "p1",
            4,
            "없는 주문",
        )
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");
    for (rating, text, field) in [
        (0, "좋아요", "rating"),
        (6, "좋아요", "rating"),
        (3, "<br> \t ", "text"),
        (3, &"가".repeat(2_001), "text"),
    ] {
        let bad = server.write(Some(&me), &order, "p2", rating, text).await;
        assert_eq!(code(&bad), "BAD_USER_INPUT", "{bad}");
        assert_eq!(bad["errors"][0]["extensions"]["field"], field, "{bad}");
    }
    let bad_id = server.write(Some(&me), "o/../x", "p2", 3, "좋아요").await;
    assert_eq!(
        bad_id["errors"][0]["extensions"]["field"], "orderId",
        "{bad_id}"
    );

    // An order completed a moment ago is eligible before its read model catches up.
    let fresh = stack.order(&me.sub, &["p3"], true).await;
    let early = server
        .write(Some(&me), &fresh, "p3", 2, "너무 달아요")
        .await;
    assert!(early["errors"].is_null(), "{early}");

    // The other line of the first order can still be reviewed, once.
    let second = server
        .write(Some(&me), &order, "p2", 4, "꾸덕하고 진해요")
        .await;
    assert!(second["errors"].is_null(), "{second}");
    let id = second["data"]["writeReview"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = server
        .gql(
            None,
            "query($id: ID!) { review(id: $id) { id text rating } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        found["data"]["review"]["text"], "꾸덕하고 진해요",
        "{found}"
    );
    server.stop().await;
}

#[tokio::test]
async fn write_review_rules_on_postgres() {
    write_review_rules(Backend::Postgres).await;
}

#[tokio::test]
async fn write_review_rules_on_sqlite() {
    write_review_rules(Backend::Sqlite).await;
}

async fn reviews_rating_and_summary(backend: Backend) {
    let server = Server::start(backend).await;
    let stack = &server.stack;
    stack.product("p1", "딸기 생크림 케이크", "cake").await;
    let ratings = [5, 4, 3, 5, 2];
    let mut written = Vec::new();
    for (i, rating) in ratings.iter().enumerate() {
        let who = Identity::customer(format!("customer-{i}"));
        let order = stack.order(&who.sub, &["p1"], true).await;
        let done = server
            .write(
                Some(&who),
                &order,
                "p1",
                *rating,
                &format!("리뷰 {i}번: 맛있어요"),
            )
            .await;
        assert!(done["errors"].is_null(), "{done}");
        written.push(
            done["data"]["writeReview"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Label two reviews: the summary counts them, the reviews show them.
    let label = |sentiment, aspects: &[(Aspect, Sentiment)]| Labels {
        sentiment,
        aspects: aspects
            .iter()
            .map(|(aspect, sentiment)| AspectLabel {
                aspect: *aspect,
                sentiment: *sentiment,
                relevance: 0.9,
            })
            .collect(),
        model: "test-labels".into(),
        version: "1".into(),
    };
    let service = &server.state.service;
    let first: uuid::Uuid = written[0].parse().unwrap();
    let second: uuid::Uuid = written[1].parse().unwrap();
    let positive = [
        (Aspect::Taste, Sentiment::Positive),
        (Aspect::Sweetness, Sentiment::Negative),
    ];
    service
        .record_labels(
            first,
            label(Sentiment::Negative, &positive[1..]),
            Metadata::new(),
        )
        .await
        .unwrap();
    // Relabelling replaces the first labels in the counts.
    service
        .record_labels(
            first,
            label(Sentiment::Positive, &positive),
            Metadata::new(),
        )
        .await
        .unwrap();
    service
        .record_labels(
            second,
            label(Sentiment::Positive, &positive[..1]),
            Metadata::new(),
        )
        .await
        .unwrap();
    stack.project().await;

    let query = "query($after: String) { _entities(representations: [{__typename: \"Product\", id: \"p1\"}]) {
        ... on Product {
            id
            rating { average count }
            reviewSummary { aspect sentiment count }
            reviews(first: 2, after: $after) {
                edges { cursor node { id rating text labels { sentiment aspects { aspect sentiment } } } }
                pageInfo { hasNextPage hasPreviousPage endCursor }
            }
        }
    } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let page = server.gql(None, query, json!({ "after": after })).await;
        assert!(page["errors"].is_null(), "{page}");
        let product = &page["data"]["_entities"][0];
        assert_eq!(product["rating"]["count"], 5);
        assert_eq!(product["rating"]["average"], 3.8);
        assert_eq!(
            product["reviewSummary"],
            json!([
                { "aspect": "TASTE", "sentiment": "POSITIVE", "count": 2 },
                { "aspect": "SWEETNESS", "sentiment": "NEGATIVE", "count": 1 },
            ])
        );
        let connection = &product["reviews"];
        for edge in connection["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
            if edge["node"]["id"] == written[0].as_str() {
                assert_eq!(edge["node"]["labels"]["sentiment"], "POSITIVE");
                assert_eq!(edge["node"]["labels"]["aspects"][1]["aspect"], "SWEETNESS");
            } else if edge["node"]["id"] != written[1].as_str() {
                assert!(edge["node"]["labels"].is_null());
            }
        }
        pages += 1;
        assert_eq!(connection["pageInfo"]["hasPreviousPage"], pages > 1);
        if connection["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    // Newest first, each review once.
    let newest_first: Vec<String> = written.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);

    let bad = server
        .gql(None, query, json!({ "after": "not-a-cursor" }))
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT", "{bad}");
    let too_many = server
        .gql(
            None,
            "{ _entities(representations: [{__typename: \"Product\", id: \"p1\"}]) { ... on Product { reviews(first: 51) { edges { cursor } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&too_many), "BAD_USER_INPUT", "{too_many}");
    // A product nobody reviewed has no average.
    let empty = server
        .gql(
            None,
            "{ _entities(representations: [{__typename: \"Product\", id: \"p9\"}]) { ... on Product { rating { average count } reviews { edges { cursor } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        empty["data"]["_entities"][0],
        json!({ "rating": { "average": null, "count": 0 }, "reviews": { "edges": [] } })
    );
    let invalid = server.gql(None, "{ nope }", json!({})).await;
    assert_eq!(code(&invalid), "GRAPHQL_VALIDATION_FAILED");
    server.stop().await;
}

#[tokio::test]
async fn reviews_rating_and_summary_on_postgres() {
    reviews_rating_and_summary(Backend::Postgres).await;
}

#[tokio::test]
async fn reviews_rating_and_summary_on_sqlite() {
    reviews_rating_and_summary(Backend::Sqlite).await;
}

#[tokio::test]
async fn sdl_declares_the_entities() {
    let sdl = review::sdl();
    for expected in [
        "type Review @key(fields: \"id\")",
        "type Product @key(fields: \"id\")",
        "type Order @key(fields: \"id\", resolvable: false)",
        "writeReview(orderId: ID!, productId: ID!, rating: Int!, text: String!): Review!",
        "reviewSummary: [ReviewAspectCount!]!",
    ] {
        assert!(sdl.contains(expected), "{expected} missing from:\n{sdl}");
    }
}
