//! The Toss client against the Toss test server, over real HTTP: confirm, declines, provider
//! errors with retries, timeouts, duplicates, idempotent retries, cancels and bad keys.

use std::time::{Duration, Instant};

use payment::toss::server::{mint_payment_key, set_failure};
use payment::toss::{
    FailureMode, RetryPolicy, Timeouts, TossClient, TossError, TossStatus, TossTestServer, codes,
};
use secrecy::SecretString;

struct Running {
    base: String,
    server: TossTestServer,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(server: TossTestServer) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        server,
        _stop: stop,
    }
}

fn client_with(base: &str, secret: &str) -> TossClient {
    TossClient::new(base, SecretString::from(secret.to_owned()))
        .unwrap()
        .with_timeouts(Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_millis(500),
        })
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        })
}

fn client(base: &str) -> TossClient {
    client_with(base, "test_sk_bloody_sweet")
}

#[tokio::test]
async fn confirms_a_minted_payment_and_reads_it_back() {
    let toss = start(TossTestServer::default()).await;
    let key = mint_payment_key(&toss.base, "order-1", 15_000)
        .await
        .unwrap();
    let client = client(&toss.base);
    let paid = client
        .confirm(&key, "order-1", 15_000, "confirm-order-1")
        .await
        .unwrap();
    assert_eq!(paid.status, TossStatus::Done);
    assert_eq!(paid.payment_key, key);
    assert_eq!(paid.order_id, "order-1");
    assert_eq!((paid.total_amount, paid.balance_amount), (15_000, 15_000));
    assert!(paid.method.is_some() && paid.approved_at.is_some() && paid.receipt.is_some());
    assert_eq!(client.get(&key).await.unwrap(), paid);
}

#[tokio::test]
async fn refuses_a_confirm_that_does_not_match_the_minted_key() {
    let toss = start(TossTestServer::default()).await;
    let key = mint_payment_key(&toss.base, "order-1", 15_000)
        .await
        .unwrap();
    let err = client(&toss.base)
        .confirm(&key, "order-1", 100, "k1")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.status),
        (codes::INVALID_REQUEST, Some(400))
    );
    let err = client(&toss.base)
        .confirm(&key, "order-2", 15_000, "k2")
        .await
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_REQUEST);
}

#[tokio::test]
async fn a_declined_card_is_reported_once_without_retries() {
    let toss = start(TossTestServer::default()).await;
    let key = mint_payment_key(&toss.base, "order-1", 5_000)
        .await
        .unwrap();
    set_failure(&toss.base, FailureMode::Declined, Some(&key))
        .await
        .unwrap();
    let err = client(&toss.base)
        .confirm(&key, "order-1", 5_000, "confirm-order-1")
        .await
        .unwrap_err();
    assert_eq!(err.code, codes::REJECT_CARD_COMPANY);
    assert_eq!(err.status, Some(403));
    assert!(err.is_rejection());
    assert_eq!(
        toss.server.stats().confirm_requests,
        1,
        "a decline is not retried"
    );
    let aborted = client(&toss.base).get(&key).await.unwrap();
    assert_eq!(aborted.status, TossStatus::Aborted);
}

/// A Toss test server failing confirms in `mode`, a client, a key minted for `order-1`, and
/// the error of confirming it (key `confirm-order-1`).
async fn a_failed_confirm(mode: FailureMode) -> (Running, TossClient, String, TossError) {
    let toss = start(TossTestServer::default()).await;
    let key = mint_payment_key(&toss.base, "order-1", 5_000)
        .await
        .unwrap();
    set_failure(&toss.base, mode, None).await.unwrap();
    let client = client(&toss.base);
    let err = client
        .confirm(&key, "order-1", 5_000, "confirm-order-1")
        .await
        .unwrap_err();
    (toss, client, key, err)
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_key_then_reported() {
    let (toss, client, key, err) = a_failed_confirm(FailureMode::InternalError).await;
    assert_eq!(
        (err.code.as_str(), err.status),
        (codes::FAILED_INTERNAL_SYSTEM_PROCESSING, Some(500))
    );
    assert_eq!(toss.server.stats().confirm_requests, 3, "bounded retries");
    assert_eq!(toss.server.stats().confirmed, 0);
    // A 5xx is not stored under the idempotency key: once the provider is back, the same
    // request goes through, once.
    set_failure(&toss.base, FailureMode::None, None)
        .await
        .unwrap();
    let paid = client
        .confirm(&key, "order-1", 5_000, "confirm-order-1")
        .await
        .unwrap();
    assert_eq!(paid.status, TossStatus::Done);
    assert_eq!(toss.server.stats().confirmed, 1);
}

/// Toss answers a failing card company with 400 `PROVIDER_ERROR` and keeps that answer under
/// the idempotency key: trying the same request again cannot help, so it is not retried.
#[tokio::test]
async fn a_provider_error_is_answered_once_and_replayed_under_its_key() {
    let (toss, client, key, err) = a_failed_confirm(FailureMode::ProviderError).await;
    assert_eq!(
        (err.code.as_str(), err.status),
        (codes::PROVIDER_ERROR, Some(400))
    );
    assert!(!err.is_transient() && !err.is_rejection());
    assert_eq!(toss.server.stats().confirm_requests, 1, "not retried");
    set_failure(&toss.base, FailureMode::None, None)
        .await
        .unwrap();
    let again = client
        .confirm(&key, "order-1", 5_000, "confirm-order-1")
        .await
        .unwrap_err();
    assert_eq!(again.code, codes::PROVIDER_ERROR, "replayed");
    assert_eq!(toss.server.stats().confirmed, 0);
}

#[tokio::test]
async fn a_slow_toss_times_out_within_the_client_budget() {
    let toss = start(
        TossTestServer::builder()
            .timeout_delay(Duration::from_secs(5))
            .build(),
    )
    .await;
    let key = mint_payment_key(&toss.base, "order-1", 5_000)
        .await
        .unwrap();
    toss.server.set_failure(FailureMode::Timeout, Some(&key));
    let client = client(&toss.base).with_retry(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    });
    let started = Instant::now();
    let err = client
        .confirm(&key, "order-1", 5_000, "confirm-order-1")
        .await
        .unwrap_err();
    assert_eq!(err.code, codes::TOSS_TIMEOUT);
    assert_eq!(err.status, None);
    assert!(err.maybe_done());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(toss.server.stats().confirm_requests, 2);
    assert_eq!(toss.server.stats().confirmed, 0);
}

#[tokio::test]
async fn a_second_confirm_with_another_key_is_already_processed() {
    let toss = start(TossTestServer::default()).await;
    let key = mint_payment_key(&toss.base, "order-1", 5_000)
        .await
        .unwrap();
    let client = client(&toss.base);
    client
        .confirm(&key, "order-1", 5_000, "first")
        .await
        .unwrap();
    let err = client
        .confirm(&key, "order-1", 5_000, "second")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.status),
        (codes::ALREADY_PROCESSED_PAYMENT, Some(400))
    );
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_same_result_without_a_second_effect() {
    let toss = start(TossTestServer::default()).await;
    let key = mint_payment_key(&toss.base, "order-1", 5_000)
        .await
        .unwrap();
    let client = client(&toss.base);
    let first = client
        .confirm(&key, "order-1", 5_000, "same")
        .await
        .unwrap();
    let again = client
        .confirm(&key, "order-1", 5_000, "same")
        .await
        .unwrap();
    assert_eq!(first, again);
    let stats = toss.server.stats();
    assert_eq!((stats.confirmed, stats.replays), (1, 1));
    // The same key for a different request is refused.
    let other = mint_payment_key(&toss.base, "order-2", 7_000)
        .await
        .unwrap();
    let err = client
        .confirm(&other, "order-2", 7_000, "same")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.status),
        (codes::INVALID_REQUEST, Some(422))
    );
}

#[tokio::test]
async fn cancels_partly_then_fully_then_nothing_is_left() {
    let toss = start(TossTestServer::default()).await;
    let key = mint_payment_key(&toss.base, "order-1", 10_000)
        .await
        .unwrap();
    let client = client(&toss.base);
    client.confirm(&key, "order-1", 10_000, "c").await.unwrap();

    let partial = client
        .cancel(&key, "one cake sold out", Some(3_000), "refund-1")
        .await
        .unwrap();
    assert_eq!(partial.status, TossStatus::PartialCanceled);
    assert_eq!(partial.balance_amount, 7_000);
    assert_eq!(partial.cancels.len(), 1);
    assert_eq!(partial.cancels[0].cancel_amount, 3_000);
    assert_eq!(partial.cancels[0].cancel_reason, "one cake sold out");

    let replay = client
        .cancel(&key, "one cake sold out", Some(3_000), "refund-1")
        .await
        .unwrap();
    assert_eq!(replay, partial, "same key, same answer, no second cancel");

    let too_much = client
        .cancel(&key, "more", Some(7_001), "refund-2")
        .await
        .unwrap_err();
    assert_eq!(too_much.code, codes::NOT_CANCELABLE_AMOUNT);

    let full = client
        .cancel(&key, "order rejected", None, "refund-3")
        .await
        .unwrap();
    assert_eq!(full.status, TossStatus::Canceled);
    assert_eq!(full.balance_amount, 0);
    assert_eq!(full.cancels.len(), 2);
    assert_eq!(full.cancels[1].cancel_amount, 7_000);

    let nothing = client
        .cancel(&key, "again", None, "refund-4")
        .await
        .unwrap_err();
    assert_eq!(
        (nothing.code.as_str(), nothing.status),
        (codes::ALREADY_CANCELED_PAYMENT, Some(400))
    );
    assert_eq!(toss.server.stats().cancels, 2);
    assert_eq!(client.get(&key).await.unwrap(), full);
}

#[tokio::test]
async fn a_wrong_secret_key_is_unauthorized() {
    let toss = start(TossTestServer::default()).await;
    let key = mint_payment_key(&toss.base, "order-1", 5_000)
        .await
        .unwrap();
    for secret in ["live_sk_real_money", "test_sk_", "nonsense"] {
        let client = client_with(&toss.base, secret);
        let err = client
            .confirm(&key, "order-1", 5_000, "k")
            .await
            .unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.status),
            (codes::UNAUTHORIZED_KEY, Some(401)),
            "{secret}"
        );
        let err = client.get(&key).await.unwrap_err();
        assert_eq!(err.code, codes::UNAUTHORIZED_KEY);
    }
    assert_eq!(toss.server.stats().confirm_requests, 0);
}

#[tokio::test]
async fn unknown_payments_are_not_found_and_unsafe_keys_never_leave() {
    let toss = start(TossTestServer::default()).await;
    let client = client(&toss.base);
    let err = client.get("tbs_unknown").await.unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.status),
        (codes::NOT_FOUND_PAYMENT, Some(404))
    );
    let err = client.get("../v1/test/stats").await.unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.status),
        (codes::INVALID_REQUEST, None)
    );
}

#[tokio::test]
async fn an_unreachable_toss_is_reported_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client(&base).get("tbs_x").await.unwrap_err();
    assert_eq!(err.code, codes::TOSS_UNREACHABLE);
    assert!(err.is_transient());
}

#[tokio::test]
async fn the_plain_run_function_serves_the_embedded_key() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(payment::toss::server::run(listener, async move {
        let _ = stopped.await;
    }));
    let key = mint_payment_key(&base, "order-9", 3_000).await.unwrap();
    let client = client_with(&base, payment::toss::server::EMBEDDED_SECRET_KEY);
    let paid = client.confirm(&key, "order-9", 3_000, "k").await.unwrap();
    assert_eq!(paid.status, TossStatus::Done);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
