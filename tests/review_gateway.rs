//! Review intelligence through the gateway, on embedded adapters as `up` wires them
//! (SQLite, in-process bus and streams, the model in-process, HNSW under the data dir,
//! extractive answers): imported reviews are embedded by the pipeline, `searchReviews` finds
//! them with their product resolved by the inventory subgraph, `askReviews` cites them, and a
//! chat answer streams over the gateway's WebSocket from the review subgraph's
//! `chatMessages` subscription; another customer's session is refused.
//!
//! Model-dependent: prints a reason and passes without running when the model directory
//! (`scripts/model`, or `MODEL_DIR`) is absent.

use std::io::Write as _;
use std::time::Duration;

use auth::{Group, MintRequest};
use bloody_sweet::platform::Platform;
use bloody_sweet::settings::Settings;
use bloody_sweet::stack::LocalStack;
use eventstore::Metadata;
use futures::{SinkExt as _, StreamExt as _};
use inventory::NewProduct;
use order::SagaConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const WAIT: Duration = Duration::from_secs(60);

async fn graphql(url: &str, token: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn model_present() -> bool {
    let dir = std::env::var_os("MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(model::manifest::default_model_dir);
    let present = model::manifest::is_model_dir(&dir);
    if !present {
        eprintln!(
            "skipping: no model directory at {} (scripts/model creates it)",
            dir.display()
        );
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_answers_and_chat_reach_clients_through_the_gateway() {
    if !model_present() {
        return;
    }
    testkit::init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let settings = Settings::load_from(None, |name| match name {
        "BLOODY_SWEET_DATA_DIR" => Some(data_dir.clone()),
        "EMBEDDING_CATCH_UP_MS" => Some("100".into()),
        _ => None,
    })
    .unwrap();
    let platform = Platform::connect(settings.clone()).await.unwrap();
    let stack = LocalStack::start(platform, SagaConfig::default())
        .await
        .unwrap();
    let shutdown = stack.shutdown.clone();

    // Two products on the menu, and their reviews imported.
    let mut ids = Vec::new();
    for (name, category) in [("레터링 케이크", "cake"), ("피스타치오 마카롱", "macaron")]
    {
        let product = stack
            .ordering
            .inventory
            .inventory
            .create_product(
                None,
                NewProduct {
                    name: name.into(),
                    description: "오늘 구운".into(),
                    price: 30_000,
                    category: category.into(),
                    image_url: None,
                    initial_stock: 5,
                },
                Metadata::new(),
            )
            .await
            .unwrap();
        ids.push(product.id().map(ToString::to_string).unwrap());
    }
    let catalog = stack.ordering.inventory.catalog.clone();
    for id in &ids {
        let known = testkit::eventually(WAIT, || {
            let (catalog, id) = (catalog.clone(), id.clone());
            async move { catalog.get(&id).await.ok().flatten().is_some() }
        })
        .await;
        assert!(known, "the catalog has {id}");
    }
    let reviews = [
        (
            &ids[0],
            "배달이 한 시간 넘게 걸려서 케이크가 다 녹아서 왔어요.",
        ),
        (&ids[0], "포장이 꼼꼼해서 선물용으로 좋았어요."),
        (&ids[1], "마카롱이 예쁘긴 한데 가격이 너무 비싸요."),
        (&ids[1], "꼬끄가 바삭하고 필링이 쫀득해요."),
    ];
    let file = data.path().join("reviews.jsonl");
    let mut out = std::fs::File::create(&file).unwrap();
    for (i, (product, text)) in reviews.iter().enumerate() {
        let line =
            json!({ "id": format!("g{i}"), "product_id": product, "rating": 4, "text": text });
        writeln!(out, "{line}").unwrap();
    }
    drop(out);
    let report = review::batch::import(
        &review::batch::ImportStore::Store(stack.platform.store.clone()),
        &stack.platform.read_models,
        &file,
        review::batch::ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.counts.written, 4, "{report}");

    // The review subgraph as `up` wires it.
    let state = review::ReviewState::new(
        stack.platform.store.clone(),
        stack.platform.read_models.clone(),
    )
    .await
    .unwrap();
    let ai = bloody_sweet::ai::Ai::connect(&settings, &state, "test")
        .await
        .unwrap();
    let pipeline = ai.pipeline.clone();
    let _pipeline = ai.spawn_pipeline(&settings, shutdown.clone());
    let _workers = ai.spawn_chat_workers(&settings, shutdown.clone());
    let state = state.with_intelligence(ai.intelligence);
    let review_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let review_addr = review_listener.local_addr().unwrap();
    tokio::spawn(review::run(
        review_listener,
        state,
        shutdown.clone().cancelled_owned(),
    ));

    // The gateway composed over all four subgraphs.
    let issuer = auth::DevIssuer::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        "review-gw-test",
    )
    .await
    .unwrap();
    let [order_addr, inventory_addr, payment_addr] = stack.subgraph_addrs;
    let mut subgraphs =
        bloody_sweet::edge::ordering_subgraphs(order_addr, inventory_addr, payment_addr);
    subgraphs.push(gateway::SubgraphEndpoint {
        name: "review".to_owned(),
        url: bloody_sweet::edge::subgraph_url(review_addr),
    });
    let mut config = gateway::GatewayConfig::new(gateway::SupergraphSource::Compose(subgraphs));
    config.cognito = Some(issuer.config());
    config.graphiql = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway::serve(config, listener, shutdown.clone()));
    let url = format!("http://{addr}/graphql");
    let alice = issuer
        .mint(&MintRequest::access("alice", &[Group::Customers]))
        .unwrap();
    let bob = issuer
        .mint(&MintRequest::access("bob", &[Group::Customers]))
        .unwrap();

    // The pipeline embeds the imported reviews once the read model has them.
    const SEARCH: &str = "query($q: String!) { searchReviews(query: $q, first: 1) { score review { id text product { id name } } } }";
    let deadline = tokio::time::Instant::now() + WAIT;
    let last = loop {
        let body = graphql(
            &url,
            &alice,
            SEARCH,
            json!({ "q": "배송이 늦게 와서 녹았어요" }),
        )
        .await;
        let found = body["data"]["searchReviews"][0]["review"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("배달이 한 시간"));
        // The hit can be embedded before the rest of the import: wait for all of it.
        let missing = pipeline.missing().await.unwrap();
        if found && missing == 0 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never found with every review embedded ({missing} missing): {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let hit = &last["data"]["searchReviews"][0]["review"];
    assert_eq!(hit["product"]["id"], ids[0].as_str(), "{last}");
    assert_eq!(
        hit["product"]["name"], "레터링 케이크",
        "the inventory resolves it: {last}"
    );

    let body = graphql(
        &url,
        &alice,
        "query($q: String!) { askReviews(question: $q) { text model citations { id text } } }",
        json!({ "q": "마카롱 가격은 어때요?" }),
    )
    .await;
    let citations = body["data"]["askReviews"]["citations"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(!citations.is_empty(), "{body}");
    assert_eq!(
        body["data"]["askReviews"]["model"],
        assistant::EXTRACTIVE_MODEL
    );

    let body = graphql(
        &url,
        &alice,
        "{ searchReviews(query: \"맛\", first: 0) { score } }",
        json!({}),
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );

    // Chat: the answer streams over the gateway's WebSocket.
    let body = graphql(
        &url,
        &alice,
        "mutation { startChatSession { id } }",
        json!({}),
    )
    .await;
    let session = body["data"]["startChatSession"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let text = |value: Value| Message::Text(value.to_string().into());
    ws.send(text(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {alice}") } })))
        .await
        .unwrap();
    ws.send(text(json!({ "type": "subscribe", "id": "c", "payload": {
        "query": "subscription ($s: ID!) { chatMessages(sessionId: $s) { messageId kind text citations { id } } }",
        "variables": { "s": session },
    } })))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = graphql(
        &url,
        &alice,
        "mutation($s: ID!, $t: String!) { sendChatMessage(sessionId: $s, text: $t) { messageId } }",
        json!({ "s": session, "t": "선물용 포장은 어때요?" }),
    )
    .await;
    let message_id = body["data"]["sendChatMessage"]["messageId"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let mut chunks = String::new();
    let answered = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(raw) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(&raw).unwrap();
            match value["type"].as_str() {
                Some("connection_ack") => continue,
                Some("next") => {
                    let event = &value["payload"]["data"]["chatMessages"];
                    assert_eq!(event["messageId"], message_id.as_str(), "{value}");
                    match event["kind"].as_str() {
                        Some("CHUNK") => chunks.push_str(event["text"].as_str().unwrap()),
                        Some("DONE") => {
                            return !event["citations"].as_array().unwrap().is_empty();
                        }
                        _ => panic!("unexpected event {value}"),
                    }
                }
                _ => panic!("unexpected message {value}"),
            }
        }
        false
    })
    .await;
    assert_eq!(answered, Ok(true), "chunks so far: {chunks}");
    assert!(!chunks.is_empty());

    // Bob cannot read Alice's session.
    let body = graphql(
        &url,
        &bob,
        "query($s: ID!) { chatHistory(sessionId: $s) { kind } }",
        json!({ "s": session }),
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    shutdown.cancel();
}
