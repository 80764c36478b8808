//! A `null` reaching an argument declared `Int! = 10` is the client's mistake: `BAD_USER_INPUT`,
//! never `INTERNAL_SERVER_ERROR`.

use async_graphql::{
    EmptyMutation, EmptySubscription, Executor as _, Object, Request, Schema, Variables,
};
use serde_json::{Value, json};
use subgraph::Coded;

struct Query;

#[Object]
impl Query {
    async fn page(&self, #[graphql(default = 10)] first: i32) -> i32 {
        first
    }

    async fn broken(&self, ctx: &async_graphql::Context<'_>) -> async_graphql::Result<i32> {
        // Data nobody put into the schema: the server's fault.
        Ok(*ctx.data::<u64>()? as i32)
    }
}

async fn run(query: &str, variables: Value) -> Value {
    let schema = Coded(Schema::new(Query, EmptyMutation, EmptySubscription));
    let request = Request::new(query).variables(Variables::from_json(variables));
    serde_json::to_value(schema.execute(request).await).expect("a response serialises")
}

fn codes(response: &Value) -> Vec<&str> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["extensions"]["code"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_left_out_nullable_variable_for_an_argument_with_a_default_is_bad_user_input() {
    let response = run("query($n: Int) { page(first: $n) }", json!({})).await;
    assert_eq!(codes(&response), ["BAD_USER_INPUT"], "{response}");
}

#[tokio::test]
async fn a_variable_defaulting_to_null_for_an_argument_with_a_default_is_bad_user_input() {
    let response = run("query($n: Int = null) { page(first: $n) }", json!({})).await;
    assert_eq!(codes(&response), ["BAD_USER_INPUT"], "{response}");
}

#[tokio::test]
async fn a_literal_or_variable_null_is_caught_by_validation() {
    for (query, variables) in [
        ("{ page(first: null) }", json!({})),
        ("query($n: Int) { page(first: $n) }", json!({ "n": null })),
    ] {
        let response = run(query, variables).await;
        assert_eq!(
            codes(&response),
            ["GRAPHQL_VALIDATION_FAILED"],
            "{response}"
        );
    }
}

#[tokio::test]
async fn the_argument_default_and_a_value_still_work() {
    assert_eq!(run("{ page }", json!({})).await["data"]["page"], 10);
    let response = run("query($n: Int!) { page(first: $n) }", json!({ "n": 3 })).await;
    assert_eq!(response["data"]["page"], 3);
}

#[tokio::test]
async fn a_resolver_failure_without_a_code_stays_internal() {
    let response = run("{ broken }", json!({})).await;
    assert_eq!(codes(&response), ["INTERNAL_SERVER_ERROR"], "{response}");
}
