//! Which answer writer runs: the OpenAI-compatible API when configured, else the local
//! extractive answerer.

use std::sync::Arc;

use llm::{Llm, LlmConfig, LlmError, OpenAiLlm};

use crate::extractive::ExtractiveLlm;

/// The answer writer for `config`: [`OpenAiLlm`] when an API is configured (see
/// [`LlmConfig::from_env`]), else [`ExtractiveLlm`]; logs which one in one line.
pub fn choose_llm(config: Option<&LlmConfig>) -> Result<Arc<dyn Llm>, LlmError> {
    match config {
        Some(config) => {
            let llm = OpenAiLlm::new(config)?;
            tracing::info!(adapter = "openai", model = %config.model, base_url = %config.base_url, "answer model");
            Ok(Arc::new(llm))
        }
        None => {
            tracing::info!(
                adapter = "extractive",
                model = crate::EXTRACTIVE_MODEL,
                "answer model"
            );
            Ok(Arc::new(ExtractiveLlm::new()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_api_or_local_answers() {
        assert_eq!(choose_llm(None).unwrap().model(), crate::EXTRACTIVE_MODEL);
        let config = LlmConfig::new("http://127.0.0.1:9/v1", "sk-x", "qwen2.5");
        assert_eq!(choose_llm(Some(&config)).unwrap().model(), "qwen2.5");
        let broken = LlmConfig::new("ftp://nowhere", "sk-x", "m");
        assert_eq!(
            choose_llm(Some(&broken)).err().map(|e| e.code()),
            Some("LLM_CONFIG")
        );
    }
}
