//! The production adapter: an OpenAI-compatible chat-completions API via `async-openai`.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::{ApiErrorResponse, OpenAIError};
use async_openai::traits::RequestOptionsBuilder as _;
use async_openai::types::chat::{
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionResponseStream, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
};
use async_trait::async_trait;
use futures::StreamExt as _;
use secrecy::ExposeSecret as _;
use tracing::Instrument as _;

use crate::error::shorten;
use crate::{AnswerStream, Generated, Llm, LlmConfig, LlmError, Prompt};

/// How much of a remote error message is kept.
const MAX_MESSAGE: usize = 300;

/// Answers through an OpenAI-compatible chat-completions API, streaming.
#[derive(Clone)]
pub struct OpenAiLlm {
    client: Client<OpenAIConfig>,
    model: String,
    base_url: String,
    request_timeout: Duration,
    idle_timeout: Duration,
}

impl std::fmt::Debug for OpenAiLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiLlm")
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl OpenAiLlm {
    /// A client for the API and model in `config`.
    pub fn new(config: &LlmConfig) -> Result<Self, LlmError> {
        if config.model.trim().is_empty() {
            return Err(LlmError::Config("the model name is empty".to_owned()));
        }
        if !(config.base_url.starts_with("http://") || config.base_url.starts_with("https://")) {
            return Err(LlmError::Config(
                "the base URL must start with http:// or https://".to_owned(),
            ));
        }
        // reqwest is built without a TLS crypto provider; install ring once per process.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("bloody-sweet-llm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| LlmError::Config(format!("http client: {err}")))?;
        let api = OpenAIConfig::new()
            .with_api_base(config.base_url.trim_end_matches('/'))
            .with_api_key(config.api_key.expose_secret());
        Ok(Self {
            client: Client::build(http, api),
            model: config.model.clone(),
            base_url: config.base_url.clone(),
            request_timeout: config.request_timeout,
            idle_timeout: config.idle_timeout,
        })
    }

    fn request(
        &self,
        prompt: &Prompt,
        stream: bool,
    ) -> Result<CreateChatCompletionRequest, LlmError> {
        CreateChatCompletionRequestArgs::default()
            .model(self.model.as_str())
            .messages([
                ChatCompletionRequestSystemMessage::from(prompt.system.as_str()).into(),
                ChatCompletionRequestUserMessage::from(prompt.user.as_str()).into(),
            ])
            .stream(stream)
            .build()
            .map_err(api_error)
    }

    /// The current span's W3C trace context as request headers.
    fn trace_headers() -> reqwest::header::HeaderMap {
        let mut headers = reqwest::header::HeaderMap::new();
        telemetry::inject_http_headers(&mut headers);
        headers
    }
}

#[async_trait]
impl Llm for OpenAiLlm {
    fn model(&self) -> &str {
        &self.model
    }

    async fn stream(&self, prompt: &Prompt) -> Result<AnswerStream, LlmError> {
        let span = tracing::info_span!("llm.stream", model = %self.model);
        async {
            let request = self.request(prompt, true)?;
            let chat = self.client.chat().headers(Self::trace_headers());
            let started = tokio::time::timeout(self.request_timeout, chat.create_stream(request))
                .await
                .map_err(|_| LlmError::Timeout(self.request_timeout))
                .and_then(|started| started.map_err(api_error));
            let chunks = started.inspect_err(|err| {
                tracing::warn!(code = err.code(), error = %err, "llm answer did not start");
            })?;
            let deltas = Deltas {
                chunks,
                idle_timeout: self.idle_timeout,
                finished: false,
                ended: false,
            };
            Ok(futures::stream::unfold(deltas, Deltas::next).boxed())
        }
        .instrument(span)
        .await
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Generated, LlmError> {
        let span = tracing::info_span!("llm.complete", model = %self.model);
        async {
            let request = self.request(prompt, false)?;
            let chat = self.client.chat().headers(Self::trace_headers());
            let response = tokio::time::timeout(self.request_timeout, chat.create(request))
                .await
                .map_err(|_| LlmError::Timeout(self.request_timeout))?
                .map_err(api_error)
                .inspect_err(|err| {
                    tracing::warn!(code = err.code(), error = %err, "llm answer failed");
                })?;
            let text = response
                .choices
                .into_iter()
                .next()
                .and_then(|choice| choice.message.content)
                .ok_or_else(|| LlmError::Malformed("a completion without content".to_owned()))?;
            Ok(Generated {
                text,
                model: response.model,
            })
        }
        .instrument(span)
        .await
    }
}

/// Text deltas out of the chunk stream, with the idle timeout and the finish check.
struct Deltas {
    chunks: ChatCompletionResponseStream,
    idle_timeout: Duration,
    finished: bool,
    ended: bool,
}

impl Deltas {
    async fn next(mut self) -> Option<(Result<String, LlmError>, Self)> {
        if self.ended {
            return None;
        }
        loop {
            let chunk = match tokio::time::timeout(self.idle_timeout, self.chunks.next()).await {
                Err(_) => Err(LlmError::Timeout(self.idle_timeout)),
                Ok(None) if self.finished => return None,
                Ok(None) => Err(LlmError::Truncated),
                Ok(Some(chunk)) => chunk.map_err(api_error),
            };
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    tracing::warn!(code = err.code(), error = %err, "llm answer stream failed");
                    self.ended = true;
                    return Some((Err(err), self));
                }
            };
            let mut text = String::new();
            for choice in chunk.choices.into_iter().filter(|choice| choice.index == 0) {
                self.finished |= choice.finish_reason.is_some();
                if let Some(content) = choice.delta.content {
                    text.push_str(&content);
                }
            }
            if !text.is_empty() {
                return Some((Ok(text), self));
            }
        }
    }
}

/// Maps an `async-openai` failure to a typed error without ever quoting the API key.
fn api_error(err: OpenAIError) -> LlmError {
    match err {
        OpenAIError::ApiError(ApiErrorResponse {
            status_code,
            api_error,
        }) => {
            let status = status_code.as_u16();
            let message = shorten(&api_error.message, MAX_MESSAGE);
            match status {
                401 | 403 => LlmError::Unauthorized,
                429 => LlmError::RateLimited,
                500.. => LlmError::Upstream { status, message },
                _ => LlmError::Rejected { status, message },
            }
        }
        OpenAIError::Reqwest(err) => {
            let err = err.without_url();
            if err.is_timeout() {
                LlmError::Unavailable(format!("timed out: {err}"))
            } else if err.is_decode() {
                LlmError::Malformed(shorten(&err.to_string(), MAX_MESSAGE))
            } else {
                LlmError::Unavailable(shorten(&err.to_string(), MAX_MESSAGE))
            }
        }
        OpenAIError::JSONDeserialize(err, _) => {
            LlmError::Malformed(format!("a chunk that is not a chat completion: {err}"))
        }
        OpenAIError::StreamError(err) => LlmError::Unavailable(format!(
            "the answer stream broke: {}",
            shorten(&err.to_string(), MAX_MESSAGE)
        )),
        OpenAIError::InvalidArgument(message) => LlmError::Config(message),
        other => LlmError::Malformed(shorten(&other.to_string(), MAX_MESSAGE)),
    }
}
