//! `schema/*.graphql` are exactly what the subgraphs' code generates (run
//! `bloody-sweet schema export` after changing a schema).

#[test]
fn committed_subgraph_schemas_match_the_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    let stale = bloody_sweet::commands::stale_schemas(&dir);
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}; run `bloody-sweet schema export`"
    );
    for (name, sdl) in bloody_sweet::commands::subgraph_sdls() {
        assert!(
            sdl.contains("@key(fields: \"id\""),
            "{name} has an entity key"
        );
    }
}
