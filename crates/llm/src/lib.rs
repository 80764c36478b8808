//! The answer-generation port: turn a grounded prompt into an answer, streamed as it is made.
//!
//! Layout: [`Llm`] is the port; [`OpenAiLlm`] the production adapter, calling an
//! OpenAI-compatible chat-completions API through `async-openai` (streaming, typed errors,
//! timeouts, configured by [`LlmConfig`]); [`OpenAiTestServer`] a real local
//! OpenAI-compatible HTTP server with deterministic answers and switchable faults, for tests
//! and the embedded demo. [`Prompt`] fixes how context passages travel (`[n] text` lines), so
//! a local extractive answerer can implement [`Llm`] from the prompt alone. This crate does
//! no retrieval and knows nothing of reviews or GraphQL.

mod config;
mod error;
mod openai;
mod prompt;
mod test_server;

use async_trait::async_trait;
use futures::StreamExt as _;
use futures::stream::BoxStream;

pub use config::LlmConfig;
pub use error::LlmError;
pub use openai::OpenAiLlm;
pub use prompt::{ContextLine, Generated, Prompt};
pub use test_server::{Fault, OpenAiTestServer, RecordedRequest, answer_for};

/// A stream of answer text deltas, in order; concatenated they are the whole answer.
pub type AnswerStream = BoxStream<'static, Result<String, LlmError>>;

/// Something that answers a grounded prompt: a remote model or a local answerer.
#[async_trait]
pub trait Llm: Send + Sync + 'static {
    /// The model name answers are attributed to.
    fn model(&self) -> &str;

    /// Starts answering; yields the answer's text deltas (token by token where the model
    /// streams). An error item ends the stream.
    async fn stream(&self, prompt: &Prompt) -> Result<AnswerStream, LlmError>;

    /// The whole answer at once; by default the concatenated [`Llm::stream`].
    async fn complete(&self, prompt: &Prompt) -> Result<Generated, LlmError> {
        let mut deltas = self.stream(prompt).await?;
        let mut text = String::new();
        while let Some(delta) = deltas.next().await {
            text.push_str(&delta?);
        }
        Ok(Generated {
            text,
            model: self.model().to_owned(),
        })
    }
}
