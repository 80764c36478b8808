//! Abstract-typed answers the plan did not give a concrete `__typename` for: values of an
//! interface fetched without `__typename`, and @interfaceObject subgraphs that answer with the
//! interface's own name.

mod support;

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};
use federation::{Engine, EngineConfig, Supergraph};
use serde_json::json;
use support::{Running, World, run, serve};

#[tokio::test]
async fn interface_values_without_typename_are_projected_as_the_interface() {
    let world = World::start().await;
    let engine = world.engine(EngineConfig::default()).await;
    let response = run(&engine, "{ media { id title } }", json!({})).await;
    assert_eq!(
        response,
        json!({ "data": { "media": [
            { "id": "b1", "title": "Baking basics" },
            { "id": "m1", "title": "The Great Bake" }
        ] } })
    );
}

/// The @interfaceObject subgraph: its `Product` is the bakery's interface.
#[derive(SimpleObject, Clone)]
#[graphql(name = "Product")]
struct ShelfProduct {
    id: ID,
    label: Option<String>,
}

struct ShelfQuery;

#[Object(name = "Query")]
impl ShelfQuery {
    async fn featured(&self) -> ShelfProduct {
        shelf_product("bread1")
    }

    async fn shelves(&self) -> Vec<ShelfProduct> {
        vec![shelf_product("bread1"), shelf_product("bread2")]
    }

    async fn hidden(&self) -> Cake {
        Cake { id: "cake1".into() }
    }
}

fn shelf_product(id: &str) -> ShelfProduct {
    ShelfProduct {
        id: id.into(),
        label: Some(format!("{id}-label")),
    }
}

/// A concrete type the API schema hides (@inaccessible).
#[derive(SimpleObject, Clone)]
struct Cake {
    id: ID,
}

#[derive(SimpleObject, Clone)]
struct Bread {
    id: ID,
    crust: String,
}

struct BakeryQuery;

#[Object(name = "Query")]
impl BakeryQuery {
    async fn bread(&self) -> Bread {
        Bread {
            id: "bread1".into(),
            crust: "crisp".to_owned(),
        }
    }
}

async fn interface_object_engine() -> (Engine, Running, Running) {
    let shelf = serve(
        "shelf",
        Schema::new(ShelfQuery, EmptyMutation, EmptySubscription),
        Arc::default(),
    )
    .await;
    let bakery = serve(
        "bakery",
        Schema::new(BakeryQuery, EmptyMutation, EmptySubscription),
        Arc::default(),
    )
    .await;
    let supergraph =
        Supergraph::parse(include_str!("supergraphs/interface_object.graphql")).expect("parse");
    let mut config = EngineConfig::default();
    config
        .subgraph_urls
        .insert("shelf".to_owned(), shelf.url.clone());
    config
        .subgraph_urls
        .insert("bakery".to_owned(), bakery.url.clone());
    let engine = Engine::new(supergraph, config).expect("engine");
    (engine, shelf, bakery)
}

#[tokio::test]
async fn interface_object_answers_named_after_the_interface_keep_their_fields() {
    let (engine, shelf, bakery) = interface_object_engine().await;
    let response = run(&engine, "{ featured { id label } }", json!({})).await;
    assert_eq!(
        response,
        json!({ "data": { "featured": { "id": "bread1", "label": "bread1-label" } } })
    );
    let response = run(&engine, "{ shelves { id } }", json!({})).await;
    assert_eq!(
        response,
        json!({ "data": { "shelves": [{ "id": "bread1" }, { "id": "bread2" }] } })
    );
    let response = run(&engine, "{ featured { ... on Product { id } } }", json!({})).await;
    assert_eq!(
        response,
        json!({ "data": { "featured": { "id": "bread1" } } })
    );
    assert_eq!(shelf.counters.requests(), 3);
    assert_eq!(
        bakery.counters.requests(),
        0,
        "nothing to ask the owner of Bread"
    );
}

#[tokio::test]
async fn a_value_of_an_inaccessible_type_is_null_with_an_error() {
    let (engine, _shelf, _bakery) = interface_object_engine().await;
    let response = run(&engine, "{ hidden { __typename id } }", json!({})).await;
    assert_eq!(response["data"], json!({ "hidden": null }), "{response}");
    assert_eq!(
        response["errors"][0]["path"],
        json!(["hidden"]),
        "{response}"
    );
}
