//! The GraphQL API over HTTP: confirmPayment, payment(orderId), the Order entity's payment,
//! typed error codes, and the federation SDL.

mod common;

use auth::Identity;
use common::{Harness, Subgraph, error_code};
use payment::toss::FailureMode;
use serde_json::json;

const CONFIRM: &str = "mutation($orderId: ID!, $paymentKey: String!, $amount: Int!) {
    confirmPayment(orderId: $orderId, paymentKey: $paymentKey, amount: $amount) {
        orderId paymentKey method status amount balanceAmount approvedAt receiptUrl
        cancellations { amount reason canceledAt }
    }
}";

fn vars(order: &str, key: &str, amount: i64) -> serde_json::Value {
    json!({ "orderId": order, "paymentKey": key, "amount": amount })
}

#[tokio::test]
async fn confirm_payment_happy_path() {
    let h = Harness::new().await;
    let api = Subgraph::start(h.service.clone()).await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint(&order, 15_000).await;
    let response = api
        .graphql(Some(&me), CONFIRM, vars(&order, &key, 15_000))
        .await;
    assert!(response["errors"].is_null(), "{response}");
    let paid = &response["data"]["confirmPayment"];
    assert_eq!(paid["orderId"], order);
    assert_eq!(paid["paymentKey"], key);
    assert_eq!(paid["status"], "CONFIRMED");
    assert_eq!(paid["amount"], 15_000);
    assert_eq!(paid["balanceAmount"], 15_000);
    assert!(paid["method"].is_string() && paid["approvedAt"].is_string());
    assert!(paid["receiptUrl"].as_str().unwrap().starts_with("https://"));
    assert_eq!(paid["cancellations"], json!([]));

    // Again: the same payment, charged once.
    let again = api
        .graphql(Some(&me), CONFIRM, vars(&order, &key, 15_000))
        .await;
    assert_eq!(again["data"]["confirmPayment"], *paid);
    assert_eq!(h.toss.server.stats().confirmed, 1);
}

#[tokio::test]
async fn confirm_payment_error_codes() {
    let h = Harness::new().await;
    let api = Subgraph::start(h.service.clone()).await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint(&order, 15_000).await;

    let r = api
        .graphql(Some(&me), CONFIRM, vars(&order, &key, 1_000))
        .await;
    assert_eq!(error_code(&r), "AMOUNT_MISMATCH");
    let r = api.graphql(None, CONFIRM, vars(&order, &key, 15_000)).await;
    assert_eq!(error_code(&r), "UNAUTHENTICATED");
    let r = api
        .graphql(
            Some(&Identity::customer("c-2")),
            CONFIRM,
            vars(&order, &key, 15_000),
        )
        .await;
    assert_eq!(error_code(&r), "FORBIDDEN");
    let r = api
        .graphql(Some(&me), CONFIRM, vars("bad id!", &key, 15_000))
        .await;
    assert_eq!(error_code(&r), "BAD_USER_INPUT");
    assert_eq!(h.toss.server.stats().confirm_requests, 0);

    // Toss's own codes come through.
    let (declined, declined_key) = h.declined_order("c-1", 8_000).await;
    let r = api
        .graphql(Some(&me), CONFIRM, vars(&declined, &declined_key, 8_000))
        .await;
    assert_eq!(error_code(&r), "REJECT_CARD_COMPANY");
    assert!(r["data"].is_null());

    let flaky = h.payable_order("c-1", 8_000).await;
    let flaky_key = h.mint(&flaky, 8_000).await;
    h.toss
        .server
        .set_failure(FailureMode::ProviderError, Some(&flaky_key));
    let r = api
        .graphql(Some(&me), CONFIRM, vars(&flaky, &flaky_key, 8_000))
        .await;
    assert_eq!(error_code(&r), "PROVIDER_ERROR");

    let r = api
        .graphql(Some(&me), CONFIRM, vars(&order, &key, 15_000))
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let second_key = h.mint(&order, 15_000).await;
    let r = api
        .graphql(Some(&me), CONFIRM, vars(&order, &second_key, 15_000))
        .await;
    assert_eq!(error_code(&r), "ALREADY_PROCESSED_PAYMENT");

    // A forged identity header is refused outright.
    let response = api
        .http
        .post(format!("{}/graphql", api.url))
        .header(auth::IDENTITY_HEADER, "forged")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn payment_query_for_the_owner_and_staff() {
    let h = Harness::new().await;
    let api = Subgraph::start(h.service.clone()).await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint(&order, 15_000).await;
    let query = "query($id: ID!) { payment(orderId: $id) { status amount paymentKey } }";

    let r = api.graphql(Some(&me), query, json!({ "id": order })).await;
    assert_eq!(r["data"]["payment"], json!(null), "{r}");

    api.graphql(Some(&me), CONFIRM, vars(&order, &key, 15_000))
        .await;
    let r = api.graphql(Some(&me), query, json!({ "id": order })).await;
    assert_eq!(
        r["data"]["payment"],
        json!({ "status": "CONFIRMED", "amount": 15_000, "paymentKey": key })
    );
    let r = api
        .graphql(Some(&Identity::staff("s-1")), query, json!({ "id": order }))
        .await;
    assert_eq!(r["data"]["payment"]["status"], "CONFIRMED");
    let r = api
        .graphql(
            Some(&Identity::customer("c-2")),
            query,
            json!({ "id": order }),
        )
        .await;
    assert_eq!(error_code(&r), "FORBIDDEN");
    let r = api.graphql(None, query, json!({ "id": order })).await;
    assert_eq!(error_code(&r), "UNAUTHENTICATED");
}

#[tokio::test]
async fn entities_resolve_the_orders_payment() {
    let h = Harness::new().await;
    let api = Subgraph::start(h.service.clone()).await;
    let me = Identity::customer("c-1");
    let order = h.payable_order("c-1", 15_000).await;
    let key = h.mint(&order, 15_000).await;
    api.graphql(Some(&me), CONFIRM, vars(&order, &key, 15_000))
        .await;
    h.service
        .handle(contracts::Envelope::new(
            &order,
            contracts::PaymentCommand::RefundPayment {
                refund_id: "r-1".into(),
                amount: Some(4_000),
                reason: "a cake was sold out".into(),
            },
        ))
        .await
        .unwrap();
    let unpaid = h.payable_order("c-1", 1_000).await;

    let query = "query($r: [_Any!]!) { _entities(representations: $r) {
        ... on Order { id payment { status amount balanceAmount cancellations { amount reason } } }
    } }";
    let representations = json!([
        { "__typename": "Order", "id": order },
        { "__typename": "Order", "id": unpaid },
    ]);
    let r = api
        .graphql(Some(&me), query, json!({ "r": representations }))
        .await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(
        r["data"]["_entities"],
        json!([
            { "id": order, "payment": {
                "status": "PARTIALLY_REFUNDED", "amount": 15_000, "balanceAmount": 11_000,
                "cancellations": [{ "amount": 4_000, "reason": "a cake was sold out" }]
            } },
            { "id": unpaid, "payment": null },
        ])
    );
}

#[test]
fn the_sdl_extends_order_with_its_payment() {
    let sdl = payment::sdl();
    assert!(
        sdl.contains("@link(\n\turl: \"https://specs.apollo.dev/federation/v2"),
        "{sdl}"
    );
    assert!(sdl.contains("type Order @key(fields: \"id\")"), "{sdl}");
    assert!(sdl.contains("payment: Payment"), "{sdl}");
    assert!(
        sdl.contains("confirmPayment(orderId: ID!, paymentKey: String!, amount: Int!): Payment!"),
        "{sdl}"
    );
    assert!(sdl.contains("enum PaymentStatus"), "{sdl}");
}

const REFUND_PARTIALLY: &str =
    "mutation($orderId: ID!, $amount: Int!, $reason: String!, $key: String!) {
    refundPartially(orderId: $orderId, amount: $amount, reason: $reason, idempotencyKey: $key) {
        status balanceAmount cancellations { amount reason }
    }
}";

#[tokio::test]
async fn staff_refund_part_of_a_payment() {
    let h = Harness::new().await;
    let api = Subgraph::start(h.service.clone()).await;
    let (order, _) = h.paid_order("c-1", 15_000).await;
    let staff = Identity::staff("lee");
    let refund = |amount: i64, reason: &str, key: &str| json!({ "orderId": order, "amount": amount, "reason": reason, "key": key });

    let r = api
        .graphql(
            Some(&Identity::customer("c-1")),
            REFUND_PARTIALLY,
            refund(5_000, "spoilt", "k1"),
        )
        .await;
    assert_eq!(error_code(&r), "FORBIDDEN");
    for bad in [
        refund(0, "spoilt", "k1"),
        refund(15_000, "all of it", "k1"),
        refund(5_000, " ", "k1"),
        refund(5_000, &"x".repeat(201), "k1"),
        refund(5_000, "spoilt", ""),
    ] {
        let r = api.graphql(Some(&staff), REFUND_PARTIALLY, bad).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
    }
    assert_eq!(h.toss.server.stats().cancel_requests, 0);

    let r = api
        .graphql(
            Some(&staff),
            REFUND_PARTIALLY,
            refund(5_000, "cream spoilt", "k1"),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let refunded = &r["data"]["refundPartially"];
    assert_eq!(refunded["balanceAmount"], 10_000);
    assert_eq!(
        refunded["cancellations"],
        json!([{ "amount": 5_000, "reason": "cream spoilt" }])
    );
    let again = api
        .graphql(
            Some(&staff),
            REFUND_PARTIALLY,
            refund(5_000, "cream spoilt", "k1"),
        )
        .await;
    assert_eq!(again["data"]["refundPartially"], *refunded);
    assert_eq!(h.toss.server.stats().cancels, 1, "refunded once");
}
