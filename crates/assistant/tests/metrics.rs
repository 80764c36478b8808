//! The assistant's metrics, read back through a Prometheus recorder.

mod support;

use std::sync::Arc;

use assistant::{Answerer, ExtractiveLlm};
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::test]
async fn answers_are_counted_by_model_and_outcome_and_timed() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // A current-thread runtime: the whole test runs on this thread, under this recorder.
    let _guard = metrics::set_default_local_recorder(&recorder);

    let answerer = Answerer::new(Arc::new(support::cakes()), Arc::new(ExtractiveLlm::new()));
    answerer.ask("딸기 신선해요?", None).await.expect("answer");
    answerer
        .ask("생크림 덜 달아요?", None)
        .await
        .expect("answer");
    answerer
        .ask("zzz", None)
        .await
        .expect("answer without reviews");
    answerer
        .ask(" ", None)
        .await
        .expect_err("bad input is not an answer");

    let text = handle.render();
    assert!(
        text.contains(r#"assistant_answers_total{model="extractive-v1",outcome="ok"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"assistant_answers_total{model="none",outcome="no_reviews"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"assistant_answer_seconds_count{model="extractive-v1"} 2"#),
        "{text}"
    );
}
