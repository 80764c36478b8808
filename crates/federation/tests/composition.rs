//! Composing our own subgraphs' SDLs and planning across them.

use federation::{Engine, EngineConfig, SubgraphSource, Supergraph, compose};

fn our_subgraphs() -> Vec<SubgraphSource> {
    let source = |name: &str, port: u16, sdl: &str| SubgraphSource {
        name: name.to_owned(),
        url: format!("http://127.0.0.1:{port}/graphql"),
        sdl: sdl.to_owned(),
    };
    vec![
        source("order", 4001, include_str!("../../../schema/order.graphql")),
        source(
            "inventory",
            4002,
            include_str!("../../../schema/inventory.graphql"),
        ),
        source(
            "payment",
            4003,
            include_str!("../../../schema/payment.graphql"),
        ),
    ]
}

#[test]
fn composed_supergraph_names_every_subgraph() {
    let sdl = compose(&our_subgraphs()).expect("compose");
    println!("{sdl}");
    let supergraph = Supergraph::parse(&sdl).expect("parse");
    let names: Vec<&str> = supergraph
        .subgraphs()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["inventory", "order", "payment"]);
    assert!(
        supergraph
            .subgraphs()
            .iter()
            .any(|s| s.url == "http://127.0.0.1:4002/graphql")
    );
    let engine = Engine::new(supergraph, EngineConfig::default()).expect("engine");
    let _ = engine;
}
