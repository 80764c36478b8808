//! The gRPC server: `model.v1.ModelService` over the in-process embedder, plus the standard
//! `grpc.health.v1` service; one request metric and span per call (parent from W3C metadata).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::config::ServiceConfig;
use crate::embedding::{Embedder, TextKind};
use crate::error::ModelError;
use crate::local::LocalEmbedder;
use crate::proto;
use crate::proto::model_service_server::{ModelService, ModelServiceServer};

/// The `ModelService` implementation.
#[derive(Debug, Clone)]
pub struct ModelGrpc {
    embedder: Arc<LocalEmbedder>,
}

impl ModelGrpc {
    /// Serves `embedder` over gRPC.
    pub fn new(embedder: Arc<LocalEmbedder>) -> Self {
        Self { embedder }
    }
}

/// A span for one RPC whose parent is the caller's W3C trace context (if any).
fn rpc_span<T>(request: &Request<T>, rpc: &'static str, texts: usize) -> tracing::Span {
    let span = tracing::info_span!("model.rpc", rpc, texts);
    let parent = telemetry::extract_grpc_metadata(request.metadata());
    if let Err(error) = telemetry::set_parent(&span, parent) {
        tracing::trace!(error = %error, "no trace parent for model rpc");
    }
    span
}

/// Records the outcome of one RPC.
fn record<T>(rpc: &'static str, started: Instant, result: &Result<T, Status>) {
    let code = match result {
        Ok(_) => "OK".to_string(),
        Err(status) => format!("{:?}", status.code()),
    };
    metrics::counter!("model_requests_total", "rpc" => rpc, "code" => code).increment(1);
    metrics::histogram!("model_request_seconds", "rpc" => rpc)
        .record(started.elapsed().as_secs_f64());
}

#[tonic::async_trait]
impl ModelService for ModelGrpc {
    async fn embed(
        &self,
        request: Request<proto::EmbedRequest>,
    ) -> Result<Response<proto::EmbedResponse>, Status> {
        let started = Instant::now();
        let span = rpc_span(&request, "embed", request.get_ref().texts.len());
        let request = request.into_inner();
        let kind = TextKind::from(request.kind());
        let result = async {
            let out = self.embedder.embed(request.texts, kind).await?;
            Ok::<_, ModelError>(proto::EmbedResponse {
                vectors: out
                    .vectors
                    .into_iter()
                    .map(|values| proto::Vector { values })
                    .collect(),
                model: out.model,
                version: out.version,
                dimension: u32::try_from(self.embedder.info().dimension).unwrap_or(u32::MAX),
            })
        }
        .instrument(span)
        .await
        .map(Response::new)
        .map_err(Status::from);
        record("embed", started, &result);
        result
    }

    async fn label(
        &self,
        request: Request<proto::LabelRequest>,
    ) -> Result<Response<proto::LabelResponse>, Status> {
        let started = Instant::now();
        let span = rpc_span(&request, "label", request.get_ref().texts.len());
        let texts = request.into_inner().texts;
        let result = async {
            let out = self.embedder.label(texts).await?;
            Ok::<_, ModelError>(proto::LabelResponse {
                labels: out.labels.into_iter().map(Into::into).collect(),
                model: out.model,
                version: out.version,
            })
        }
        .instrument(span)
        .await
        .map(Response::new)
        .map_err(Status::from);
        record("label", started, &result);
        result
    }

    async fn info(
        &self,
        _request: Request<proto::InfoRequest>,
    ) -> Result<Response<proto::InfoResponse>, Status> {
        let result = Ok(Response::new(proto::InfoResponse::from(
            self.embedder.info(),
        )));
        record("info", Instant::now(), &result);
        result
    }
}

/// Loads the model of `config` and serves it on `listener` until `shutdown` resolves.
pub async fn serve(
    config: ServiceConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ModelError> {
    let embedder = Arc::new(LocalEmbedder::load(&config).await?);
    serve_embedder(embedder, listener, shutdown).await
}

/// Serves an already loaded embedder on `listener` until `shutdown` resolves.
pub async fn serve_embedder(
    embedder: Arc<LocalEmbedder>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ModelError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ModelServiceServer<ModelGrpc>>().await;
    let address = listener.local_addr().ok();
    tracing::info!(
        address = ?address,
        model = %embedder.info().name,
        version = %embedder.info().version,
        "model service listening"
    );
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(ModelServiceServer::new(ModelGrpc::new(embedder)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
