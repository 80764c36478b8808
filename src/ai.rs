//! Review intelligence at the edge: picks the embedder (model service or in-process), the
//! vector index (MongoDB Atlas, else embedded HNSW under the data directory), the stream broker (Redis or
//! in-process) and the answer writer (OpenAI-compatible API or extractive), logging one line
//! per port, and runs the embedding pipeline and the chat workers. Also picks where the review
//! documents are read from ([`review_state`]: MongoDB with `MONGODB_URI`, else SQL).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use assistant::{Answerer, Chat, ChatStreams, ChatWorker, WorkerConfig};
use model::{Embedder, GrpcEmbedder, LocalEmbedder, ServiceConfig};
use review::vectors::tag_of;
use review::{
    EmbeddingPipeline, Intelligence, ModelLabeller, ReviewSearch, ReviewState, ReviewVectors,
};
use streams::{MemoryBroker, RedisBroker, StreamBroker};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vectorindex::atlas::AtlasConfig;
use vectorindex::{AtlasCatalog, HnswCatalog, HnswConfig, IndexCatalog, IndexError, ModelTag};

use crate::platform::Platform;
use crate::settings::Settings;

/// The embedder: the model service at `MODEL_SERVICE_URL`, else the model in-process.
pub async fn embedder(settings: &Settings) -> anyhow::Result<Arc<dyn Embedder>> {
    match &settings.model_service_url {
        Some(url) => {
            let client = GrpcEmbedder::connect(url.clone())
                .await
                .with_context(|| format!("connecting the model service at {url}"))?;
            tracing::info!(port = "embedder", adapter = "grpc", url = %url, model = %client.info().name, "adapter selected");
            Ok(Arc::new(client))
        }
        None => {
            let config = model_config()?;
            let local = LocalEmbedder::load(&config).await.with_context(|| {
                format!(
                    "loading the model from {} (scripts/model builds it, or set MODEL_SERVICE_URL)",
                    config.model_dir.display()
                )
            })?;
            tracing::info!(port = "embedder", adapter = "in-process", dir = %config.model_dir.display(), model = %local.info().name, "adapter selected");
            Ok(Arc::new(local))
        }
    }
}

/// The model service's settings: defaults and the `MODEL_*` variables.
pub fn model_config() -> anyhow::Result<ServiceConfig> {
    ServiceConfig::default()
        .with_env()
        .context("reading the MODEL_* settings")
}

/// The stream broker: Redis at `REDIS_URL`, else in-process streams.
pub async fn broker(settings: &Settings) -> anyhow::Result<Arc<dyn StreamBroker>> {
    match settings.redis_url() {
        Some(url) => {
            let broker = RedisBroker::connect(url)
                .await
                .context("connecting Redis (REDIS_URL)")?;
            tracing::info!(port = "streams", adapter = "redis", "adapter selected");
            Ok(Arc::new(broker))
        }
        None => {
            tracing::info!(port = "streams", adapter = "in-process", "adapter selected");
            Ok(Arc::new(MemoryBroker::new()))
        }
    }
}

/// Where the review vectors live: the embedded HNSW index or MongoDB Atlas.
#[derive(Debug, Clone)]
pub enum VectorCatalog {
    /// Embedded HNSW indexes under the data directory, one per process scope.
    Hnsw(HnswCatalog),
    /// MongoDB Atlas Vector Search, shared by every process.
    Atlas(AtlasCatalog),
}

impl VectorCatalog {
    /// The progress scope of an embedding pipeline of process `scope`: a shared index has one
    /// progress, whichever process writes it.
    pub fn progress_scope<'a>(&self, scope: &'a str) -> &'a str {
        match self {
            Self::Hnsw(_) => scope,
            Self::Atlas(_) => "atlas",
        }
    }
}

/// The vector index (MongoDB Atlas with `MONGODB_URI`, else the embedded index of `scope`
/// under the data directory), with the embedder whose vectors it holds. When the index in use
/// holds another model's vectors, the returned flag says a re-embedding is due (searches
/// answer `REINDEXING` until it is done).
pub async fn vectors(
    settings: &Settings,
    scope: &str,
    embedder: Arc<dyn Embedder>,
) -> anyhow::Result<(ReviewVectors, VectorCatalog, bool)> {
    let tag = tag_of(embedder.info());
    if let Some(uri) = settings.mongodb_uri() {
        let catalog = AtlasCatalog::connect(uri, AtlasConfig::default())
            .await
            .context("connecting to MongoDB (MONGODB_URI) for the vector index")?;
        let (index, stale) = open_index(&catalog, &tag).await?;
        tracing::info!(port = "vector index", adapter = "atlas", model = %tag.key(), "adapter selected");
        let vectors = ReviewVectors::new(embedder, Arc::new(index));
        return Ok((vectors, VectorCatalog::Atlas(catalog), stale));
    }
    let root = settings.data_dir.join("vectors").join(scope);
    let catalog = HnswCatalog::new(&root, HnswConfig::default());
    let (index, stale) = open_index(&catalog, &tag).await?;
    tracing::info!(port = "vector index", adapter = "hnsw", dir = %root.display(), model = %tag.key(), "adapter selected");
    Ok((
        ReviewVectors::new(embedder, Arc::new(index)),
        VectorCatalog::Hnsw(catalog),
        stale,
    ))
}

/// The index in use of `catalog` for `tag`, or the one in use for another model and `true`.
async fn open_index<C: IndexCatalog>(
    catalog: &C,
    tag: &ModelTag,
) -> anyhow::Result<(C::Index, bool)>
where
    C::Index: 'static,
{
    match vectorindex::open_current(catalog, tag).await {
        Ok(index) => Ok((index, false)),
        Err(IndexError::ModelMismatch { found, .. }) => {
            tracing::warn!(in_use = %found.key(), model = %tag.key(), "vector index holds another model's vectors; re-embedding");
            Ok((catalog.open(&found).await?, true))
        }
        Err(err) => Err(err).context("opening the vector index"),
    }
}

/// Everything review intelligence runs in one process.
pub struct Ai {
    /// What the review subgraph's AI fields run on.
    pub intelligence: Intelligence,
    /// The embedding pipeline.
    pub pipeline: EmbeddingPipeline,
    /// The chat workers' answerer and broker.
    worker: ChatWorker,
    catalog: VectorCatalog,
    stale: bool,
}

impl Ai {
    /// Connects every AI port for `state`'s reviews, keeping the embedded index under `scope`.
    pub async fn connect(
        settings: &Settings,
        state: &ReviewState,
        scope: &str,
    ) -> anyhow::Result<Self> {
        let embedder = embedder(settings).await?;
        let (vectors, catalog, stale) = vectors(settings, scope, embedder.clone()).await?;
        let pipeline = EmbeddingPipeline::new(
            state.service.clone(),
            vectors.clone(),
            Some(Arc::new(ModelLabeller::new(embedder))),
        )
        .await
        .context("starting the embedding pipeline")?
        .with_scope(catalog.progress_scope(scope))
        .await
        .context("starting the embedding pipeline")?;
        let search = ReviewSearch::new(vectors, state.service.views().clone());
        let llm = assistant::choose_llm(llm::LlmConfig::from_env().as_ref())
            .context("configuring the answer model (OPENAI_*)")?;
        let answerer = Answerer::new(Arc::new(search.clone()), llm);
        let broker = broker(settings).await?;
        let streams = ChatStreams::default();
        let chat = Arc::new(Chat::new(broker.clone(), streams.clone()));
        let consumer = format!("{scope}-{}", std::process::id());
        let worker = ChatWorker::new(
            broker,
            answerer.clone(),
            streams,
            WorkerConfig::new(consumer),
        );
        Ok(Self {
            intelligence: Intelligence {
                search,
                answerer,
                chat,
            },
            pipeline,
            worker,
            catalog,
            stale,
        })
    }

    /// Runs the embedding pipeline (re-embedding first when the model changed) until
    /// `shutdown`.
    pub fn spawn_pipeline(
        &self,
        settings: &Settings,
        shutdown: CancellationToken,
    ) -> JoinHandle<anyhow::Result<()>> {
        let pipeline = self.pipeline.clone();
        let catalog = self.catalog.clone();
        let stale = self.stale;
        let every = Duration::from_millis(settings.embedding_catch_up_ms);
        tokio::spawn(async move {
            if stale {
                let (embedder, _) = pipeline.vectors().current();
                let done = match &catalog {
                    VectorCatalog::Hnsw(catalog) => pipeline.reembed(catalog, embedder).await,
                    VectorCatalog::Atlas(catalog) => pipeline.reembed(catalog, embedder).await,
                };
                done.map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))
                    .context("re-embedding reviews for the new model")?;
            }
            pipeline.run(every, shutdown).await;
            Ok(())
        })
    }

    /// Runs `settings.chat_workers` chat workers until `shutdown`.
    pub fn spawn_chat_workers(
        &self,
        settings: &Settings,
        shutdown: CancellationToken,
    ) -> JoinHandle<anyhow::Result<()>> {
        let worker = self.worker.clone();
        let count = settings.chat_workers;
        tokio::spawn(async move {
            worker.run_many(count, shutdown).await;
            Ok(())
        })
    }
}

/// The review subgraph's state over `platform`, reading review documents from MongoDB when
/// `MONGODB_URI` is set (schema and indexes created, and its projection from the event store
/// spawned until `shutdown`), else from the SQL read model; logs which. Returns the state and
/// the projection task when there is one.
pub async fn review_state(
    platform: &Platform,
    shutdown: CancellationToken,
) -> anyhow::Result<(ReviewState, Option<JoinHandle<anyhow::Result<()>>>)> {
    let mut state = ReviewState::new(platform.store.clone(), platform.read_models.clone())
        .await
        .context("opening the review read model")?;
    let store = platform.store.clone();
    let Some(uri) = platform.settings.mongodb_uri() else {
        tracing::info!(adapter = "sql", "review documents: the SQL read model");
        return Ok((state, None));
    };
    let mongo = review::MongoReviews::connect(uri)
        .await
        .context("connecting to MongoDB (MONGODB_URI) for the review documents")?;
    tracing::info!(adapter = "mongodb", "review documents: MongoDB");
    let projector = mongo.clone();
    let task = tokio::spawn(async move {
        projector.project(store.as_ref(), shutdown).await;
        Ok(())
    });
    state.service = state.service.with_documents(Arc::new(mongo));
    Ok((state, Some(task)))
}
