//! The whole ordering stack on loopback with the Toss test server: what the end-to-end tests
//! and the ordering benchmark run.

use std::time::Duration;

use anyhow::Context as _;
use order::SagaConfig;
use payment::toss::client::TossClient;
use payment::toss::server::TossTestServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::ordering::{Listeners, Ordering, Running, Tasks};
use crate::platform::Platform;

/// A running stack: relay, projections, the Toss test server, the three subgraphs (on free
/// loopback ports), the saga and its workers.
pub struct LocalStack {
    /// The connected ports.
    pub platform: Platform,
    /// The ordering components.
    pub ordering: Ordering,
    /// The Toss test server, to mint payment keys and switch failures.
    pub toss: TossTestServer,
    /// The Toss test server's base URL (`http://127.0.0.1:PORT`).
    pub toss_url: String,
    /// The saga runner, apart from the rest so it can be killed and restarted.
    pub saga: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Every other task.
    pub tasks: Tasks,
    /// Where the order, inventory and payment subgraphs listen, in that order.
    pub subgraph_addrs: [std::net::SocketAddr; 3],
    /// Cancels everything.
    pub shutdown: CancellationToken,
}

async fn loopback() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")
}

impl LocalStack {
    /// Starts everything on `platform` with `saga`'s settings.
    pub async fn start(platform: Platform, saga: SagaConfig) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let mut tasks = vec![platform.spawn_relay(shutdown.clone())];
        tasks.extend(platform.spawn_projections(shutdown.clone()));
        let toss = TossTestServer::builder()
            .timeout_delay(Duration::from_secs(3))
            .build();
        let toss_listener = loopback().await?;
        let base = format!("http://{}", toss_listener.local_addr()?);
        let serving = toss
            .clone()
            .serve(toss_listener, shutdown.clone().cancelled_owned());
        tasks.push(tokio::spawn(async move {
            serving.await.context("toss test server")
        }));
        let client = TossClient::new(&base, "test_sk_local_stack".to_owned().into())
            .map_err(|e| anyhow::anyhow!("creating the Toss client: {e}"))?;
        let listeners = Listeners {
            order: loopback().await?,
            inventory: loopback().await?,
            payment: loopback().await?,
        };
        let subgraph_addrs = [
            listeners.order.local_addr()?,
            listeners.inventory.local_addr()?,
            listeners.payment.local_addr()?,
        ];
        let (ordering, Running { saga, others }) =
            Ordering::start(&platform, client, saga, listeners, shutdown.clone()).await?;
        tasks.extend(others);
        Ok(Self {
            platform,
            ordering,
            toss,
            toss_url: base,
            saga,
            tasks,
            subgraph_addrs,
            shutdown,
        })
    }
}
