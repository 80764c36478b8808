//! `MODEL_SERVICE_URL` selects the gRPC embedder: the model service (what `bloody-sweet model`
//! serves) on port 0, and review intelligence embedding through it into its vector index.
//!
//! Model-dependent: prints a reason and passes without running when the model directory
//! (`scripts/model`, or `MODEL_DIR`) is absent.

use std::time::Duration;

use model::TextKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_service_url_selects_the_grpc_embedder() {
    testkit::init_logs();
    let config = bloody_sweet::ai::model_config().unwrap();
    if !model::manifest::is_model_dir(&config.model_dir) {
        eprintln!(
            "skipping: no model directory at {} (scripts/model creates it)",
            config.model_dir.display()
        );
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let served = tokio::spawn(model::serve(
        config,
        listener,
        shutdown.clone().cancelled_owned(),
    ));
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let url = format!("http://{addr}");
    let settings = bloody_sweet::settings::Settings::load_from(None, |name| match name {
        "BLOODY_SWEET_DATA_DIR" => Some(data_dir.clone()),
        "MODEL_SERVICE_URL" => Some(url.clone()),
        _ => None,
    })
    .unwrap();
    // The service loads its model first; the client connects once it listens.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let embedder = loop {
        match bloody_sweet::ai::embedder(&settings).await {
            Ok(embedder) => break embedder,
            Err(err) => {
                assert!(tokio::time::Instant::now() < deadline, "{err:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let info = embedder.info().clone();
    assert!(
        !info.name.is_empty() && !info.version.is_empty() && info.dimension > 0,
        "{info:?}"
    );
    let out = embedder
        .embed(vec!["덜 단 케이크".to_owned()], TextKind::Query)
        .await
        .unwrap();
    assert_eq!(out.vectors[0].len(), embedder.info().dimension);
    let norm: f32 = out.vectors[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");

    // The vector index is created for the service's model.
    let (vectors, _, stale) = bloody_sweet::ai::vectors(&settings, "test", embedder)
        .await
        .unwrap();
    assert!(!stale);
    assert!(vectors.is_consistent());
    shutdown.cancel();
    served.await.unwrap().unwrap();
}
