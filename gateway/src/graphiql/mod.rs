//! GraphiQL from local files: the page and our start-up script are built in; GraphiQL, React
//! and ReactDOM come from the npm packages `web/graphiql/install` put in the cache. Nothing is
//! loaded from a CDN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// The page, referencing only `/graphiql/assets/*`.
const PAGE: &str = include_str!("page.html");
/// Our start-up script (not third-party code).
const INIT_JS: &str = include_str!("init.js");

/// Each asset the page loads: its URL name, its path under `node_modules`, its content type.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "graphiql.min.js",
        "graphiql/graphiql.min.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "graphiql.min.css",
        "graphiql/graphiql.min.css",
        "text/css; charset=utf-8",
    ),
    (
        "react.production.min.js",
        "react/umd/react.production.min.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "react-dom.production.min.js",
        "react-dom/umd/react-dom.production.min.js",
        "text/javascript; charset=utf-8",
    ),
];

/// Serves the GraphiQL page and its assets from `assets_dir` (a `node_modules`).
#[derive(Debug, Clone)]
pub struct Graphiql {
    assets_dir: Arc<PathBuf>,
}

impl Graphiql {
    /// GraphiQL over the packages in `assets_dir`.
    pub fn new(assets_dir: impl Into<PathBuf>) -> Self {
        Self {
            assets_dir: Arc::new(assets_dir.into()),
        }
    }

    /// Whether every asset file is installed.
    pub fn installed(&self) -> bool {
        ASSETS
            .iter()
            .all(|(_, path, _)| self.assets_dir.join(path).is_file())
    }

    /// `GET /graphiql` and `GET /graphiql/assets/{name}`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/graphiql", get(page))
            .route("/graphiql/assets/{name}", get(asset))
            .with_state(self.clone())
    }

    /// The page, or a 503 saying how to install the assets.
    pub fn page(&self) -> Response {
        if self.installed() {
            return Html(PAGE).into_response();
        }
        missing(&self.assets_dir)
    }
}

async fn page(State(graphiql): State<Graphiql>) -> Response {
    graphiql.page()
}

async fn asset(State(graphiql): State<Graphiql>, UrlPath(name): UrlPath<String>) -> Response {
    if name == "init.js" {
        return (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            INIT_JS,
        )
            .into_response();
    }
    let Some((_, path, content_type)) = ASSETS.iter().find(|(asset, _, _)| *asset == name) else {
        return (StatusCode::NOT_FOUND, "no such GraphiQL asset").into_response();
    };
    match tokio::fs::read(graphiql.assets_dir.join(path)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        Err(err) => {
            tracing::warn!(asset = %name, error = %err, "graphiql asset unreadable");
            missing(&graphiql.assets_dir)
        }
    }
}

fn missing(dir: &Path) -> Response {
    tracing::warn!(dir = %dir.display(), "graphiql assets are not installed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "GraphiQL assets are not installed on this server: run web/graphiql/install \
         (scripts/up and scripts/test run it) or set GRAPHIQL_ASSETS_DIR, then reload. \
         POST /graphql works without them.\n",
    )
        .into_response()
}
