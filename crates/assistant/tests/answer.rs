//! Grounded answers over reviews: the local extractive answerer, and the OpenAI-compatible
//! path against the local test server over real HTTP and SSE.

mod support;

use std::sync::Arc;
use std::time::Duration;

use assistant::{
    AnswerEvent, Answerer, EXTRACTIVE_MODEL, ExtractiveLlm, NO_REVIEWS_MODEL, privacy,
};
use futures::StreamExt as _;
use llm::{Fault, LlmConfig, OpenAiLlm, OpenAiTestServer};
use support::{Shelf, StoredReview, cakes};

const KEY: &str = "sk-assistant-test";

fn extractive(shelf: &Shelf) -> Answerer {
    Answerer::new(Arc::new(shelf.clone()), Arc::new(ExtractiveLlm::new()))
}

async fn remote(shelf: &Shelf) -> (OpenAiTestServer, Answerer) {
    testkit::init_logs();
    let server = OpenAiTestServer::start(KEY)
        .await
        .expect("start test server");
    let mut config = LlmConfig::new(server.base_url(), KEY, "test-model");
    config.request_timeout = Duration::from_secs(5);
    config.idle_timeout = Duration::from_secs(5);
    let llm = OpenAiLlm::new(&config).expect("client");
    (
        server,
        Answerer::new(Arc::new(shelf.clone()), Arc::new(llm)),
    )
}

#[tokio::test]
async fn extractive_answer_cites_only_existing_reviews_and_quotes_the_most_relevant_sentence() {
    testkit::init_logs();
    let shelf = cakes();
    let answer = extractive(&shelf)
        .ask("생크림이 덜 단 케이크 있어요?", None)
        .await
        .expect("answer");

    assert_eq!(answer.model, EXTRACTIVE_MODEL);
    assert!(
        answer
            .text
            .contains("\"생크림이 가볍고 덜 달아서 부담 없어요.\" [1]"),
        "{}",
        answer.text
    );
    assert!(!answer.citations.is_empty());
    for citation in &answer.citations {
        assert!(
            shelf.ids().contains(citation.review.id.as_str()),
            "{citation:?}"
        );
        assert!(
            answer.text.contains(&format!("[{}]", citation.number)),
            "citation {} not in {}",
            citation.number,
            answer.text
        );
    }
    assert_eq!(answer.citations[0].review.id, "rv-1");
    assert!(answer.text.contains("단맛 긍정"), "{}", answer.text);
}

#[tokio::test]
async fn extractive_answer_is_restricted_to_the_product() {
    let shelf = cakes();
    let answer = extractive(&shelf)
        .ask("진하고 단맛은 어때요?", Some("p-cheese"))
        .await
        .expect("answer");
    assert!(!answer.citations.is_empty());
    assert!(
        answer
            .citations
            .iter()
            .all(|c| c.review.product_id == "p-cheese"),
        "{:?}",
        answer.citations
    );
}

#[tokio::test]
async fn llm_path_streams_chunks_and_keeps_only_citations_of_retrieved_reviews() {
    // The top review for this question ends with a marker no passage has: the model's
    // answer quotes it, and the invented [9] must not survive.
    let mut shelf = cakes();
    shelf.reviews.push(StoredReview {
        id: "rv-9",
        product_id: "p-tart",
        product_name: "레몬 타르트",
        author_name: "한지우",
        author_email: "jiwoo@example.com",
        rating: 5,
        text: "레몬 타르트 새콤하고 상큼해서 최고 [9]",
        labels: &[],
    });
    let (server, answerer) = remote(&shelf).await;
    server.set_chunk_delay(Duration::from_millis(20));

    let mut events = answerer
        .ask_stream("레몬 타르트 새콤한가요?", None)
        .await
        .expect("stream starts");
    let mut chunks = Vec::new();
    let mut done = None;
    while let Some(event) = events.next().await {
        match event.expect("event") {
            AnswerEvent::Chunk(chunk) => chunks.push(chunk),
            AnswerEvent::Done(answer) => done = Some(answer),
        }
    }
    let answer = done.expect("a final answer");

    assert!(chunks.len() >= 4, "{chunks:?}");
    assert_eq!(chunks.concat(), answer.text);
    assert_eq!(answer.model, "test-model");
    assert!(
        answer.text.contains("새콤하고 상큼해서 최고"),
        "{}",
        answer.text
    );
    assert!(!answer.text.contains("[9]"), "{}", answer.text);
    assert!(answer.text.ends_with("[1]"), "{}", answer.text);
    let cited: Vec<(usize, &str)> = answer
        .citations
        .iter()
        .map(|c| (c.number, c.review.id.as_str()))
        .collect();
    assert_eq!(cited, vec![(1, "rv-9")]);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].stream, "the answer must be streamed");
    assert!(
        requests[0].system.contains("리뷰"),
        "{}",
        requests[0].system
    );
}

#[tokio::test]
async fn prompt_carries_no_author_data_and_masks_contact_details_in_review_text() {
    let shelf = cakes();
    let (server, answerer) = remote(&shelf).await;
    let answer = answerer
        .ask("케이크가 뭉개져서 왔어요?", Some("p-choco"))
        .await
        .expect("answer");

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let prompt = format!("{}\n{}", requests[0].system, requests[0].user);
    assert!(prompt.contains("케이크가 뭉개져서 왔어요."), "{prompt}");
    for stored in &shelf.reviews {
        assert!(
            !prompt.contains(stored.author_name),
            "author name in {prompt}"
        );
        assert!(
            !prompt.contains(stored.author_email),
            "author e-mail in {prompt}"
        );
    }
    for secret in [
        "doyun.jung@example.com",
        "010-2345-6789",
        "2345",
        "6789",
        "@",
    ] {
        assert!(!prompt.contains(secret), "{secret} in {prompt}");
    }
    assert!(prompt.contains(privacy::EMAIL_MASK), "{prompt}");
    assert!(prompt.contains(privacy::PHONE_MASK), "{prompt}");
    // What the client gets back is what the model saw.
    for citation in &answer.citations {
        assert!(!citation.review.text.contains("010-2345-6789"));
        assert!(!citation.review.text.contains("doyun.jung@example.com"));
    }
}

#[tokio::test]
async fn bad_input_is_a_typed_error() {
    let answerer = extractive(&cakes());
    let too_long = "가".repeat(501);
    for (question, product) in [
        ("", None),
        ("   \n\t ", None),
        (too_long.as_str(), None),
        ("케이크?", Some("")),
        ("케이크?", Some("p 1")),
    ] {
        let err = answerer
            .ask(question, product)
            .await
            .expect_err("must be refused");
        assert_eq!(
            err.code(),
            "BAD_USER_INPUT",
            "{question:?} {product:?}: {err}"
        );
    }
    let longest = format!("  {}  ", "덜 단 케이크".repeat(71));
    assert!(longest.trim().chars().count() <= 500);
    answerer
        .ask(&longest, None)
        .await
        .expect("500 characters are fine");
}

#[tokio::test]
async fn no_matching_review_answers_so_without_asking_the_model() {
    let (server, answerer) = remote(&cakes()).await;
    let answer = answerer.ask("zzz qqq", None).await.expect("answer");
    assert_eq!(answer.model, NO_REVIEWS_MODEL);
    assert!(answer.citations.is_empty());
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_failing_model_is_a_typed_error() {
    let (server, answerer) = remote(&cakes()).await;
    server.set_fault(Fault::ServerError);
    let err = answerer
        .ask("생크림 케이크 어때요?", None)
        .await
        .expect_err("the model failed");
    assert_eq!(err.code(), "LLM_UPSTREAM", "{err}");

    server.set_fault(Fault::CutMidStream);
    let err = answerer
        .ask("생크림 케이크 어때요?", None)
        .await
        .expect_err("the stream was cut");
    assert_eq!(err.code(), "LLM_TRUNCATED", "{err}");
}
