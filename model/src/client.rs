//! The production embedder: a tonic client of the model service, carrying the caller's W3C
//! trace context in the request metadata.

use std::time::Duration;

use async_trait::async_trait;
use tonic::Request;
use tonic::transport::Channel;

use crate::embedding::{Embedder, Embeddings, Labels, ModelInfo, TextKind};
use crate::error::ModelError;
use crate::proto;
use crate::proto::model_service_client::ModelServiceClient;
use crate::wire::label_from_wire;

/// Embeds and labels through the model service (`MODEL_SERVICE_URL`).
#[derive(Debug, Clone)]
pub struct GrpcEmbedder {
    client: ModelServiceClient<Channel>,
    info: ModelInfo,
}

/// A request with the current span's trace context in its metadata.
fn traced<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    telemetry::inject_grpc_metadata(request.metadata_mut());
    request
}

/// Longest one request may take: above the ~50 s that a full queue (2,048 texts) and a
/// 256-text request take at ~50 texts/s on 2 cores, far below never.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest the connection itself may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an HTTP/2 ping checks the connection, and how long its answer may take: a
/// service that vanished without closing is noticed instead of waited for.
const KEEPALIVE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(10));

impl GrpcEmbedder {
    /// Connects to the model service at `url` (e.g. `http://127.0.0.1:50051`) and reads its
    /// model info once; requests fail after [`REQUEST_TIMEOUT`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, ModelError> {
        Self::connect_with_timeout(url, REQUEST_TIMEOUT).await
    }

    /// Like [`GrpcEmbedder::connect`], with requests failing after `request_timeout`.
    pub async fn connect_with_timeout(
        url: impl Into<String>,
        request_timeout: Duration,
    ) -> Result<Self, ModelError> {
        let channel = Channel::from_shared(url.into())
            .map_err(|e| ModelError::InvalidInput(format!("bad model service url: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(request_timeout)
            .http2_keep_alive_interval(KEEPALIVE.0)
            .keep_alive_timeout(KEEPALIVE.1)
            .keep_alive_while_idle(true)
            .connect()
            .await?;
        let mut client = ModelServiceClient::new(channel);
        let info = client
            .info(traced(proto::InfoRequest {}))
            .await?
            .into_inner();
        let info = ModelInfo {
            name: info.model,
            version: info.version,
            dimension: info.dimension as usize,
            pooling: info.pooling,
            max_texts_per_request: info.max_texts_per_request as usize,
        };
        Ok(Self { client, info })
    }
}

#[async_trait]
impl Embedder for GrpcEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn embed(&self, texts: Vec<String>, kind: TextKind) -> Result<Embeddings, ModelError> {
        let expected = texts.len();
        let request = proto::EmbedRequest {
            texts,
            kind: proto::TextKind::from(kind).into(),
        };
        let response = self
            .client
            .clone()
            .embed(traced(request))
            .await?
            .into_inner();
        if response.vectors.len() != expected {
            return Err(ModelError::Batch(format!(
                "the model service returned {} vectors for {expected} texts",
                response.vectors.len()
            )));
        }
        Ok(Embeddings {
            vectors: response.vectors.into_iter().map(|v| v.values).collect(),
            model: response.model,
            version: response.version,
        })
    }

    async fn label(&self, texts: Vec<String>) -> Result<Labels, ModelError> {
        let request = proto::LabelRequest { texts };
        let response = self
            .client
            .clone()
            .label(traced(request))
            .await?
            .into_inner();
        Ok(Labels {
            labels: response.labels.into_iter().map(label_from_wire).collect(),
            model: response.model,
            version: response.version,
        })
    }
}
