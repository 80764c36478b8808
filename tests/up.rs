//! `bloody-sweet up` on its embedded defaults: no servers, health and readiness answer,
//! events flow from the event store through the relay and into the read models.

use std::time::Duration;

use bloody_sweet::platform::run_up;
use bloody_sweet::settings::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.ok()?;
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_embedded_defaults_and_moves_events_to_read_models() {
    testkit::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::load_from(None, |name| match name {
        "BLOODY_SWEET_DATA_DIR" => Some(dir.path().display().to_string()),
        "ORDER_LISTEN" | "INVENTORY_LISTEN" | "PAYMENT_LISTEN" | "TOSS_TEST_LISTEN"
        | "DEV_ISSUER_LISTEN" => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .unwrap();
    assert!(settings.database_url.is_none() && settings.kafka_brokers.is_none());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let platform = tokio::spawn(run_up(settings, listener, shutdown.clone()));

    let ready = testkit::eventually(Duration::from_secs(20), || async {
        matches!(get(addr, "/readyz").await, Some((200, _)))
    })
    .await;
    assert!(ready, "platform became ready");
    assert_eq!(get(addr, "/healthz").await.map(|r| r.0), Some(200));

    // Write to the same embedded event store the platform uses.
    let store = eventstore::SqliteEventStore::open(dir.path().join("events.db"))
        .await
        .unwrap();
    let stream = eventstore::StreamId::parse("review-42").unwrap();
    let events = (0..3)
        .map(|i| eventstore::EventData::new("ReviewNoted", serde_json::json!({ "i": i })))
        .collect();
    eventstore::EventStore::append(
        &store,
        &stream,
        eventstore::ExpectedVersion::NoStream,
        events,
    )
    .await
    .unwrap();

    // The catalog read model (SQLite) sees the stream; the relay published the events.
    let url = format!("sqlite://{}", dir.path().join("read-models.db").display());
    let models = projections::ReadModels::connect(&url).await.unwrap();
    let projected = testkit::eventually(Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT version FROM rm_catalog_streams WHERE stream_id = 'review-42'",
        )
        .fetch_optional(models.pool())
        .await
        .ok()
        .flatten()
            == Some(3)
    })
    .await;
    assert!(projected, "the read model caught up");
    let relayed = testkit::eventually(Duration::from_secs(20), || async {
        get(addr, "/metrics").await.is_some_and(|(_, body)| {
            body.lines()
                .any(|l| l.starts_with("relay_events_published_total") && l.ends_with(" 3"))
        })
    })
    .await;
    assert!(relayed, "the relay published the three events");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), platform)
        .await
        .expect("platform stops on shutdown")
        .unwrap()
        .unwrap();
}
