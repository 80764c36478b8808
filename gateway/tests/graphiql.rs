//! GraphiQL: served from local files only, with a clear message when they are not installed.

mod support;

use gateway::GraphiqlConfig;

/// Every `src="..."` and `href="..."` value of a page.
fn referenced_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            if let Some(end) = rest.find('"') {
                urls.push(rest[..end].to_owned());
            }
        }
    }
    urls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_assets_come_from_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("graphiql/graphiql.min.js", "/* graphiql */"),
        ("graphiql/graphiql.min.css", "/* css */"),
        ("react/umd/react.production.min.js", "/* react */"),
        (
            "react-dom/umd/react-dom.production.min.js",
            "/* react-dom */",
        ),
    ];
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let assets_dir = dir.path().to_owned();
    let stack = support::start(move |config| {
        config.graphiql = Some(GraphiqlConfig { assets_dir });
    })
    .await;

    for (path, accept) in [
        ("/graphiql", "*/*"),
        ("/graphql", "text/html,application/xhtml+xml"),
    ] {
        let response = stack
            .http
            .get(format!("{}{path}", stack.base))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = response.text().await.unwrap();
        let urls = referenced_urls(&html);
        assert_eq!(urls.len(), 5, "{urls:?}");
        for url in &urls {
            assert!(
                url.starts_with("/graphiql/assets/"),
                "only local URLs: {url}"
            );
            let asset = stack
                .http
                .get(format!("{}{url}", stack.base))
                .send()
                .await
                .unwrap();
            assert_eq!(asset.status(), 200, "{url}");
        }
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("//unpkg")
        );
    }
    let react = stack
        .http
        .get(format!(
            "{}/graphiql/assets/react.production.min.js",
            stack.base
        ))
        .send()
        .await
        .unwrap();
    assert!(
        react.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(react.text().await.unwrap(), "/* react */");
    let init = stack
        .http
        .get(format!("{}/graphiql/assets/init.js", stack.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/graphql") && init.contains("GraphiQL.createFetcher"));
    for name in ["..%2F..%2Fetc%2Fpasswd", "other.js"] {
        let response = stack
            .http
            .get(format!("{}/graphiql/assets/{name}", stack.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_assets_get_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let assets_dir = dir.path().join("nothing-here");
    let stack = support::start(move |config| {
        config.graphiql = Some(GraphiqlConfig { assets_dir });
    })
    .await;
    let response = stack
        .http
        .get(format!("{}/graphiql", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(text.contains("web/graphiql/install"), "{text}");
    assert!(
        !text.contains("nothing-here"),
        "no server paths leak: {text}"
    );
    // GraphQL itself still works.
    let (status, body) = stack.query("{ menu { id } }", None).await;
    assert_eq!(
        (status, &body["data"]["menu"][0]["id"]),
        (200, &serde_json::json!("p1"))
    );
}
