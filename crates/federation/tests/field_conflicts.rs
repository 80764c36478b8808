//! Fields of one response name whose types differ between the members of a union (`Baker.id: ID!`
//! beside `Owner.id: ID`): the planner sends one of them under an internal alias and renames it
//! back with an output rewrite, at every depth of nesting. Our composition refuses a type that is
//! an entity in one subgraph and a keyless value in another, so the supergraph is hand-written.

mod support;

use std::sync::Arc;

use async_graphql::{ComplexObject, EmptyMutation, EmptySubscription, ID, Object, Schema};
use async_graphql::{SimpleObject, Union};
use federation::{Engine, EngineConfig, Supergraph};
use serde_json::{Value, json};
use support::{Running, run, serve};

/// The roster subgraph knows bakers only by a shareable, nullable id (no key).
#[derive(SimpleObject, Clone)]
#[graphql(name = "Baker")]
struct RosterBaker {
    #[graphql(shareable)]
    id: Option<ID>,
}

struct RosterQuery;

#[Object(name = "Query")]
impl RosterQuery {
    async fn bakers(&self) -> Vec<RosterBaker> {
        vec![RosterBaker {
            id: Some("b1".into()),
        }]
    }
}

/// The shop subgraph owns bakers (`id: ID!`) and owners (`id: ID`).
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
struct Baker {
    id: ID,
    name: Option<String>,
}

#[ComplexObject]
impl Baker {
    async fn colleagues(&self) -> Vec<Member> {
        members()
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(complex)]
struct Owner {
    id: Option<ID>,
    #[graphql(shareable)]
    name: Option<String>,
}

#[ComplexObject]
impl Owner {
    async fn colleagues(&self) -> Vec<Member> {
        members()
    }
}

#[derive(Union, Clone)]
enum Member {
    Baker(Baker),
    Owner(Owner),
}

fn baker() -> Baker {
    Baker {
        id: "b1".into(),
        name: Some("b1-name".to_owned()),
    }
}

fn members() -> Vec<Member> {
    vec![
        Member::Baker(baker()),
        Member::Owner(Owner {
            id: Some("o1".into()),
            name: Some("o1-name".to_owned()),
        }),
    ]
}

struct ShopQuery;

#[Object(name = "Query")]
impl ShopQuery {
    async fn members(&self) -> Vec<Member> {
        members()
    }

    #[graphql(entity)]
    async fn find_baker_by_id(&self, id: ID) -> Option<Baker> {
        (id.as_str() == "b1").then(baker)
    }
}

async fn conflicts_engine() -> (Engine, Running, Running) {
    let roster = serve(
        "roster",
        Schema::build(RosterQuery, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish(),
        Arc::default(),
    )
    .await;
    let shop = serve(
        "shop",
        Schema::build(ShopQuery, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish(),
        Arc::default(),
    )
    .await;
    let supergraph =
        Supergraph::parse(include_str!("supergraphs/field_conflicts.graphql")).expect("parse");
    let mut config = EngineConfig::default();
    for subgraph in [&roster, &shop] {
        config
            .subgraph_urls
            .insert(subgraph.name.clone(), subgraph.url.clone());
    }
    let engine = Engine::new(supergraph, config).expect("engine");
    (engine, roster, shop)
}

/// `... on Baker { id name <nested> } ... on Owner { id name <nested> }`.
fn both_members(nested: &str) -> String {
    format!("... on Baker {{ id name {nested} }} ... on Owner {{ id name {nested} }}")
}

/// The expected members, each with `levels` more levels of colleagues.
fn expected_members(levels: usize) -> Value {
    let entry = |id: &str| {
        let mut object = json!({ "id": id, "name": format!("{id}-name") });
        if levels > 0 {
            object["colleagues"] = expected_members(levels - 1);
        }
        object
    };
    json!([entry("b1"), entry("o1")])
}

/// Runs under the default limits: three levels of a list under fragments on both members stay
/// well under the default cost (the audit's deep child-type-mismatch queries were once refused).
#[tokio::test]
async fn conflicting_field_types_under_a_union_come_back_under_their_own_name() {
    let (engine, _roster, _shop) = conflicts_engine().await;

    let flat = format!(
        "{{ bakers {{ id name }} members {{ {} }} }}",
        both_members("")
    );
    assert_eq!(
        run(&engine, &flat, json!({})).await,
        json!({ "data": {
            "bakers": [{ "id": "b1", "name": "b1-name" }],
            "members": expected_members(0),
        } })
    );

    let nested = format!(
        "{{ members {{ {} }} }}",
        both_members(&format!("colleagues {{ {} }}", both_members("")))
    );
    let prepared = engine.prepare(&nested, None).expect("prepare");
    assert!(
        prepared
            .fetches()
            .iter()
            .any(|fetch| fetch.operation.contains("_internal_qp_alias_0: id")),
        "the planner sends one of the conflicting ids under an alias:\n{}",
        prepared.plan_text()
    );
    assert_eq!(
        run(&engine, &nested, json!({})).await,
        json!({ "data": { "members": expected_members(1) } })
    );

    let deep = format!(
        "{{ members {{ {} }} }}",
        both_members(&format!(
            "colleagues {{ {} }}",
            both_members(&format!("colleagues {{ {} }}", both_members("")))
        ))
    );
    assert_eq!(
        run(&engine, &deep, json!({})).await,
        json!({ "data": { "members": expected_members(2) } })
    );
}
