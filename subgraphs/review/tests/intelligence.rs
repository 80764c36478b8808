//! Review intelligence over real HTTP and WebSocket (the subgraph on port 0), real Postgres
//! or SQLite, real Redis or the in-process broker, the real embedding model and a real
//! OpenAI-compatible SSE server: the embedding pipeline (catch-up, idempotence, re-embedding
//! into a new index), `searchReviews`, `recommendProducts`, `askReviews`, and chat
//! (`startChatSession`, `sendChatMessage`, `chatMessages`, `chatHistory`) with its access rules.
//!
//! Model-dependent: each test prints a reason and passes without running when the model
//! directory (`scripts/model`, or `MODEL_DIR`) is absent.

mod support;

use std::io::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use assistant::{Answerer, Chat, ChatStreams, ChatWorker, WorkerConfig};
use auth::{IDENTITY_HEADER, Identity};
use futures::{SinkExt as _, StreamExt as _};
use llm::{Llm, LlmConfig, OpenAiTestServer};
use model::{Embedder, Embeddings, LocalEmbedder, ModelInfo, TextKind};
use review::{
    EmbeddingPipeline, Intelligence, ModelLabeller, ReviewSearch, ReviewState, ReviewVectors,
};
use serde_json::{Value, json};
use streams::{MemoryBroker, RedisBroker, StreamBroker};
use support::{Backend, Stack};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;
use vectorindex::{HnswCatalog, HnswConfig, IndexCatalog as _};

const WAIT: Duration = Duration::from_secs(30);
/// An author whose data must never reach an answer or a prompt.
const AUTHOR: &str = "author-kim-7f3a9";
const AUTHOR_EMAIL: &str = "kim.7f3a9@example.com";

/// The reviews every test starts with: themes a paraphrased query can find.
fn reviews_jsonl() -> String {
    let rows = [
        (
            "r01",
            "p01",
            5,
            "설탕을 확 줄여서 하나도 안 달고 담백해요. 단 거 싫어하는 부모님도 좋아하셨어요.",
        ),
        (
            "r02",
            "p01",
            4,
            "크림이 가볍고 달지 않아서 한 조각 더 먹었어요.",
        ),
        (
            "r03",
            "p02",
            5,
            "초콜릿이 진하고 꾸덕꾸덕해요. 촉촉한 브라우니 느낌이라 최고예요.",
        ),
        (
            "r04",
            "p02",
            2,
            "초코가 너무 달아서 반도 못 먹었어요. 머리가 아플 정도로 달아요.",
        ),
        (
            "r05",
            "p03",
            5,
            "마카롱 꼬끄가 바삭하고 필링이 쫀득해요. 피스타치오 향이 진해요.",
        ),
        (
            "r06",
            "p03",
            3,
            "마카롱이 예쁘긴 한데 가격이 너무 비싸요. 하나에 사천원은 과해요.",
        ),
        (
            "r07",
            "p04",
            1,
            "배달이 한 시간 넘게 걸려서 케이크가 다 녹아서 왔어요.",
        ),
        (
            "r08",
            "p04",
            4,
            "포장이 꼼꼼해서 선물용으로 좋았어요. 상자도 고급스러워요.",
        ),
        (
            "r09",
            "p05",
            5,
            "딸기가 크고 싱싱해요. 생크림이랑 잘 어울려요.",
        ),
        ("r10", "p05", 4, "사장님이 친절하시고 매장이 깨끗해요."),
    ];
    let mut out = String::new();
    for (id, product, rating, text) in rows {
        out.push_str(
            &json!({ "id": id, "product_id": product, "rating": rating, "text": text, "author_id": AUTHOR })
                .to_string(),
        );
        out.push('\n');
    }
    // A review whose text carries the author's contact details.
    out.push_str(
        &json!({
            "id": "r11", "product_id": "p01", "rating": 5, "author_id": AUTHOR,
            "text": format!("덜 달아서 좋아요. 궁금하면 {AUTHOR_EMAIL} 이나 010-1234-5678 로 연락 주세요."),
        })
        .to_string(),
    );
    out.push('\n');
    out
}

/// The model, loaded once per test binary; `None` (with the reason printed) without it.
fn embedder() -> Option<Arc<LocalEmbedder>> {
    static EMBEDDER: OnceLock<Option<Arc<LocalEmbedder>>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let dir = std::env::var_os("MODEL_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(model::manifest::default_model_dir);
            if !model::manifest::is_model_dir(&dir) {
                eprintln!(
                    "skipping: no model directory at {} (scripts/model creates it)",
                    dir.display()
                );
                return None;
            }
            let engine = Arc::new(model::Engine::load(&dir).expect("the model directory loads"));
            let config = model::ServiceConfig {
                model_dir: dir,
                ..model::ServiceConfig::default()
            };
            Some(Arc::new(
                LocalEmbedder::from_engine(engine, &config).expect("the embedder starts"),
            ))
        })
        .clone()
}

/// The same model under another version: what a model change looks like to the pipeline.
struct Renamed {
    inner: Arc<LocalEmbedder>,
    info: ModelInfo,
}

#[async_trait::async_trait]
impl Embedder for Renamed {
    fn info(&self) -> &ModelInfo {
        &self.info
    }
    async fn embed(
        &self,
        texts: Vec<String>,
        kind: TextKind,
    ) -> Result<Embeddings, model::ModelError> {
        let mut out = self.inner.embed(texts, kind).await?;
        out.version = self.info.version.clone();
        Ok(out)
    }
    async fn label(&self, texts: Vec<String>) -> Result<model::Labels, model::ModelError> {
        self.inner.label(texts).await
    }
}

/// Which answer writer a harness uses.
enum Writer {
    Extractive,
    OpenAi(OpenAiTestServer),
}

/// The review subgraph with search, answers and chat, a chat worker, and the reviews of
/// [`reviews_jsonl`] imported, labelled and indexed.
struct Harness {
    stack: Stack,
    pipeline: EmbeddingPipeline,
    catalog: HnswCatalog,
    url: String,
    ws_url: String,
    client: reqwest::Client,
    stop: watch::Sender<bool>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: CancellationToken,
    writer: Writer,
    _index_dir: tempfile::TempDir,
}

impl Harness {
    async fn start(
        backend: Backend,
        broker: Arc<dyn StreamBroker>,
        writer: Writer,
    ) -> Option<Self> {
        let embedder: Arc<dyn Embedder> = embedder()?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let stack = Stack::new(backend).await;
        for (id, name, category) in [
            ("p01", "저당 생크림 케이크", "cake"),
            ("p02", "초코 브라우니 케이크", "cake"),
            ("p03", "피스타치오 마카롱", "macaron"),
            ("p04", "레터링 케이크", "cake"),
            ("p05", "딸기 생크림 케이크", "cake"),
        ] {
            stack.product(id, name, category).await;
        }
        stack.project().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reviews.jsonl");
        std::fs::File::create(&file)
            .unwrap()
            .write_all(reviews_jsonl().as_bytes())
            .unwrap();
        let report = review::batch::import(
            &stack.import_store(),
            &stack.models,
            &file,
            review::batch::ImportOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(report.counts.written, 11, "{report}");
        stack.project().await;

        let state = ReviewState::new(stack.store.clone(), stack.models.clone())
            .await
            .unwrap();
        let catalog = HnswCatalog::new(dir.path().join("index"), HnswConfig::default());
        let tag = review::vectors::tag_of(embedder.info());
        let index = vectorindex::open_current(&catalog, &tag).await.unwrap();
        let vectors = ReviewVectors::new(embedder.clone(), Arc::new(index));
        let pipeline = EmbeddingPipeline::new(
            state.service.clone(),
            vectors.clone(),
            Some(Arc::new(ModelLabeller::new(embedder.clone()))),
        )
        .await
        .unwrap()
        .with_batch(4);
        let done = pipeline.catch_up().await.unwrap();
        assert_eq!((done.embedded, done.labelled), (11, 11), "{done:?}");
        assert!(done.rate() > 0.0);
        assert_eq!(pipeline.catch_up().await.unwrap().embedded, 0, "idempotent");
        assert_eq!(pipeline.missing().await.unwrap(), 0);
        stack.project().await;

        let search = ReviewSearch::new(vectors, state.service.views().clone());
        let llm: Arc<dyn Llm> = match &writer {
            Writer::Extractive => assistant::choose_llm(None).unwrap(),
            Writer::OpenAi(server) => {
                let config = LlmConfig::new(server.base_url(), "sk-test", "qwen-test");
                assistant::choose_llm(Some(&config)).unwrap()
            }
        };
        let answerer = Answerer::new(Arc::new(search.clone()), llm);
        let streams = ChatStreams::new(testkit::unique_name("review-chat-"));
        let chat = Arc::new(Chat::new(broker.clone(), streams.clone()));
        let state = state.with_intelligence(Intelligence {
            search,
            answerer: answerer.clone(),
            chat,
        });
        let workers = CancellationToken::new();
        let mut config = WorkerConfig::new("review-test");
        config.block = Duration::from_millis(200);
        tokio::spawn(ChatWorker::new(broker, answerer, streams, config).run(workers.clone()));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, _) = watch::channel(false);
        let mut stopped = stop.subscribe();
        let served = tokio::spawn(review::run(listener, state, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Some(Self {
            stack,
            pipeline,
            catalog,
            url: format!("http://{address}/graphql"),
            ws_url: format!("ws://{address}/graphql"),
            client: reqwest::Client::new(),
            stop,
            served,
            workers,
            writer,
            _index_dir: dir,
        })
    }

    async fn stop(self) {
        self.workers.cancel();
        let _ = self.stop.send(true);
        self.served.await.unwrap().unwrap();
    }

    async fn gql(&self, who: Option<&Identity>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(who) = who {
            request = request.header(IDENTITY_HEADER, who.to_header_value());
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    async fn connect(&self, who: &Identity) -> Ws {
        let mut request = self.ws_url.as_str().into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        headers.insert(
            IDENTITY_HEADER,
            HeaderValue::from_str(&who.to_header_value()).unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        send(&mut ws, json!({ "type": "connection_init", "payload": {} })).await;
        assert_eq!(receive(&mut ws).await, json!({ "type": "connection_ack" }));
        ws
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

async fn receive(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

fn field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or("<none>")
}

const SEARCH: &str = "query($q: String!, $p: ID, $c: String, $f: Int = 10) {
    searchReviews(query: $q, productId: $p, category: $c, first: $f) {
        score review { id text rating product { id } }
    }
}";

fn texts(body: &Value) -> Vec<String> {
    body["data"]["searchReviews"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r["review"]["text"].as_str().unwrap().to_owned())
        .collect()
}

fn redis() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_paraphrased_korean_reviews_and_checks_arguments() {
    let Some(h) = Harness::start(
        Backend::Postgres,
        Arc::new(MemoryBroker::new()),
        Writer::Extractive,
    )
    .await
    else {
        return;
    };
    // Paraphrases: few or none of the query's words are in the review it should find.
    for (query, expected) in [
        ("배송이 늦게 와서 녹았어요", "배달이 한 시간"),
        ("친절한 직원", "사장님이 친절하시고"),
        ("비싼 마카롱", "가격이 너무 비싸요"),
    ] {
        let body = h.gql(None, SEARCH, json!({ "q": query, "f": 1 })).await;
        assert!(texts(&body)[0].contains(expected), "{query}: {body}");
    }
    let body = h
        .gql(
            None,
            SEARCH,
            json!({ "q": "설탕이 적게 들어간 케이크", "f": 3 }),
        )
        .await;
    let found = texts(&body);
    assert_eq!(found.len(), 3, "{body}");
    for low_sugar in ["설탕을 확 줄여서", "달지 않아서"] {
        assert!(
            found.iter().any(|t| t.contains(low_sugar)),
            "{low_sugar}: {found:?}"
        );
    }
    let scores: Vec<f64> = body["data"]["searchReviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    // Filters: one product, one category.
    let body = h
        .gql(
            None,
            SEARCH,
            json!({ "q": "맛있어요", "p": "p03", "f": 10 }),
        )
        .await;
    let products: Vec<&str> = body["data"]["searchReviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["review"]["product"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(products, vec!["p03", "p03"], "{body}");
    let body = h
        .gql(
            None,
            SEARCH,
            json!({ "q": "비싸요", "c": "macaron", "f": 10 }),
        )
        .await;
    assert_eq!(texts(&body).len(), 2, "{body}");

    // Every argument is checked.
    for (variables, expected_field) in [
        (json!({ "q": "맛", "f": 0 }), "first"),
        (json!({ "q": "맛", "f": 51 }), "first"),
        (json!({ "q": "   " }), "query"),
        (json!({ "q": "가".repeat(501) }), "query"),
        (json!({ "q": "맛", "p": "p 01" }), "productId"),
        (json!({ "q": "맛", "c": "" }), "category"),
        (json!({ "q": "맛", "c": "c".repeat(65) }), "category"),
    ] {
        let body = h.gql(None, SEARCH, variables.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{variables} {body}");
        assert_eq!(field(&body), expected_field, "{variables} {body}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_ranks_products_by_review_similarity_and_rating() {
    let Some(h) = Harness::start(
        Backend::Sqlite,
        Arc::new(MemoryBroker::new()),
        Writer::Extractive,
    )
    .await
    else {
        return;
    };
    const RECOMMEND: &str = "query($q: String, $l: ID, $f: Int = 5) {
        recommendProducts(query: $q, likeProductId: $l, first: $f) {
            product { id } score similarity rating { average count } matchingReviews
        }
    }";
    let ids = |body: &Value| -> Vec<String> {
        body["data"]["recommendProducts"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|r| r["product"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let body = h
        .gql(None, RECOMMEND, json!({ "q": "마카롱 식감", "f": 3 }))
        .await;
    assert_eq!(ids(&body)[0], "p03", "{body}");
    let ranked = body["data"]["recommendProducts"].as_array().unwrap();
    assert!(ranked.len() <= 3);
    let scores: Vec<f64> = ranked
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(ranked[0]["rating"]["count"], 2, "{body}");

    // Like a product: never itself.
    let body = h.gql(None, RECOMMEND, json!({ "l": "p01", "f": 4 })).await;
    let liked = ids(&body);
    assert!(
        !liked.is_empty() && !liked.contains(&"p01".to_owned()),
        "{body}"
    );

    for variables in [
        json!({ "q": "달아요", "l": "p01" }),
        json!({}),
        json!({ "q": "달아요", "f": 0 }),
        json!({ "l": "p/1" }),
    ] {
        let body = h.gql(None, RECOMMEND, variables.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{variables} {body}");
    }
    let body = h.gql(None, RECOMMEND, json!({ "l": "p99" })).await;
    assert_eq!(field(&body), "likeProductId", "{body}");
    h.stop().await;
}

const ASK: &str = "query($q: String!, $p: ID) {
    askReviews(question: $q, productId: $p) {
        text model citations { id text product { id } }
    }
}";

/// Asserts every citation of `body`'s answer is a review `review(id)` finds.
async fn assert_citations_exist(h: &Harness, body: &Value) -> Vec<String> {
    let citations = body["data"]["askReviews"]["citations"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(!citations.is_empty(), "{body}");
    let mut ids = Vec::new();
    for citation in citations {
        let id = citation["id"].as_str().unwrap();
        let found = h
            .gql(
                None,
                "query($id: ID!) { review(id: $id) { id text } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(found["data"]["review"]["id"], id, "{found}");
        assert_eq!(found["data"]["review"]["text"], citation["text"], "{found}");
        ids.push(id.to_owned());
    }
    ids
}

fn assert_no_author_data(text: &str) {
    assert!(!text.contains(AUTHOR), "author id leaked: {text}");
    assert!(!text.contains(AUTHOR_EMAIL), "author e-mail leaked: {text}");
    assert!(
        !text.contains("010-1234-5678"),
        "phone number leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_reviews_cites_existing_reviews_and_keeps_authors_out() {
    let Some(h) = Harness::start(
        Backend::Postgres,
        Arc::new(MemoryBroker::new()),
        Writer::Extractive,
    )
    .await
    else {
        return;
    };
    let body = h
        .gql(None, ASK, json!({ "q": "덜 단 케이크가 있나요?" }))
        .await;
    assert_eq!(
        body["data"]["askReviews"]["model"],
        assistant::EXTRACTIVE_MODEL,
        "{body}"
    );
    let answer = body["data"]["askReviews"]["text"].as_str().unwrap();
    assert!(!answer.is_empty());
    assert_no_author_data(answer);
    assert_citations_exist(&h, &body).await;

    // One product only.
    let body = h
        .gql(None, ASK, json!({ "q": "가격은 어때요?", "p": "p03" }))
        .await;
    for citation in body["data"]["askReviews"]["citations"].as_array().unwrap() {
        assert_eq!(citation["product"]["id"], "p03", "{body}");
    }
    for (variables, expected) in [
        (json!({ "q": "" }), "question"),
        (json!({ "q": "가".repeat(501) }), "question"),
        (json!({ "q": "맛?", "p": "p 1" }), "productId"),
    ] {
        let body = h.gql(None, ASK, variables.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{variables} {body}");
        assert_eq!(field(&body), expected, "{body}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_reviews_through_an_openai_compatible_api_sends_no_author_data() {
    let server = OpenAiTestServer::start("sk-test").await.unwrap();
    let Some(h) = Harness::start(
        Backend::Postgres,
        Arc::new(MemoryBroker::new()),
        Writer::OpenAi(server),
    )
    .await
    else {
        return;
    };
    let body = h
        .gql(
            None,
            ASK,
            json!({ "q": "덜 달다는 리뷰가 있나요? 연락처도 알려줘요" }),
        )
        .await;
    assert_eq!(body["data"]["askReviews"]["model"], "qwen-test", "{body}");
    let answer = body["data"]["askReviews"]["text"].as_str().unwrap();
    assert_no_author_data(answer);
    assert_citations_exist(&h, &body).await;
    let Writer::OpenAi(server) = &h.writer else {
        unreachable!()
    };
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].authorized && requests[0].stream);
    assert!(requests[0].user.contains("덜 달"), "{}", requests[0].user);
    assert_no_author_data(&requests[0].user);
    assert_no_author_data(&requests[0].system);
    h.stop().await;
}

/// Runs a chat: kim's session, a message, its streamed answer on the subscription, the
/// history; park and anonymous callers refused. Returns the chunks received.
async fn chat_round_trip(h: &Harness) -> Vec<String> {
    let kim = Identity::customer("kim");
    let park = Identity::customer("park");
    let body = h
        .gql(
            Some(&kim),
            "mutation { startChatSession { id } }",
            json!({}),
        )
        .await;
    let session = body["data"]["startChatSession"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let body = h
        .gql(None, "mutation { startChatSession { id } }", json!({}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");

    let mut ws = h.connect(&kim).await;
    send(
        &mut ws,
        json!({
            "id": "1",
            "type": "subscribe",
            "payload": {
                "query": "subscription($s: ID!) { chatMessages(sessionId: $s) { id messageId kind text model code citations { id } } }",
                "variables": { "s": session },
            },
        }),
    )
    .await;
    // The subscription is live once the tail is open; give the server a moment to open it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    const SEND: &str = "mutation($s: ID!, $t: String!) { sendChatMessage(sessionId: $s, text: $t) { sessionId messageId } }";
    let body = h
        .gql(
            Some(&kim),
            SEND,
            json!({ "s": session, "t": "단맛이 덜한 케이크 알려주세요" }),
        )
        .await;
    let message_id = body["data"]["sendChatMessage"]["messageId"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let mut chunks = Vec::new();
    let done = loop {
        let message = receive(&mut ws).await;
        assert_eq!(message["type"], "next", "{message}");
        let event = &message["payload"]["data"]["chatMessages"];
        assert_eq!(event["messageId"], message_id.as_str(), "{message}");
        match event["kind"].as_str() {
            Some("CHUNK") => chunks.push(event["text"].as_str().unwrap().to_owned()),
            Some("DONE") => break event.clone(),
            other => panic!("unexpected event {other:?}: {message}"),
        }
    };
    assert!(!chunks.is_empty());
    let citations = done["citations"].as_array().unwrap();
    assert!(!citations.is_empty(), "{done}");
    assert_no_author_data(&chunks.concat());
    ws.close(None).await.unwrap();

    // History: the message, then its answer with the same text as the chunks.
    const HISTORY: &str = "query($s: ID!) { chatHistory(sessionId: $s) { kind messageId text model citations { id } } }";
    let body = h.gql(Some(&kim), HISTORY, json!({ "s": session })).await;
    let history = body["data"]["chatHistory"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(history.len(), 2, "{body}");
    assert_eq!(history[0]["kind"], "MESSAGE");
    assert_eq!(history[0]["text"], "단맛이 덜한 케이크 알려주세요");
    assert_eq!(history[1]["kind"], "ANSWER");
    assert_eq!(history[1]["text"], chunks.concat().as_str());
    assert_eq!(history[1]["citations"], done["citations"]);

    // Nobody else reads or writes the session.
    let body = h.gql(Some(&park), HISTORY, json!({ "s": session })).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = h
        .gql(Some(&park), SEND, json!({ "s": session, "t": "안녕" }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = h.gql(None, HISTORY, json!({ "s": session })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let mut ws = h.connect(&park).await;
    send(
        &mut ws,
        json!({
            "id": "1",
            "type": "subscribe",
            "payload": {
                "query": "subscription($s: ID!) { chatMessages(sessionId: $s) { kind } }",
                "variables": { "s": session },
            },
        }),
    )
    .await;
    let message = receive(&mut ws).await;
    let errors = match message["type"].as_str() {
        Some("error") => json!({ "errors": message["payload"] }),
        _ => message["payload"].clone(),
    };
    assert_eq!(code(&errors), "FORBIDDEN", "{message}");
    ws.close(None).await.unwrap();

    // Arguments are checked.
    let body = h
        .gql(
            Some(&kim),
            SEND,
            json!({ "s": "not-a-session", "t": "안녕" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = h
        .gql(
            Some(&kim),
            SEND,
            json!({ "s": session, "t": "가".repeat(501) }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = h
        .gql(
            Some(&kim),
            HISTORY,
            json!({ "s": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    chunks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_over_redis_streams_llm_tokens_to_the_subscription() {
    let server = OpenAiTestServer::start("sk-test").await.unwrap();
    let broker: Arc<dyn StreamBroker> =
        Arc::new(RedisBroker::connect(&redis()).await.expect("redis"));
    let Some(h) = Harness::start(Backend::Postgres, broker, Writer::OpenAi(server)).await else {
        return;
    };
    let chunks = chat_round_trip(&h).await;
    assert!(
        chunks.len() > 1,
        "the test server streams token by token: {chunks:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_in_process_answers_extractively() {
    let Some(h) = Harness::start(
        Backend::Sqlite,
        Arc::new(MemoryBroker::new()),
        Writer::Extractive,
    )
    .await
    else {
        return;
    };
    chat_round_trip(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_reviews_are_embedded_by_the_running_pipeline() {
    let Some(h) = Harness::start(
        Backend::Postgres,
        Arc::new(MemoryBroker::new()),
        Writer::Extractive,
    )
    .await
    else {
        return;
    };
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(
        h.pipeline
            .clone()
            .run(Duration::from_millis(100), shutdown.clone()),
    );
    let kim = Identity::customer("kim");
    let order = h.stack.order("kim", &["p02"], true).await;
    h.stack.project().await;
    let body = h
        .gql(
            Some(&kim),
            "mutation($o: ID!) { writeReview(orderId: $o, productId: \"p02\", rating: 5, text: \"아몬드가 고소하고 견과류 식감이 살아 있어요\") { id } }",
            json!({ "o": order }),
        )
        .await;
    let id = body["data"]["writeReview"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    h.stack.project().await;
    // The running pipeline finds it in the read model and indexes it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.pipeline.missing().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pipeline never embedded it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = h
        .gql(None, SEARCH, json!({ "q": "견과류가 고소해요", "f": 1 }))
        .await;
    assert_eq!(
        body["data"]["searchReviews"][0]["review"]["id"],
        id.as_str(),
        "{body}"
    );
    assert_eq!(h.pipeline.missing().await.unwrap(), 0);
    shutdown.cancel();
    running.await.unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_change_reembeds_into_a_new_index_and_swaps_it_in() {
    let Some(h) = Harness::start(
        Backend::Postgres,
        Arc::new(MemoryBroker::new()),
        Writer::Extractive,
    )
    .await
    else {
        return;
    };
    let Some(inner) = embedder() else { return };
    let old = review::vectors::tag_of(inner.info());
    let mut info = inner.info().clone();
    info.version = format!("{}-next", info.version);
    let next = Arc::new(Renamed { inner, info });
    let new_tag = review::vectors::tag_of(next.info());
    let before = h
        .gql(None, SEARCH, json!({ "q": "선물하기 좋은 포장", "f": 1 }))
        .await;

    let total = h.pipeline.reembed(&h.catalog, next.clone()).await.unwrap();
    assert_eq!(total, 11);
    assert_eq!(h.catalog.current().await.unwrap(), Some(new_tag.clone()));
    assert!(!h.catalog.dir_of(&old).exists(), "the old index is retired");
    let (_, index) = h.pipeline.vectors().current();
    assert_eq!(index.model(), &new_tag);
    // Every review's whole text, and the sentences of those with several.
    assert!(index.len().await.unwrap() >= 11);
    assert_eq!(h.pipeline.missing().await.unwrap(), 0);
    // Search serves from the new index with the new model, finding the same review.
    let after = h
        .gql(None, SEARCH, json!({ "q": "선물하기 좋은 포장", "f": 1 }))
        .await;
    assert_eq!(
        after["data"]["searchReviews"][0]["review"]["id"],
        before["data"]["searchReviews"][0]["review"]["id"],
        "{before} {after}"
    );
    assert!(texts(&after)[0].contains("포장"), "{after}");
    h.stop().await;
}
