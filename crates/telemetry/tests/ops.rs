//! The ops endpoints served by a real axum server on a port-0 listener.

use std::net::SocketAddr;

use telemetry::Readiness;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct OpsServer {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), telemetry::TelemetryError>>,
}

impl OpsServer {
    async fn start(readiness: Readiness) -> Self {
        let handle = telemetry::install_metrics_recorder().expect("install recorder");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = telemetry::ops_router(handle, readiness);
        let task = tokio::spawn(telemetry::serve_ops(listener, router, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task
            .await
            .expect("server task")
            .expect("server result");
    }
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

/// A plain HTTP/1.1 GET over a TcpStream.
async fn get(addr: SocketAddr, path: &str) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    Response {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn metrics_serves_an_incremented_counter() {
    let first = telemetry::install_metrics_recorder().expect("install recorder");
    let second = telemetry::install_metrics_recorder().expect("second install is a no-op");
    metrics::counter!("telemetry_test_orders_placed_total", "shop" => "gangnam").increment(3);
    metrics::counter!("telemetry_test_orders_placed_total", "shop" => "gangnam").increment(2);
    let line = "telemetry_test_orders_placed_total{shop=\"gangnam\"} 5";
    assert!(first.render().contains(line));
    assert!(
        second.render().contains(line),
        "both calls share one recorder"
    );

    let server = OpsServer::start(Readiness::new()).await;
    let response = get(server.addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .head
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        response.head
    );
    assert!(response.body.contains(line), "{}", response.body);
    server.stop().await;
}

#[tokio::test]
async fn healthz_is_ok_while_running() {
    let server = OpsServer::start(Readiness::new()).await;
    let response = get(server.addr, "/healthz").await;
    assert_eq!((response.status, response.body.as_str()), (200, "ok"));
    server.stop().await;
}

#[tokio::test]
async fn readyz_flips_from_503_to_200() {
    let readiness = Readiness::new();
    let server = OpsServer::start(readiness.clone()).await;

    let response = get(server.addr, "/readyz").await;
    assert_eq!(response.status, 503);
    assert_eq!(response.body, "not ready: startup");

    readiness.set_check("database", false);
    readiness.set_ready(true);
    let response = get(server.addr, "/readyz").await;
    assert_eq!(response.status, 503);
    assert_eq!(response.body, "not ready: database");

    readiness.set_check("database", true);
    let response = get(server.addr, "/readyz").await;
    assert_eq!((response.status, response.body.as_str()), (200, "ready"));

    readiness.set_ready(false);
    assert_eq!(get(server.addr, "/readyz").await.status, 503);
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let server = OpsServer::start(Readiness::new()).await;
    assert_eq!(get(server.addr, "/nope").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn durations_are_histograms_with_buckets() {
    let handle = telemetry::install_metrics_recorder().expect("install recorder");
    metrics::histogram!("telemetry_test_request_duration_seconds", "route" => "graphql")
        .record(0.003);
    metrics::histogram!("telemetry_test_request_duration_seconds", "route" => "graphql")
        .record(0.2);
    let text = handle.render();
    assert!(
        text.contains("# TYPE telemetry_test_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(
            "telemetry_test_request_duration_seconds_bucket{route=\"graphql\",le=\"0.005\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("telemetry_test_request_duration_seconds_count{route=\"graphql\"} 2"),
        "{text}"
    );
}
