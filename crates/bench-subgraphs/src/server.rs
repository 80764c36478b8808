//! Serving the subgraphs over HTTP: each on its own listener, `POST /graphql` and
//! `GET /healthz`, and all four at once in this process with [`start`].

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};

use async_graphql::{ObjectType, Schema, SubscriptionType};
use async_graphql_axum::GraphQL;
use axum::Router;
use axum::routing::{get, post_service};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{accounts, inventory, products, reviews};

/// One of the four subgraphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subgraph {
    /// Users.
    Accounts,
    /// Stock and shipping estimates of products.
    Inventory,
    /// The product catalogue.
    Products,
    /// Reviews of products by users.
    Reviews,
}

impl Subgraph {
    /// All four, in port order.
    pub const ALL: [Subgraph; 4] = [
        Subgraph::Accounts,
        Subgraph::Inventory,
        Subgraph::Products,
        Subgraph::Reviews,
    ];

    /// The subgraph's name in the supergraph.
    pub fn name(self) -> &'static str {
        match self {
            Subgraph::Accounts => "accounts",
            Subgraph::Inventory => "inventory",
            Subgraph::Products => "products",
            Subgraph::Reviews => "reviews",
        }
    }

    /// The subgraph's Federation v2 SDL, as `_service { sdl }` returns it.
    pub fn sdl(self) -> String {
        let options = async_graphql::SDLExportOptions::new().federation();
        match self {
            Subgraph::Accounts => accounts::schema().sdl_with_options(options),
            Subgraph::Inventory => inventory::schema().sdl_with_options(options),
            Subgraph::Products => products::schema().sdl_with_options(options),
            Subgraph::Reviews => reviews::schema().sdl_with_options(options),
        }
    }

    /// The subgraph's routes: `POST /graphql` and `GET /healthz`.
    pub fn router(self) -> Router {
        match self {
            Subgraph::Accounts => routes(accounts::schema()),
            Subgraph::Inventory => routes(inventory::schema()),
            Subgraph::Products => routes(products::schema()),
            Subgraph::Reviews => routes(reviews::schema()),
        }
    }
}

fn routes<Q, M, S>(schema: Schema<Q, M, S>) -> Router
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    Router::new()
        .route("/graphql", post_service(GraphQL::new(schema)))
        .route("/healthz", get(|| async { "ok" }))
}

/// Serves `subgraph` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight.
pub async fn run(
    subgraph: Subgraph,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(subgraph = subgraph.name(), %address, "bench subgraph listening");
    axum::serve(listener, subgraph.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// The four subgraphs served by this process; dropping it stops them.
#[derive(Debug)]
pub struct RunningSubgraphs {
    addresses: Vec<(Subgraph, SocketAddr)>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<io::Result<()>>,
}

impl RunningSubgraphs {
    /// The address `subgraph` listens on.
    pub fn address(&self, subgraph: Subgraph) -> Option<SocketAddr> {
        self.addresses
            .iter()
            .find(|(s, _)| *s == subgraph)
            .map(|(_, address)| *address)
    }

    /// The GraphQL endpoint of `subgraph`, `http://ADDRESS/graphql`.
    pub fn url(&self, subgraph: Subgraph) -> Option<String> {
        self.address(subgraph)
            .map(|address| format!("http://{address}/graphql"))
    }

    /// Stops the subgraphs and waits until they have finished the requests in flight.
    pub async fn shutdown(mut self) -> io::Result<()> {
        let _ = self.stop.send(true);
        while let Some(joined) = self.tasks.join_next().await {
            joined.map_err(io::Error::other)??;
        }
        Ok(())
    }
}

/// Binds the four subgraphs on `host`, at `base_port` and the three ports after it in
/// [`Subgraph::ALL`] order (each on a port of the system's choosing when `base_port` is 0), and
/// serves them on this runtime.
pub async fn start(host: IpAddr, base_port: u16) -> io::Result<RunningSubgraphs> {
    let (stop, stopped) = watch::channel(false);
    let mut addresses = Vec::with_capacity(Subgraph::ALL.len());
    let mut listeners = Vec::with_capacity(Subgraph::ALL.len());
    for (offset, subgraph) in (0u16..).zip(Subgraph::ALL) {
        let port = if base_port == 0 {
            0
        } else {
            base_port.checked_add(offset).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "the ports run past 65535")
            })?
        };
        let listener = TcpListener::bind((host, port)).await?;
        addresses.push((subgraph, listener.local_addr()?));
        listeners.push((subgraph, listener));
    }
    let mut tasks = JoinSet::new();
    for (subgraph, listener) in listeners {
        let mut stopped = stopped.clone();
        tasks.spawn(run(subgraph, listener, async move {
            // Stops on `true` and when the sender is dropped alike.
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
    }
    Ok(RunningSubgraphs {
        addresses,
        stop,
        tasks,
    })
}
